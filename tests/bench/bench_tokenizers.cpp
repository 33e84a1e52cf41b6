// Single-threaded encode throughput of the Hugging Face tokenizer engine on text made by
// repeating the dev corpus, fed in ~13 KB calls; the load of the 33 MB gemma3
// tokenizer.json (262k vocab, 514k merges) from the file and from text already in memory,
// with the heap it keeps; and one ~3.8 MB encode call with gemma3. Data comes from
// $TFX_TEST_DATA (the shared/ folder).
#include <benchmark/benchmark.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
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

// The corpus joined by newlines, repeated to at least `bytes`.
std::string corpus_text(size_t bytes) {
    const auto dir = tokenizers_dir();
    if (!dir) return {};
    std::ifstream in(*dir / "corpus-dev.jsonl");
    std::string line, corpus;
    while (std::getline(in, line))
        if (!line.empty()) corpus += nlohmann::json::parse(line)["text"].get<std::string>() + "\n";
    std::string text;
    if (corpus.empty()) return text;
    while (text.size() < bytes) text += corpus;
    return text;
}

std::string read_file(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Bytes the allocator has handed out and not taken back (heap and mmapped blocks).
double heap_in_use() {
#if defined(__GLIBC__)
    const struct mallinfo2 m = mallinfo2();
    return static_cast<double>(m.uordblks + m.hblkhd);
#else
    return 0;
#endif
}

// The corpus repeated to ~1 MiB, cut at line ends into ~13 KB calls.
const std::vector<std::string>& chunks() {
    static const std::vector<std::string> cached = [] {
        std::vector<std::string> out;
        const std::string text = corpus_text(1u << 20);
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

// Parse and build only (the JSON text is already in memory, as the plugin receives it);
// retained_MiB is the heap the loaded tokenizer keeps.
void BM_LoadGemma3FromText(benchmark::State& state) {
    const auto dir = tokenizers_dir();
    if (!dir) {
        state.SkipWithError("TFX_TEST_DATA is not set to the shared data folder");
        return;
    }
    const std::string json = read_file(*dir / "gemma3" / "tokenizer.json");
    double retained = 0;
    for (auto _ : state) {
        const double before = heap_in_use();
        auto tok = tfx::tok::Tokenizer::from_json_text(json);
        retained = heap_in_use() - before;
        benchmark::DoNotOptimize(tok.vocab_size(true));
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(json.size()));
    state.counters["retained_MiB"] = retained / (1 << 20);
}

// One encode call on ~3.8 MB of text (the long-input path: no word splits, special tokens
// around one large sequence).
void BM_EncodeLongGemma3(benchmark::State& state) {
    const auto* tok = load("gemma3");
    static const std::string text = corpus_text(3'800'000);
    if (!tok || text.empty()) {
        state.SkipWithError("TFX_TEST_DATA is not set to the shared data folder");
        return;
    }
    int64_t tokens = 0;
    for (auto _ : state) {
        const auto encoding = tok->encode(text, true);
        benchmark::DoNotOptimize(encoding.ids.data());
        tokens += static_cast<int64_t>(encoding.ids.size());
    }
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * static_cast<int64_t>(text.size()));
    state.counters["tokens_per_second"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_Encode, llama3, std::string("llama3"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama2, std::string("llama2"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, bert_base_uncased, std::string("bert-base-uncased"))->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, t5_style_unigram, std::string("t5-style-unigram"))->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoadGemma3)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_LoadGemma3FromText)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EncodeLongGemma3)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
