// Vision models (ABI 2.8: each sequence is one image, given as pixel values): tiny/vit's
// classification logits and tiny/clip's image and text embeddings match transformers' for the
// goldens' pixel_values and ids on every backend, alone and batched, and misuse is refused
// with a reason.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/error_of.h"
#include "../unit/test_data.h"
#include "backend_options.h"
#include "core/forward_call.h"
#include "golden_logits.h"
#include "registry/auto_model.h"
#include "registry/image_classification.h"
#include "registry/image_feature_extraction.h"

namespace {

using tfx::test::error_of;
using tfx::test::logits_of;
using tfx::test::max_abs_diff;

constexpr float kTolerance = 1e-4f;

class Vision : public ::testing::TestWithParam<const char*> {};

TEST_P(Vision, ViTClassifiesTheGoldensPixelsAsTransformersDoesAloneAndBatched) {
    if (const std::string missing = tfx::test::backend_missing(GetParam()); !missing.empty()) GTEST_SKIP() << missing;
    TFX_TEST_DATA_OR_SKIP(model, "tiny/vit");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/vit.json");
    const auto session = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options(GetParam()));
    const nlohmann::json golden = tfx::test::read_json(golden_path);
    const tfx_model_info& info = session->info();
    EXPECT_EQ(info.image_tokens, 197);  // 14 x 14 patches and CLS
    for (const auto& prompt : golden.at("prompts")) {
        const std::vector<float> pixels = logits_of(prompt.at("pixel_values"));
        const std::vector<float> want = prompt.at("logits").get<std::vector<float>>();
        tfx::ForwardCall call(*session);
        auto run_alone = [&](const std::vector<float>& image) {
            const std::span<const float> out = call.run(tfx::SequenceInput{.pixels = image});
            return std::vector<float>(out.begin(), out.end());
        };
        const std::vector<float> alone = run_alone(pixels);
        ASSERT_EQ(alone.size(), want.size());
        EXPECT_LE(max_abs_diff(alone, want), kTolerance);
        // Beside another image (the same one mirrored), each row is what it is alone.
        std::vector<float> mirrored(pixels.size());
        const int64_t width = info.image_width;
        for (size_t row = 0; row < pixels.size() / static_cast<size_t>(width); ++row) {
            std::reverse_copy(pixels.begin() + static_cast<std::ptrdiff_t>(row * width),
                              pixels.begin() + static_cast<std::ptrdiff_t>((row + 1) * width),
                              mirrored.begin() + static_cast<std::ptrdiff_t>(row * width));
        }
        const std::vector<float> mirrored_alone = run_alone(mirrored);
        const std::vector<tfx::SequenceInput> both = {{.pixels = mirrored}, {.pixels = pixels}};
        const std::span<const float> batched = call.run(both);
        ASSERT_EQ(batched.size(), 2 * want.size());
        EXPECT_LE(max_abs_diff(batched.subspan(0, want.size()), mirrored_alone), kTolerance);
        EXPECT_LE(max_abs_diff(batched.subspan(want.size()), want), kTolerance);
        EXPECT_GT(max_abs_diff(mirrored_alone, want), 1e-3f) << "the mirrored image should classify differently";
    }
}

