// The per-token cost of choosing a token, against the floor of any pass over a step's logits
// measured in the same run (BM_ScoresCopy: copying the 32000 scores of the llama2 vocabulary):
// constrained decoding's mask (JSON schema, steady state: each automaton state's tokens found
// once), its first use (the vocabulary's bytes and the first masks), and a full sampling chain
// of processors and warpers. Needs $TFX_TEST_DATA (tokenizers/llama2).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <random>

#include "core/json_schema_regex.h"
#include "core/logits_processing.h"
#include "registry/auto_tokenizer.h"

namespace {

constexpr const char* kSchema = R"({"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 20}, "age": {"type": "integer"}, "pet": {"enum": ["dog", "cat", null]},
    "friends": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 3},
    "home": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "number"}}}}})";

const tfx::Tokenizer* llama2() {
    static std::unique_ptr<tfx::Tokenizer> tokenizer = [] {
        const char* root = std::getenv("TFX_TEST_DATA");
        const std::filesystem::path dir = std::filesystem::path(root ? root : "") / "tokenizers" / "llama2";
        return root && std::filesystem::exists(dir) ? tfx::Tokenizer::open(dir, {}) : nullptr;
    }();
    return tokenizer.get();
}

std::shared_ptr<const tfx::TokenBytes> vocabulary() {
    static auto bytes = std::make_shared<const tfx::TokenBytes>(llama2()->token_bytes());
    return bytes;
}

std::vector<float> random_scores(size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

void BM_ScoresCopy(benchmark::State& state) {
    const std::vector<float> scores = random_scores(32000, 1);
    std::vector<float> out(scores.size());
    for (auto _ : state) {
        std::copy(scores.begin(), scores.end(), out.begin());
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ScoresCopy);

// One constrained step: mask, sample from what is left, advance; a finished JSON text starts
// over. Steady state: the states a text passes through recur.
void BM_ConstraintStep(benchmark::State& state) {
    if (!llama2()) return state.SkipWithError("TFX_TEST_DATA/tokenizers/llama2 is missing");
    auto automaton = std::make_shared<tfx::ConstraintAutomaton>(
        tfx::json_schema_regex(nlohmann::ordered_json::parse(kSchema)), vocabulary(), std::vector<int32_t>{2});
    const std::vector<float> logits = random_scores(32000, 2);
    std::vector<float> scores(logits.size());
    std::mt19937_64 rng(3);
    auto constraint = std::make_unique<tfx::TokenConstraint>(automaton);
    for (int i = 0; i < 20000; ++i) {  // warm the masks of the states a text passes through
        scores = logits;
        constraint->mask(scores);
        const auto token = static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
        if (token == 2)
            constraint = std::make_unique<tfx::TokenConstraint>(automaton);
        else
            constraint->advance(token);
    }
    std::uniform_int_distribution<size_t> shift(0, 31999);
    for (auto _ : state) {
        std::copy(logits.begin(), logits.end(), scores.begin());
        scores[shift(rng)] += 5.0f;  // vary the path a little
        constraint->mask(scores);
        const auto token = static_cast<int32_t>(std::max_element(scores.begin(), scores.end()) - scores.begin());
        if (token == 2) {
            constraint = std::make_unique<tfx::TokenConstraint>(automaton);
        } else {
            constraint->advance(token);
        }
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["dfa_states"] = static_cast<double>(automaton->regex().dfa_states());
}
BENCHMARK(BM_ConstraintStep);

// First use of a schema: compile it, then the first token's mask (the vocabulary's bytes are
// found once per process, measured apart as BM_VocabularyBytes).
void BM_ConstraintFirstMask(benchmark::State& state) {
    if (!llama2()) return state.SkipWithError("TFX_TEST_DATA/tokenizers/llama2 is missing");
    const auto bytes = vocabulary();
    std::vector<float> scores = random_scores(32000, 4);
    for (auto _ : state) {
        auto automaton = std::make_shared<tfx::ConstraintAutomaton>(
            tfx::json_schema_regex(nlohmann::ordered_json::parse(kSchema)), bytes, std::vector<int32_t>{2});
        tfx::TokenConstraint(automaton).mask(scores);
        benchmark::DoNotOptimize(scores.data());
    }
}
BENCHMARK(BM_ConstraintFirstMask)->Unit(benchmark::kMillisecond);

void BM_VocabularyBytes(benchmark::State& state) {
    if (!llama2()) return state.SkipWithError("TFX_TEST_DATA/tokenizers/llama2 is missing");
    for (auto _ : state) benchmark::DoNotOptimize(llama2()->token_bytes());
}
BENCHMARK(BM_VocabularyBytes)->Unit(benchmark::kMillisecond);

// A sampling step with the processors that read the context (repetition penalty, n-grams) and
// the warpers that sort (top-p, typical) over a 256-token context.
void BM_SamplingChain(benchmark::State& state) {
    tfx::GenerationConfig g;
    g.do_sample = true;
    g.repetition_penalty = 1.2f;
    g.no_repeat_ngram_size = 3;
    g.top_k = 0;
    g.top_p = 0.9;
    g.typical_p = 0.95f;
    g.eos_token_ids = {2};
    const tfx::LogitsProcessing processing(g, 32000);
    std::vector<int32_t> context(256);
    std::mt19937_64 rng(5);
    for (int32_t& t : context) t = static_cast<int32_t>(rng() % 32000);
    const std::vector<float> logits = random_scores(32000, 6);
    std::vector<float> scores(logits.size());
    for (auto _ : state) {
        std::copy(logits.begin(), logits.end(), scores.begin());
        benchmark::DoNotOptimize(processing.choose(scores, {context, 0, 200, 1000}, rng));
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SamplingChain);

}  // namespace

BENCHMARK_MAIN();
