// Single-threaded encode throughput of the Hugging Face tokenizer engine on text made by
// repeating the dev corpus, fed in ~13 KB calls; plus the load time of the 33 MB gemma3
// tokenizer.json. Data comes from $TFX_TEST_DATA (the shared/ folder).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::optional<fs::path> tokenizers_dir() {
    const char* root = std::getenv("TFX_TEST_DATA");
    if (!root || !*root) return std::nullopt;
    fs::path dir = fs::path(root) / "tokenizers";
    if (!fs::exists(dir / "corpus-dev.jsonl")) return std::nullopt;
    return dir;
}

// The corpus joined by newlines, repeated to ~1 MiB, cut at line ends into ~13 KB calls.
const std::vector<std::string>& chunks() {
    static const std::vector<std::string> cached = [] {
        std::vector<std::string> out;
        const auto dir = tokenizers_dir();
        if (!dir) return out;
        std::ifstream in(*dir / "corpus-dev.jsonl");
        std::string line, corpus;
        while (std::getline(in, line))
            if (!line.empty()) corpus += nlohmann::json::parse(line)["text"].get<std::string>() + "\n";
        std::string text;
        while (text.size() < (1u << 20)) text += corpus;
        size_t pos = 0;
        while (pos < text.size()) {
            size_t end = std::min(text.size(), pos + 13000);
            const size_t newline = text.find('\n', end);
            end = newline == std::string::npos ? text.size() : newline + 1;
            out.push_back(text.substr(pos, end - pos));
            pos = end;
        }
        return out;
    }();
    return cached;
}

const tfx::tok::Tokenizer* load(const std::string& name) {
    static std::map<std::string, std::unique_ptr<tfx::tok::Tokenizer>> cache;
    auto& slot = cache[name];
    if (!slot) {
        const auto dir = tokenizers_dir();
        if (!dir) return nullptr;
        slot = std::make_unique<tfx::tok::Tokenizer>(tfx::tok::Tokenizer::from_file(*dir / name / "tokenizer.json"));
    }
    return slot.get();
}

void BM_Encode(benchmark::State& state, const std::string& name) {
    const auto* tok = load(name);
    if (!tok || chunks().empty()) {
        state.SkipWithError("TFX_TEST_DATA is not set to the shared data folder");
        return;
    }
    int64_t bytes = 0, tokens = 0;
    for (auto _ : state) {
        for (const auto& chunk : chunks()) {
            const auto encoding = tok->encode(chunk, true);
            benchmark::DoNotOptimize(encoding.ids.data());
            bytes += static_cast<int64_t>(chunk.size());
            tokens += static_cast<int64_t>(encoding.ids.size());
        }
    }
    state.SetBytesProcessed(bytes);
    state.counters["tokens_per_second"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

void BM_LoadGemma3(benchmark::State& state) {
    const auto dir = tokenizers_dir();
    if (!dir) {
        state.SkipWithError("TFX_TEST_DATA is not set to the shared data folder");
        return;
    }
    for (auto _ : state) {
        auto tok = tfx::tok::Tokenizer::from_file(*dir / "gemma3" / "tokenizer.json");
        benchmark::DoNotOptimize(tok.vocab_size(true));
    }
}

}  // namespace

BENCHMARK_CAPTURE(BM_Encode, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama2, std::string("llama2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, bert_base_uncased, std::string("bert-base-uncased"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, t5_style_unigram, std::string("t5-style-unigram"))->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoadGemma3)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