// CLIP: the golden's pixel values and texts through both towers, each call all images or all
// texts; image_embeds, text_embeds and logits_per_image (embedding_scale x their dot product)
// as transformers' CLIPModel gives them, texts alone and batched.
TEST_P(Vision, ClipEmbedsTheGoldensImageAndTextsAsTransformersDoes) {
    if (const std::string missing = tfx::test::backend_missing(GetParam()); !missing.empty()) GTEST_SKIP() << missing;
    TFX_TEST_DATA_OR_SKIP(model, "tiny/clip");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/clip.json");
    const auto session = tfx::AutoModel::from_pretrained(model, tfx::test::backend_options(GetParam()));
    const nlohmann::json golden = tfx::test::read_json(golden_path);
    const tfx_model_info& info = session->info();
    ASSERT_EQ(info.output_kind, TFX_OUTPUT_EMBEDDING);
    EXPECT_NEAR(info.embedding_scale, golden.at("logit_scale_exp").get<float>(), 1e-3f);
    for (const auto& prompt : golden.at("prompts")) {
        tfx::ForwardCall call(*session);
        const std::vector<float> pixels = logits_of(prompt.at("pixel_values"));
        const std::span<const float> image_row = call.run(tfx::SequenceInput{.pixels = pixels});
        const std::vector<float> image(image_row.begin(), image_row.end());
        EXPECT_LE(max_abs_diff(image, prompt.at("image_embeds").get<std::vector<float>>()), kTolerance);
        std::vector<std::vector<int32_t>> ids;
        std::vector<tfx::SequenceInput> texts;
        for (const auto& text : prompt.at("texts")) ids.push_back(text.at("input_ids").get<std::vector<int32_t>>());
        for (const auto& text_ids : ids) texts.push_back({.ids = text_ids});
        const std::span<const float> batched = call.run(texts);
        const auto width = static_cast<size_t>(info.output_size);
        ASSERT_EQ(batched.size(), texts.size() * width);
        for (size_t t = 0; t < texts.size(); ++t) {
            const auto& want = prompt["texts"][t];
            const std::span<const float> text = batched.subspan(t * width, width);
            EXPECT_LE(max_abs_diff(text, want.at("text_embeds").get<std::vector<float>>()), kTolerance) << t;
            double dot = 0.0;
            for (size_t i = 0; i < width; ++i) dot += static_cast<double>(text[i]) * image[i];
            const auto logit = want.at("logits_per_image");
            EXPECT_NEAR(info.embedding_scale * dot, logit.is_array() ? logit[0].get<double>() : logit.get<double>(),
                        1e-3)
                << t;
        }
        std::vector<tfx::SequenceInput> mixed = {texts.front(), tfx::SequenceInput{.pixels = pixels}};
        EXPECT_NE(error_of([&] { call.run(mixed); }).find("all images or all texts"), std::string::npos);
    }
}

INSTANTIATE_TEST_SUITE_P(Backends, Vision, ::testing::Values("cpu", "guarded", "torch"));

// The whole pipeline from the PNG file: transformers' logits, and its top 5 as labels.
TEST(ImageClassification, ThePipelineClassifiesThePngAsTransformersDoes) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/vit");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tiny/vit.json");
    const nlohmann::json golden = tfx::test::read_json(golden_path);
    tfx::ImageClassificationPipeline pipeline(model.string(), {});
    for (const auto& prompt : golden.at("prompts")) {
        const tfx::RgbImage image = tfx::read_image(model / prompt.at("image").at("file").get<std::string>());
        const std::vector<std::vector<float>> logits = pipeline.logits({image, image});
        ASSERT_EQ(logits.size(), 2u);
        EXPECT_LE(max_abs_diff(logits[0], prompt.at("logits").get<std::vector<float>>()), kTolerance);
        EXPECT_EQ(logits[0], logits[1]);
        const std::vector<tfx::ImageLabel> top = pipeline.classify({image}).front();
        ASSERT_EQ(top.size(), 5u);
        EXPECT_EQ(top[0].label, prompt.at("predicted_label").get<std::string>());
        for (size_t i = 0; i < top.size(); ++i) {
            const std::string id = std::to_string(prompt["top5"]["ids"][i].get<int64_t>());
            EXPECT_EQ(top[i].label, golden.at("id2label").at(id).get<std::string>()) << "rank " << i;
            if (i > 0) {
                EXPECT_LE(top[i].score, top[i - 1].score);
            }
        }
    }
}

TEST(VisionCalls, MisuseIsRefusedWithAReason) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/vit");
    const auto session = tfx::AutoModel::from_pretrained(model);
    tfx::ForwardCall call(*session);
    const std::vector<int32_t> ids = {1, 2, 3};
    EXPECT_NE(error_of([&] { call.run(tfx::SequenceInput{.ids = ids}); }).find("takes pixels, not token ids"),
              std::string::npos);
    const std::vector<float> small(10, 0.0f);
    EXPECT_NE(error_of([&] { call.run(tfx::SequenceInput{.pixels = small}); }).find("[3, 224, 224]"),
              std::string::npos);
    std::vector<float> nan(3 * 224 * 224, 0.0f);
    nan[5] = NAN;
    EXPECT_NE(error_of([&] { call.run(tfx::SequenceInput{.pixels = nan}); }).find("not finite"), std::string::npos);
}

