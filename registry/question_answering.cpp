#include "registry/question_answering.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "registry/text_offsets.h"
#include "registry/token_classification.h"
#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

// Softmax over the allowed tokens (the others at -10000 before it, as transformers masks them).
std::vector<float> masked_softmax(std::span<const float> logits, const std::vector<bool>& allowed) {
    std::vector<float> p(logits.begin(), logits.end());
    for (size_t i = 0; i < p.size(); ++i) {
        if (!allowed[i]) p[i] = -10000.0f;
    }
    softmax_in_place(p);
    return p;
}

}  // namespace

std::vector<Span> best_spans(std::span<const float> start_logits, std::span<const float> end_logits,
                             const std::vector<bool>& allowed, int64_t top_k, int64_t max_answer_len,
                             float* null_score) {
    std::vector<float> start = masked_softmax(start_logits, allowed), end = masked_softmax(end_logits, allowed);
    if (null_score != nullptr) *null_score = start[0] * end[0];
    start[0] = end[0] = 0.0f;
    // Candidates in row-major order (start, then end), as numpy flattens the outer product.
    std::vector<Span> spans;
    const auto n = static_cast<int64_t>(start.size());
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = i; j < std::min(n, i + max_answer_len); ++j) spans.push_back({i, j, start[i] * end[j]});
    }
    // Best first; equal scores keep the flattened order (numpy's argmax for top_k 1).
    std::stable_sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) { return a.score > b.score; });
    if (static_cast<int64_t>(spans.size()) > top_k) spans.resize(static_cast<size_t>(top_k));
    std::erase_if(spans, [&](const Span& s) { return !allowed[s.start] || !allowed[s.end]; });
    return spans;
}

nlohmann::json answer_json(const Answer& answer) {
    return {{"score", answer.score}, {"start", answer.start}, {"end", answer.end}, {"answer", answer.answer}};
}

QuestionAnsweringPipeline::QuestionAnsweringPipeline(const std::string& model, const LoadOptions& options)
    : TaskPipeline(model, options) {
    if (session_->task_head() != "question_answering") {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, session_->architecture() +
                                                  " is not an extractive question-answering model (such as "
                                                  "BertForQuestionAnswering)");
    }
    pair_ = pair_template_of(session_->model_dir() / "tokenizer.json");
    word_aware_ = word_aware_tokenizer(session_->model_dir());
}

std::vector<Answer> QuestionAnsweringPipeline::operator()(const std::string& question, const std::string& context,
                                                          int64_t top_k, int64_t max_answer_len,
                                                          bool handle_impossible_answer) {
    if (top_k < 1)
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "top_k: expected at least 1, got " + std::to_string(top_k));
    if (max_answer_len < 1) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "max_answer_len: expected at least 1, got " + std::to_string(max_answer_len));
    }
    const PairEncoding pair = encode_pair(*tokenizer_, pair_, question, context);
    const std::vector<int32_t>& ids = pair.ids;
    const std::vector<int64_t>& context_token = pair.second_index;
    check_fits(*session_, pair, "the question and context", "long contexts are not split into windows");
    if (session_->info().output_size != 2) {
        throw sdk::Error(TFX_ERR_FORMAT, "a question-answering head gives 2 logits a token, this one " +
                                             std::to_string(session_->info().output_size));
    }
    const Outputs out = run(ids, pair.type_ids);
    std::vector<float> start_logits, end_logits;
    for (int64_t r = 0; r < out.rows; ++r) {
        start_logits.push_back(out.values[2 * r]);
        end_logits.push_back(out.values[2 * r + 1]);
    }
    // The context's tokens, and the first token ([CLS], the empty answer), may hold the answer.
    std::vector<bool> allowed(ids.size());
    const std::optional<int32_t> cls = tokenizer_->special_id("cls_token");
    for (size_t i = 0; i < ids.size(); ++i) allowed[i] = context_token[i] >= 0 || (cls && ids[i] == *cls);
    float null_score = 0.0f;
    const std::vector<Span> spans = best_spans(start_logits, end_logits, allowed, top_k, max_answer_len, &null_score);

    // Answers widened to whole words (align_to_words): a word's tokens are a token and the
    // continuations after it.
    const Tokenizer::Encoding& c = pair.second;
    const std::u32string chars = code_points(context);
    const std::vector<int64_t> char_of = char_index_of_bytes(context);
    auto continues = [&](int64_t t) {
        if (t <= 0 || t >= static_cast<int64_t>(c.ids.size())) return false;
        const auto [begin, end] = c.offsets[t];
        return is_subword_token(chars, code_points(tokenizer_->id_to_token(c.ids[t]).value_or("")), char_of[begin],
                                char_of[end], word_aware_);
    };
    std::vector<Answer> answers;
    for (const Span& s : spans) {
        int64_t first = context_token[s.start], last = context_token[s.end];
        if (first < 0 || last < 0) continue;  // the first token: only the empty answer
        while (continues(first)) --first;
        while (continues(last + 1)) ++last;
        const int64_t begin = c.offsets[first].first, end = c.offsets[last].second;
        answers.push_back({s.score, char_of[begin], char_of[end], context.substr(begin, end - begin)});
    }
    if (handle_impossible_answer) answers.push_back({null_score, 0, 0, ""});
    std::stable_sort(answers.begin(), answers.end(),
                     [](const Answer& a, const Answer& b) { return a.score > b.score; });
    if (static_cast<int64_t>(answers.size()) > top_k) answers.resize(static_cast<size_t>(top_k));
    return answers;
}

}  // namespace tfx
