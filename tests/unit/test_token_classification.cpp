// token-classification's post-processing against transformers' TokenClassificationPipeline
// (gather_pre_entities, aggregate_words, group_entities), on hand-made scores whose outcome
// differs between the strategies.
#include <gtest/gtest.h>

#include "registry/token_classification.h"

namespace {

using tfx::Aggregation;
using tfx::Entity;
using tfx::TokenScores;

const std::vector<std::string> kLabels = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"};

// "John Smithson lives in Paris" through a WordPiece tokenizer, after [CLS] (index 0).
std::vector<TokenScores> john_smithson() {
    return {{1, "John", {0.05f, 0.90f, 0.03f, 0.01f, 0.01f}, 0, 4, 1, false},
            {2, "Smith", {0.10f, 0.05f, 0.80f, 0.03f, 0.02f}, 5, 10, 2, false},
            {3, "##son", {0.85f, 0.01f, 0.10f, 0.02f, 0.02f}, 10, 13, 3, true},
            {4, "lives", {0.95f, 0.01f, 0.02f, 0.01f, 0.01f}, 14, 19, 4, false},
            {5, "in", {0.90f, 0.02f, 0.02f, 0.03f, 0.03f}, 20, 22, 5, false},
            {6, "Par", {0.30f, 0.00f, 0.00f, 0.60f, 0.10f}, 23, 26, 6, false},
            {7, "##is", {0.00f, 0.00f, 0.00f, 0.35f, 0.65f}, 26, 28, 7, true}};
}

// convert_tokens_to_string of WordPiece: tokens joined by spaces, "##" continuations glued.
std::string join(std::span<const TokenScores> tokens) {
    std::string text;
    for (const TokenScores& t : tokens) {
        if (t.word.starts_with("##")) {
            text += t.word.substr(2);
        } else {
            text += (text.empty() ? "" : " ") + t.word;
        }
    }
    return text;
}

std::vector<Entity> run(Aggregation aggregation, std::vector<std::string> ignore = {"O"}) {
    const auto tokens = john_smithson();
    return tfx::aggregate_entities(tokens, kLabels, aggregation, join, ignore);
}

void expect_entity(const Entity& e, const std::string& label, float score, const std::string& word, int64_t start,
                   int64_t end) {
    EXPECT_EQ(e.label, label);
    EXPECT_NEAR(e.score, score, 1e-6f) << label;
    EXPECT_EQ(e.word, word);
    EXPECT_EQ(e.start, start) << word;
    EXPECT_EQ(e.end, end) << word;
}

TEST(TokenClassification, NoneKeepsEveryTokenButTheIgnoredLabels) {
    const auto out = run(Aggregation::none);
    ASSERT_EQ(out.size(), 4u);
    expect_entity(out[0], "B-PER", 0.90f, "John", 0, 4);
    expect_entity(out[1], "I-PER", 0.80f, "Smith", 5, 10);
    expect_entity(out[2], "B-LOC", 0.60f, "Par", 23, 26);
    expect_entity(out[3], "I-LOC", 0.65f, "##is", 26, 28);
    EXPECT_EQ(out[0].index, 1);
    EXPECT_EQ(out[3].index, 7);
    EXPECT_EQ(run(Aggregation::none, {}).size(), 7u);  // nothing ignored: every token
}

TEST(TokenClassification, SimpleGroupsTokensByTheirTags) {
    const auto out = run(Aggregation::simple);
    ASSERT_EQ(out.size(), 2u);
    expect_entity(out[0], "PER", 0.85f, "John Smith", 0, 10);  // B-PER then I-PER; ##son is O
    expect_entity(out[1], "LOC", 0.625f, "Paris", 23, 28);     // B-LOC then I-LOC: the mean
    EXPECT_FALSE(out[0].index.has_value());
}

TEST(TokenClassification, FirstLabelsAWordByItsFirstToken) {
    const auto out = run(Aggregation::first);
    ASSERT_EQ(out.size(), 2u);
    expect_entity(out[0], "PER", 0.85f, "John Smithson", 0, 13);  // Smithson: Smith's I-PER
    expect_entity(out[1], "LOC", 0.60f, "Paris", 23, 28);         // Par's B-LOC
}

TEST(TokenClassification, MaxLabelsAWordByItsMostConfidentToken) {
    const auto out = run(Aggregation::max);
    ASSERT_EQ(out.size(), 2u);
    expect_entity(out[0], "PER", 0.90f, "John", 0, 4);     // Smithson: ##son's O (0.85 > 0.80)
    expect_entity(out[1], "LOC", 0.65f, "Paris", 23, 28);  // ##is's I-LOC (0.65 > 0.60)
}

TEST(TokenClassification, AverageLabelsAWordByItsTokensMeanScores) {
    const auto out = run(Aggregation::average);
    ASSERT_EQ(out.size(), 2u);
    expect_entity(out[0], "PER", 0.90f, "John", 0, 4);      // Smithson: O at (0.10 + 0.85) / 2
    expect_entity(out[1], "LOC", 0.475f, "Paris", 23, 28);  // B-LOC at (0.60 + 0.35) / 2
}

// A B- tag always starts a group; a label in neither B- nor I- form continues one of itself.
TEST(TokenClassification, BTagsStartGroupsAndPlainLabelsContinue) {
    const std::vector<std::string> labels = {"O", "B-PER", "PER"};
    const std::vector<TokenScores> tokens = {{1, "Ann", {0.1f, 0.9f, 0.0f}, 0, 3, 1, false},
                                             {2, "Bob", {0.2f, 0.8f, 0.0f}, 4, 7, 2, false},
                                             {3, "Cy", {0.3f, 0.0f, 0.7f}, 8, 10, 3, false},
                                             {4, "Di", {0.4f, 0.0f, 0.6f}, 11, 13, 4, false}};
    const auto out = tfx::aggregate_entities(tokens, labels, Aggregation::simple, join, {"O"});
    ASSERT_EQ(out.size(), 2u);
    expect_entity(out[0], "PER", 0.9f, "Ann", 0, 3);
    expect_entity(out[1], "PER", 0.7f, "Bob Cy Di", 4, 13);  // B-PER, then PER and PER continue it
}

TEST(TokenClassification, SubwordsByPrefixOrBySpaces) {
    const std::u32string text = U"New-York in Paris";
    // A word-aware tokenizer: the token's length against its span's.
    EXPECT_TRUE(tfx::is_subword_token(text, U"##rk", 6, 8, true));
    EXPECT_FALSE(tfx::is_subword_token(text, U"York", 4, 8, true));
    // Otherwise: no space before the token and none at its start.
    EXPECT_TRUE(tfx::is_subword_token(text, U"York", 4, 8, false));
    EXPECT_FALSE(tfx::is_subword_token(text, U"New", 0, 3, false));
    EXPECT_FALSE(tfx::is_subword_token(text, U"Paris", 12, 17, false));
    EXPECT_FALSE(tfx::is_subword_token(text, U" Paris", 11, 17, false));  // starts with its space
}

TEST(TokenClassification, UnknownStrategiesAreRefusedNamingTheChoices) {
    EXPECT_EQ(tfx::aggregation_named("average"), Aggregation::average);
    try {
        tfx::aggregation_named("mean");
        FAIL() << "expected an error";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("expected none, simple, first, average or max"), std::string::npos);
    }
}

}  // namespace