TEST(VisionCalls, ATextModelTakesNoPixels) {
    TFX_TEST_DATA_OR_SKIP(model, "tiny/bert");
    const auto session = tfx::AutoModel::from_pretrained(model);
    tfx::ForwardCall call(*session);
    const std::vector<int32_t> ids = {1, 2, 3};
    const std::vector<float> pixels(12, 0.0f);
    EXPECT_NE(error_of([&] { call.run(tfx::SequenceInput{.ids = ids, .pixels = pixels}); }).find("not a vision model"),
              std::string::npos);
}

}  // namespace

// image-feature-extraction: CLIP's image_embeds for the golden's image file (decoded and
// processed by tfx), alone and beside another image; a ViTModel folder (the classifier's
// checkpoint named as its base model) pools the golden's last_hidden_state; a classifier is
// refused.
TEST(ImageFeatureExtraction, EmbedsImagesAsClipAndViTModelGiveThem) {
    TFX_TEST_DATA_OR_SKIP(clip_dir, "tiny/clip");
    TFX_TEST_DATA_OR_SKIP(clip_golden_path, "golden/tiny/clip.json");
    const nlohmann::json clip_golden = tfx::test::read_json(clip_golden_path);
    const auto& clip_prompt = clip_golden.at("prompts").at(0);
    const tfx::RgbImage house = tfx::read_image(clip_dir / clip_prompt.at("image").at("file").get<std::string>());
    tfx::ImageFeatureExtractionPipeline clip(clip_dir.string(), {});
    const auto want = clip_prompt.at("image_embeds").get<std::vector<float>>();
    const auto alone = clip({house}, tfx::Pooling::mean, false);
    ASSERT_EQ(alone.size(), 1u);
    EXPECT_LE(max_abs_diff(alone[0], want), kTolerance);
    tfx::RgbImage flipped = house;
    std::reverse(flipped.pixels.begin(), flipped.pixels.end());
    const auto both = clip({flipped, house}, tfx::Pooling::cls, true);
    EXPECT_LE(max_abs_diff(both[1], want), kTolerance);
    EXPECT_GT(max_abs_diff(both[0], want), 1e-3f);

    TFX_TEST_DATA_OR_SKIP(vit_dir, "tiny/vit");
    TFX_TEST_DATA_OR_SKIP(vit_golden_path, "golden/tiny/vit.json");
    const nlohmann::json vit_golden = tfx::test::read_json(vit_golden_path);
    const auto& vit_prompt = vit_golden.at("prompts").at(0);
    const auto base = std::filesystem::temp_directory_path() / "tfx_vit_base";
    std::filesystem::remove_all(base);
    std::filesystem::create_directories(base);
    for (const char* f : {"model.safetensors", "preprocessor_config.json"})
        std::filesystem::copy_file(vit_dir / f, base / f);
    nlohmann::json config = tfx::test::read_json(vit_dir / "config.json");
    config["architectures"] = {"ViTModel"};
    std::ofstream(base / "config.json") << config.dump();
    tfx::ImageFeatureExtractionPipeline vit(base.string(), {});
    const std::vector<float> hidden = logits_of(vit_prompt.at("last_hidden_state"));  // [197][64]
    const size_t width = 64, tokens = hidden.size() / width;
    std::vector<float> mean(width, 0.0f);
    for (size_t t = 0; t < tokens; ++t) {
        for (size_t i = 0; i < width; ++i) mean[i] += hidden[t * width + i] / static_cast<float>(tokens);
    }
    const tfx::RgbImage vit_image = tfx::read_image(vit_dir / vit_prompt.at("image").at("file").get<std::string>());
    EXPECT_LE(max_abs_diff(vit({vit_image}, tfx::Pooling::mean, false).at(0), mean), kTolerance);
    EXPECT_LE(max_abs_diff(vit({vit_image}, tfx::Pooling::cls, false).at(0), std::span(hidden).first(width)),
              kTolerance);
    EXPECT_NE(
        error_of([&] { tfx::ImageFeatureExtractionPipeline(vit_dir.string(), {}); }).find("needs a vision base model"),
        std::string::npos);
}
