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

std::vector<std::pair<int64_t, int64_t>> context_windows(int64_t context, int64_t room, int64_t stride) {
    if (context <= room) return {{0, context}};
    std::vector<std::pair<int64_t, int64_t>> windows;
    for (int64_t begin = 0;; begin += room - stride) {
        const int64_t end = std::min(begin + room, context);
        windows.emplace_back(begin, end);
        if (end == context) return windows;
    }
}

namespace {

// tokenizer_config.json's model_max_length, 0 when absent (or transformers' "very large"
// placeholder, 1e30, for tokenizers saved without one).
int64_t model_max_length_of(const std::filesystem::path& dir) {
    std::ifstream in(dir / "tokenizer_config.json");
    if (!in) return 0;
    const auto json = nlohmann::json::parse(in, nullptr, false);
    if (!json.is_object() || !json.contains("model_max_length") || !json["model_max_length"].is_number()) return 0;
    const double length = json["model_max_length"].get<double>();
    return length >= 1 && length < 1e12 ? static_cast<int64_t>(length) : 0;
}

void check_at_least(int64_t value, int64_t least, const std::string& name) {
    if (value < least) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         name + ": expected at least " + std::to_string(least) + ", got " + std::to_string(value));
    }
}

}  // namespace

QuestionAnsweringPipeline::QuestionAnsweringPipeline(const std::string& model, const LoadOptions& options)
    : TaskPipeline(model, options) {
    if (session_->task_head() != "question_answering") {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, session_->architecture() +
                                                  " is not an extractive question-answering model (such as "
                                                  "BertForQuestionAnswering)");
    }
    if (session_->info().output_size != 2) {
        throw sdk::Error(TFX_ERR_FORMAT, "a question-answering head gives 2 logits a token, this one " +
                                             std::to_string(session_->info().output_size));
    }
    pair_ = pair_template_of(session_->model_dir() / "tokenizer.json");
    word_aware_ = word_aware_tokenizer(session_->model_dir());
    model_max_length_ = model_max_length_of(session_->model_dir());
}

std::vector<Answer> QuestionAnsweringPipeline::operator()(const std::string& question, const std::string& context,
                                                          const QuestionAnsweringOptions& options) {
    check_at_least(options.top_k, 1, "top_k");
    check_at_least(options.max_answer_len, 1, "max_answer_len");
    const int64_t positions = session_->info().max_positions;
    int64_t max_seq_len = options.max_seq_len;
    if (max_seq_len == 0) {
        max_seq_len = 384;
        if (model_max_length_ > 0) max_seq_len = std::min(max_seq_len, model_max_length_);
        if (positions > 0) max_seq_len = std::min(max_seq_len, positions);
    }
    check_at_least(max_seq_len, 1, "max_seq_len");
    if (positions > 0 && max_seq_len > positions) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "max_seq_len: " + std::to_string(max_seq_len) +
                                                       " tokens a window, past the model's " +
                                                       std::to_string(positions) + " positions");
    }
    if (options.doc_stride < -1) check_at_least(options.doc_stride, 0, "doc_stride (-1: the default)");
    const int64_t doc_stride = options.doc_stride >= 0 ? options.doc_stride : std::min<int64_t>(max_seq_len / 2, 128);
    if (doc_stride > max_seq_len) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "doc_stride (" + std::to_string(doc_stride) +
                                                       ") is larger than max_seq_len (" + std::to_string(max_seq_len) +
                                                       ")");
    }

    const Tokenizer::Encoding question_tokens = tokenizer_->encode_with_offsets(question, false);
    const Tokenizer::Encoding c = tokenizer_->encode_with_offsets(context, false);
    const auto context_tokens = static_cast<int64_t>(c.ids.size());
    const int64_t room = max_seq_len - static_cast<int64_t>(question_tokens.ids.size()) - added_tokens(pair_);
    if (room < 1) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "the question takes " + std::to_string(question_tokens.ids.size()) +
                             " tokens, leaving no room for the context in a window of max_seq_len " +
                             std::to_string(max_seq_len) + " tokens (" + std::to_string(added_tokens(pair_)) +
                             " of them special)");
    }
    if (context_tokens > room && doc_stride >= room) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "doc_stride (" + std::to_string(doc_stride) +
                                                       ") must be less than the " + std::to_string(room) +
                                                       " context tokens a window of max_seq_len " +
                                                       std::to_string(max_seq_len) + " holds beside the question");
    }

    // Answers widened to whole words (align_to_words): a word's tokens are a token and the
    // continuations after it.
    const std::u32string chars = code_points(context);
    const std::vector<int64_t> char_of = char_index_of_bytes(context);
    auto continues = [&](int64_t t) {
        if (t <= 0 || t >= context_tokens) return false;
        const auto [begin, end] = c.offsets[static_cast<size_t>(t)];
        return is_subword_token(chars, code_points(tokenizer_->id_to_token(c.ids[static_cast<size_t>(t)]).value_or("")),
                                char_of[begin], char_of[end], word_aware_);
    };
    const std::optional<int32_t> cls = tokenizer_->special_id("cls_token");
    std::vector<Answer> answers;
    float null_score = 1000000.0f;  // the lowest over the windows, as transformers keeps it
    // Every window in ragged forward calls together, then each scored on its own.
    std::vector<PairEncoding> windows;
    std::vector<std::vector<int32_t>> window_ids, window_types;
    for (const auto& [first_token, end_token] : context_windows(context_tokens, room, doc_stride)) {
        windows.push_back(layout_pair(pair_, question_tokens.ids, c, first_token, end_token));
        window_ids.push_back(windows.back().ids);
        window_types.push_back(windows.back().type_ids);
    }
    const std::vector<Outputs> outputs = run_batch(window_ids, window_types);
    for (size_t w = 0; w < windows.size(); ++w) {
        const PairEncoding& pair = windows[w];
        const Outputs& out = outputs[w];
        const std::vector<int64_t>& context_token = pair.second_index;
        std::vector<float> start_logits, end_logits;
        for (int64_t r = 0; r < out.rows; ++r) {
            start_logits.push_back(out.values[2 * r]);
            end_logits.push_back(out.values[2 * r + 1]);
        }
        // The context's tokens, and the first token ([CLS], the empty answer), may hold the answer.
        std::vector<bool> allowed(pair.ids.size());
        for (size_t i = 0; i < pair.ids.size(); ++i) allowed[i] = context_token[i] >= 0 || (cls && pair.ids[i] == *cls);
        float window_null = 0.0f;
        for (const Span& s :
             best_spans(start_logits, end_logits, allowed, options.top_k, options.max_answer_len, &window_null)) {
            int64_t first = context_token[static_cast<size_t>(s.start)],
                    last = context_token[static_cast<size_t>(s.end)];
            if (first < 0 || last < 0) continue;  // the first token: only the empty answer
            while (continues(first)) --first;
            while (continues(last + 1)) ++last;
            const int64_t begin = c.offsets[static_cast<size_t>(first)].first;
            const int64_t end = c.offsets[static_cast<size_t>(last)].second;
            answers.push_back({s.score, char_of[begin], char_of[end], context.substr(begin, end - begin)});
        }
        null_score = std::min(null_score, window_null);
    }
    if (options.handle_impossible_answer) answers.push_back({null_score, 0, 0, ""});
    std::stable_sort(answers.begin(), answers.end(),
                     [](const Answer& a, const Answer& b) { return a.score > b.score; });
    if (static_cast<int64_t>(answers.size()) > options.top_k) answers.resize(static_cast<size_t>(options.top_k));
    return answers;
}

}  // namespace tfx
