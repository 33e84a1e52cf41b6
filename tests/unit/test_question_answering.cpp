// question-answering's span search (transformers' select_starts_ends + decode_spans) and the
// pair layouts of tokenizer.json post-processors, on hand-made inputs.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <utility>
#include <vector>

#include "registry/question_answering.h"

namespace {

// Tokens: 0 [CLS], 1-2 the question, 3 [SEP], 4-7 the context, 8 [SEP].
const std::vector<bool> kAllowed = {true, false, false, false, true, true, true, true, false};

TEST(QuestionAnswering, BestSpanMultipliesStartAndEndProbabilities) {
    // Large logits outside the context must not count: they are masked before the softmax.
    const std::vector<float> start = {0.0f, 9.0f, 9.0f, 9.0f, 1.0f, 3.0f, 0.0f, 0.0f, 9.0f};
    const std::vector<float> end = {0.0f, 9.0f, 9.0f, 9.0f, 0.0f, 0.0f, 1.0f, 2.0f, 9.0f};
    float null_score = 0.0f;
    const auto spans = tfx::best_spans(start, end, kAllowed, 1, 15, &null_score);
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].start, 5);
    EXPECT_EQ(spans[0].end, 7);
    // Softmax over [CLS] and the context only.
    auto softmax_at = [](const std::vector<float>& v, size_t at) {
        double sum = 0.0;
        for (size_t i : {0u, 4u, 5u, 6u, 7u}) sum += std::exp(double{v[i]});
        return std::exp(double{v[at]}) / sum;
    };
    EXPECT_NEAR(spans[0].score, softmax_at(start, 5) * softmax_at(end, 7), 1e-6);
    EXPECT_NEAR(null_score, softmax_at(start, 0) * softmax_at(end, 0), 1e-6);
}

TEST(QuestionAnswering, SpansEndAfterTheirStartWithinTheLongestAnswer) {
    // The best pair by probability would end before it starts (6, 4): not a span.
    const std::vector<float> start = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 4.0f, 0.0f, 0.0f};
    const std::vector<float> end = {0.0f, 0.0f, 0.0f, 0.0f, 3.0f, 0.0f, 0.0f, 1.0f, 0.0f};
    auto spans = tfx::best_spans(start, end, kAllowed, 1, 15, nullptr);
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].start, 6);
    EXPECT_EQ(spans[0].end, 7);
    // max_answer_len 1: a span is one token.
    spans = tfx::best_spans(start, end, kAllowed, 3, 1, nullptr);
    ASSERT_FALSE(spans.empty());
    for (const auto& s : spans) EXPECT_EQ(s.start, s.end);
    EXPECT_EQ(spans[0].start, 6);
}

TEST(QuestionAnswering, TopKIsBestFirstAndNeverStartsOrEndsOutsideTheContext) {
    const std::vector<float> start = {0.0f, 5.0f, 5.0f, 5.0f, 2.0f, 1.0f, 0.5f, 0.0f, 5.0f};
    const std::vector<float> end = {0.0f, 5.0f, 5.0f, 5.0f, 0.0f, 1.0f, 0.5f, 2.0f, 5.0f};
    const auto spans = tfx::best_spans(start, end, kAllowed, 5, 15, nullptr);
    ASSERT_FALSE(spans.empty());
    for (size_t i = 0; i < spans.size(); ++i) {
        EXPECT_TRUE(kAllowed[spans[i].start] && kAllowed[spans[i].end]);
        EXPECT_NE(spans[i].start, 0);  // [CLS] is the empty answer, never a span
        if (i > 0) {
            EXPECT_GE(spans[i - 1].score, spans[i].score);
        }
    }
    EXPECT_EQ(spans[0].start, 4);
    EXPECT_EQ(spans[0].end, 7);
}

std::filesystem::path write_json(const std::string& name, const std::string& text) {
    const auto path = std::filesystem::temp_directory_path() / ("tfx-qa-" + name + ".json");
    std::ofstream(path) << text;
    return path;
}

