// Tokenizers through the plugin ABI and AutoTokenizer: ids equal Hugging Face's for every
// shared tokenizer, tokenizer_config.json is applied as transformers applies it, and
// streaming decode never splits a character and adds up to the full decode.
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/test_data.h"
#include "core/generation.h"
#include "core/model_session.h"
#include "registry/auto_model.h"
#include "registry/auto_tokenizer.h"

namespace fs = std::filesystem;

namespace {

std::vector<nlohmann::json> read_jsonl(const fs::path& path) {
    std::vector<nlohmann::json> rows;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
    }
    return rows;
}

bool valid_utf8(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k) {
            if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
        }
        i += n;
    }
    return true;
}

}  // namespace

TEST(TokenizerPlugin, RawIdsMatchHuggingFaceForEverySharedTokenizer) {
    TFX_TEST_DATA_OR_SKIP(root, "tokenizers");
    const auto corpus = read_jsonl(root / "corpus-dev.jsonl");
    int tokenizers = 0;
    for (const auto& entry : fs::directory_iterator(root)) {
        if (!fs::exists(entry.path() / "golden-dev.jsonl")) continue;
        SCOPED_TRACE(entry.path().filename().string());
        ++tokenizers;
        auto tok = tfx::Tokenizer::open(entry.path(), {}, /*raw=*/true);
        const auto golden = read_jsonl(entry.path() / "golden-dev.jsonl");
        ASSERT_EQ(golden.size(), corpus.size());
        for (size_t i = 0; i < golden.size(); ++i) {
            const std::string text = corpus[i]["text"].get<std::string>();
            EXPECT_EQ(tok->encode(text, true), golden[i]["ids"].get<std::vector<int32_t>>()) << "line " << i;
            const auto ids = golden[i]["ids_no_special"].get<std::vector<int32_t>>();
            EXPECT_EQ(tok->encode(text, false), ids) << "line " << i;
            EXPECT_EQ(tok->decode(ids, false), golden[i]["decoded"].get<std::string>()) << "line " << i;
        }
    }
    EXPECT_EQ(tokenizers, 10);
}

TEST(TokenizerPlugin, AutoTokenizerAppliesTokenizerConfig) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    auto tok = tfx::Tokenizer::open(model, {});
    // LlamaTokenizer with add_bos_token: as HF encodes it (SOURCE.md of the model).
    EXPECT_EQ(tok->encode("Once upon a time"), (std::vector<int32_t>{1, 80, 147, 201, 282, 57}));
    EXPECT_EQ(tok->special_id("eos_token"), 2);
    EXPECT_EQ(tok->special_token("pad_token"), "<unk>");
    EXPECT_EQ(tok->encode("Once upon a time", false), (std::vector<int32_t>{80, 147, 201, 282, 57}));
}

TEST(TokenizerPlugin, StreamingDecodeNeverSplitsCharacters) {
    TFX_TEST_DATA_OR_SKIP(root, "tokenizers");
    const auto corpus = read_jsonl(root / "corpus-dev.jsonl");
    // Every shared tokenizer family (byte-level BPE, SentencePiece BPE with byte fallback,
    // WordPiece, Unigram), with and without special tokens: a put decodes a short window only.
    int tokenizers = 0;
    for (const auto& entry : fs::directory_iterator(root)) {
        if (!fs::exists(entry.path() / "tokenizer.json")) continue;
        const std::string name = entry.path().filename().string();
        SCOPED_TRACE(name);
        auto tok = tfx::Tokenizer::open(entry.path(), {}, true);
        ++tokenizers;
        for (const bool skip_special : {false, true}) {
            for (const auto& row : corpus) {
                const auto ids = tok->encode(row["text"].get<std::string>(), true);
                tfx::TextStreamer streamer(*tok, skip_special);
                std::string joined;
                for (int32_t id : ids) {
                    std::string piece = streamer.put(id);
                    EXPECT_TRUE(valid_utf8(piece) || piece.find("\xEF\xBF\xBD") != std::string::npos) << row["id"];
                    joined += piece;
                }
                joined += streamer.end();
                EXPECT_EQ(joined, tok->decode(ids, skip_special)) << row["id"] << " skip_special " << skip_special;
            }
        }
    }
    EXPECT_GE(tokenizers, 10);
}

TEST(TokenizerPlugin, MissingTokenizerJsonIsNamed) {
    auto dir = fs::temp_directory_path() / ("tfx-no-tokenizer-" + std::to_string(getpid()));
    fs::create_directories(dir);
    try {
        tfx::Tokenizer::open(dir, {});
        ADD_FAILURE() << "opened a folder without tokenizer.json";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("no tokenizer.json"), std::string::npos) << e.what();
    }
    std::ofstream(dir / "tokenizer.json") << R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [42]}})";
    try {
        tfx::Tokenizer::open(dir, {});
        ADD_FAILURE() << "accepted a malformed tokenizer.json";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("merges"), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
}

TEST(TokenizerPlugin, OnceUponATimeContinuesAsTheReference) {
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    TFX_TEST_DATA_OR_SKIP(golden_path, "golden/tinystories-656k.json");
    std::ifstream in(golden_path);
    const auto golden = nlohmann::json::parse(in);
    const nlohmann::json* reference = nullptr;
    for (const auto& p : golden["prompts"]) {
        if (p["name"] == "once_upon_a_time") reference = &p;
    }
    ASSERT_NE(reference, nullptr);
    auto tok = tfx::Tokenizer::open(model, {});
    auto session = tfx::AutoModel::from_pretrained(model, {});
    tfx::GenerationConfig greedy;
    greedy.ignore_eos = true;
    greedy.max_new_tokens = 32;
    auto result = tfx::generate(*session, {tok->encode("Once upon a time")}, greedy);
    const auto expected = (*reference)["greedy"]["new_tokens"].get<std::vector<int32_t>>();
    EXPECT_EQ(result.new_tokens[0], expected);
    EXPECT_EQ(tok->decode(result.new_tokens[0], true), tok->decode(expected, true));
    EXPECT_EQ(tok->decode(result.new_tokens[0], true).substr(0, 19), ", a little girl nam");
}
