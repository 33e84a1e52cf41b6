// zero-shot-classification's scoring (transformers' ZeroShotClassificationPipeline.postprocess),
// the entailment label's lookup, hypotheses and candidate labels, on hand-made inputs.
#include <gtest/gtest.h>

#include <cmath>

#include "registry/zero_shot_classification.h"

namespace {

// NLI labels: contradiction, neutral, entailment; three candidates.
const std::vector<float> kLogits = {1.0f,  0.0f, 2.0f,   // candidate 0
                                    0.5f,  0.0f, -1.0f,  // candidate 1
                                    -2.0f, 3.0f, 0.0f};  // candidate 2

double sigmoid_of_difference(double entail, double contradiction) {
    return 1.0 / (1.0 + std::exp(contradiction - entail));
}

TEST(ZeroShot, SingleLabelIsOneSoftmaxOverTheEntailmentLogits) {
    const auto scores = tfx::zero_shot_scores(kLogits, 3, 2, false);
    const double total = std::exp(2.0) + std::exp(-1.0) + std::exp(0.0);
    ASSERT_EQ(scores.size(), 3u);
    EXPECT_NEAR(scores[0], std::exp(2.0) / total, 1e-6);
    EXPECT_NEAR(scores[1], std::exp(-1.0) / total, 1e-6);
    EXPECT_NEAR(scores[2], 1.0 / total, 1e-6);
}

TEST(ZeroShot, MultiLabelScoresEachCandidateEntailmentAgainstContradiction) {
    const auto scores = tfx::zero_shot_scores(kLogits, 3, 2, true);
    EXPECT_NEAR(scores[0], sigmoid_of_difference(2.0, 1.0), 1e-6);
    EXPECT_NEAR(scores[1], sigmoid_of_difference(-1.0, 0.5), 1e-6);
    EXPECT_NEAR(scores[2], sigmoid_of_difference(0.0, -2.0), 1e-6);  // neutral's 3 plays no part
    // One candidate: the same as multi_label.
    const auto one = tfx::zero_shot_scores(std::span(kLogits).first(3), 3, 2, false);
    EXPECT_NEAR(one[0], scores[0], 1e-6);
}

TEST(ZeroShot, EntailmentAtZeroMeansContradictionIsTheLastLabel) {
    // Labels entailment, neutral, contradiction.
    const auto scores = tfx::zero_shot_scores(std::span(kLogits).first(3), 3, 0, true);
    EXPECT_NEAR(scores[0], sigmoid_of_difference(1.0, 2.0), 1e-6);
    // No entailment label (-1): the last label, against the first.
    const auto last = tfx::zero_shot_scores(std::span(kLogits).first(3), 3, -1, true);
    EXPECT_NEAR(last[0], sigmoid_of_difference(2.0, 1.0), 1e-6);
}

TEST(ZeroShot, EntailmentIsTheFirstLabelStartingWithEntailInAnyCase) {
    EXPECT_EQ(tfx::entailment_label({"CONTRADICTION", "NEUTRAL", "ENTAILMENT"}), 2);
    EXPECT_EQ(tfx::entailment_label({"entails", "entailment"}), 0);
    EXPECT_EQ(tfx::entailment_label({"LABEL_0", "LABEL_1"}), -1);
}

TEST(ZeroShot, HypothesesAndCandidateLabels) {
    EXPECT_EQ(tfx::hypothesis_for("This example is {}.", "sports"), "This example is sports.");
    EXPECT_EQ(tfx::hypothesis_for("{} it is", "news"), "news it is");
    EXPECT_THROW(tfx::hypothesis_for("This example is about", "sports"), std::exception);
    EXPECT_EQ(tfx::candidate_labels_of(" sports, politics ,,science  "),
              (std::vector<std::string>{"sports", "politics", "science"}));
    EXPECT_TRUE(tfx::candidate_labels_of(" , ").empty());
}

}  // namespace