TEST(QuestionAnswering, PairLayoutsOfThePostProcessors) {
    const auto bert =
        tfx::pair_template_of(write_json("bert", R"({"post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 102],
                                                    "cls": ["[CLS]", 101]}})"));
    ASSERT_EQ(bert.pieces.size(), 5u);
    EXPECT_EQ(bert.pieces[0].special, std::vector<int32_t>{101});
    EXPECT_EQ(bert.pieces[3].sequence, 1);
    EXPECT_EQ(bert.pieces[3].type_id, 1);
    EXPECT_EQ(bert.pieces[4].type_id, 1);

    const auto roberta = tfx::pair_template_of(write_json(
        "roberta", R"({"post_processor": {"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}})"));
    ASSERT_EQ(roberta.pieces.size(), 6u);  // <s> A </s></s> B </s>
    EXPECT_EQ(roberta.pieces[3].special, std::vector<int32_t>{2});
    EXPECT_EQ(roberta.pieces[4].sequence, 1);
    EXPECT_EQ(roberta.pieces[4].type_id, 0);

    const auto templated = tfx::pair_template_of(write_json("template", R"({"post_processor": {"type": "Sequence",
        "processors": [{"type": "ByteLevel"}, {"type": "TemplateProcessing",
        "pair": [{"SpecialToken": {"id": "<bos>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<bos>": {"id": "<bos>", "ids": [7], "tokens": ["<bos>"]}}}]}})"));
    ASSERT_EQ(templated.pieces.size(), 3u);
    EXPECT_EQ(templated.pieces[0].special, std::vector<int32_t>{7});
    EXPECT_EQ(templated.pieces[2].sequence, 1);
    EXPECT_EQ(templated.pieces[2].type_id, 1);

    EXPECT_THROW(tfx::pair_template_of(write_json("broken", R"({"post_processor": {"type": "TemplateProcessing",
        "pair": [{"SpecialToken": {"id": "[X]", "type_id": 0}}], "special_tokens": {}}})")),
                 std::exception);
}

// Windows as a tokenizer's overflowing encodings hold a long second text (truncation
// "only_second", a stride): each starts room - stride tokens after the one before, holds room
// tokens, and the last one ends at the text's end.
TEST(QuestionAnswering, ContextWindowsOverlapByTheStride) {
    using Windows = std::vector<std::pair<int64_t, int64_t>>;
    EXPECT_EQ(tfx::context_windows(7, 10, 4), (Windows{{0, 7}}));
    EXPECT_EQ(tfx::context_windows(10, 10, 4), (Windows{{0, 10}}));
    EXPECT_EQ(tfx::context_windows(0, 10, 4), (Windows{{0, 0}}));
    EXPECT_EQ(tfx::context_windows(11, 10, 4), (Windows{{0, 10}, {6, 11}}));
    EXPECT_EQ(tfx::context_windows(25, 10, 4), (Windows{{0, 10}, {6, 16}, {12, 22}, {18, 25}}));
    EXPECT_EQ(tfx::context_windows(22, 10, 4), (Windows{{0, 10}, {6, 16}, {12, 22}}));
    EXPECT_EQ(tfx::context_windows(5, 2, 0), (Windows{{0, 2}, {2, 4}, {4, 5}}));
}

TEST(QuestionAnswering, AWindowIsLaidOutAsThePairWithTheContextsIndices) {
    const auto bert = tfx::pair_template_of(write_json("bert-window", R"({"post_processor": {"type": "BertProcessing",
                                                           "sep": ["[SEP]", 102], "cls": ["[CLS]", 101]}})"));
    EXPECT_EQ(tfx::added_tokens(bert), 3);
    tfx::Tokenizer::Encoding context;
    context.ids = {10, 11, 12, 13, 14, 15};
    const tfx::PairEncoding window = tfx::layout_pair(bert, {7, 8}, context, 2, 5);
    EXPECT_EQ(window.ids, (std::vector<int32_t>{101, 7, 8, 102, 12, 13, 14, 102}));
    EXPECT_EQ(window.type_ids, (std::vector<int32_t>{0, 0, 0, 0, 1, 1, 1, 1}));
    EXPECT_EQ(window.second_index, (std::vector<int64_t>{-1, -1, -1, -1, 2, 3, 4, -1}));
    EXPECT_EQ(window.second.ids, context.ids);
}

}  // namespace
