// GGUF files' own tokenizers (registry/gguf_tokenizer.h) against the tokenizer.json files they
// were converted from: tinystories' GGUF (made by llama.cpp's converter; a SentencePiece-kind
// vocabulary with scores, no merges), and GGUF tokenizer metadata written here the way
// llama.cpp's converter writes it from the shared Llama 3, Qwen 3 (byte-level BPE with merges)
// and Llama 2 (SentencePiece) tokenizers. Every corpus text must encode to the same ids and
// decode to the same text.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "../unit/gguf_builder.h"
#include "../unit/test_data.h"
#include "core/gguf.h"
#include "registry/auto_tokenizer.h"

namespace {

namespace fs = std::filesystem;

std::vector<std::string> corpus_texts(const fs::path& path) {
    std::vector<std::string> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
        if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
    }
    return out;
}

// A GGUF file of metadata only (version 3, no tensors), written the way the format lays it out.
class GgufWriter {
  public:
    void string(const std::string& key, const std::string& value) {
        entry(key, 8);
        body_.str(value);
    }
    void u32(const std::string& key, uint32_t value) {
        entry(key, 4);
        body_.put(value);
    }
    void flag(const std::string& key, bool value) {
        entry(key, 7);
        body_.put(static_cast<uint8_t>(value));
    }
    void strings(const std::string& key, const std::vector<std::string>& values) {
        entry(key, 9);
        body_.put(uint32_t{8});
        body_.put(static_cast<uint64_t>(values.size()));
        for (const auto& v : values) body_.str(v);
    }
    void floats(const std::string& key, const std::vector<float>& values) { array(key, 6, values); }
    void ints(const std::string& key, const std::vector<int32_t>& values) { array(key, 5, values); }
    void write(const fs::path& path) const {
        tfx::test::GgufBuilder head;
        for (char c : std::string("GGUF")) head.put(static_cast<uint8_t>(c));
        head.put(uint32_t{3});  // version
        head.put(uint64_t{0});  // tensors
        head.put(count_);
        head.bytes.insert(head.bytes.end(), body_.bytes.begin(), body_.bytes.end());
        std::ofstream(path, std::ios::binary)
            .write(reinterpret_cast<const char*>(head.bytes.data()), static_cast<std::streamsize>(head.bytes.size()));
    }

  private:
    void entry(const std::string& key, uint32_t type) {
        ++count_;
        body_.str(key);
        body_.put(type);
    }
    template <class T>
    void array(const std::string& key, uint32_t element, const std::vector<T>& values) {
        entry(key, 9);
        body_.put(element);
        body_.put(static_cast<uint64_t>(values.size()));
        for (T v : values) body_.put(v);
    }
    tfx::test::GgufBuilder body_;
    uint64_t count_ = 0;
};

// The GGUF tokenizer metadata llama.cpp's converter writes for a tokenizer.json: tokens by id,
// types (control for special added tokens, user-defined for the others), and for byte-level
// vocabularies the merges and pre-tokenizer name. A SentencePiece vocabulary stores scores
// instead (tokenizer.model's), which rank the pieces as the merges that make them: a piece's
// score here is minus the rank of the first merge that makes it (pieces no merge makes rank
// after all merges).
fs::path gguf_from_tokenizer_json(const fs::path& dir, const std::string& kind, const std::string& pre,
                                  const std::string& bos, const std::string& eos, bool add_bos) {
    nlohmann::json t;
    std::ifstream(dir / "tokenizer.json") >> t;
    std::vector<std::string> tokens;
    std::vector<int32_t> types;
    auto place = [&](size_t id, const std::string& token, int32_t type) {
        if (tokens.size() <= id) {
            tokens.resize(id + 1);
            types.resize(id + 1, 1);
        }
        tokens[id] = token;
        types[id] = type;
    };
    for (const auto& [token, id] : t["model"]["vocab"].items()) place(id.get<size_t>(), token, 1);
    for (const auto& a : t["added_tokens"]) {
        place(a["id"].get<size_t>(), a["content"].get<std::string>(), a["special"].get<bool>() ? 3 : 4);
    }
    auto id_of = [&](const std::string& token) {
        return static_cast<uint32_t>(std::find(tokens.begin(), tokens.end(), token) - tokens.begin());
    };
    GgufWriter w;
    w.string("general.architecture", "llama");
    w.string("tokenizer.ggml.model", kind);
    w.strings("tokenizer.ggml.tokens", tokens);
    w.ints("tokenizer.ggml.token_type", types);
    if (kind == "gpt2") {
        std::vector<std::string> merges;
        for (const auto& m : t["model"]["merges"]) {
            merges.push_back(m.is_string() ? m.get<std::string>()
                                           : m[0].get<std::string>() + " " + m[1].get<std::string>());
        }
        w.strings("tokenizer.ggml.merges", merges);
        w.string("tokenizer.ggml.pre", pre);
    } else {
        const auto& merges = t["model"]["merges"];
        std::map<std::string, size_t> first_merge;
        for (size_t rank = 0; rank < merges.size(); ++rank) {
            const auto& m = merges[rank];
            const std::string made = m.is_string() ? [&] {
                std::string s = m.get<std::string>();
                s.erase(s.find(' '), 1);
                return s;
            }()
                                                   : m[0].get<std::string>() + m[1].get<std::string>();
            first_merge.emplace(made, rank);
        }
        std::vector<float> scores(tokens.size());
        for (size_t i = 0; i < scores.size(); ++i) {
            const auto it = first_merge.find(tokens[i]);
            scores[i] = -static_cast<float>(it != first_merge.end() ? it->second : merges.size() + i);
        }
        w.floats("tokenizer.ggml.scores", scores);
    }
    w.u32("tokenizer.ggml.bos_token_id", id_of(bos));
    w.u32("tokenizer.ggml.eos_token_id", id_of(eos));
    w.flag("tokenizer.ggml.add_bos_token", add_bos);
    const fs::path path = fs::temp_directory_path() / ("tfx-tokenizer-" + dir.filename().string() + ".gguf");
    w.write(path);
    return path;
}

// Same ids for every corpus text (with and without special tokens) and the same decoded text.
void expect_same_tokenizer(const tfx::Tokenizer& ours, const tfx::Tokenizer& reference,
                           const std::vector<std::string>& texts, bool with_special) {
    for (const std::string& text : texts) {
        SCOPED_TRACE(text.substr(0, 60));
        const auto ids = reference.encode(text, false);
        EXPECT_EQ(ours.encode(text, false), ids);
        if (with_special) {
            EXPECT_EQ(ours.encode(text, true), reference.encode(text, true));
        }
        EXPECT_EQ(ours.decode(ids, false), reference.decode(ids, false));
        EXPECT_EQ(ours.decode(ids, true), reference.decode(ids, true));
    }
}

TEST(GgufTokenizer, LlamaCppsTinystoriesFileTokenizesAsItsTokenizerJson) {
    TFX_TEST_DATA_OR_SKIP(gguf, "quant/gguf/tinystories-656k-q8_0.gguf");
    TFX_TEST_DATA_OR_SKIP(model, "models/tinystories-656k");
    TFX_TEST_DATA_OR_SKIP(corpus, "tokenizers/corpus-dev.jsonl");
    auto ours = tfx::Tokenizer::open(gguf, {});
    auto reference = tfx::Tokenizer::open(model, {});
    expect_same_tokenizer(*ours, *reference, corpus_texts(corpus), true);
    EXPECT_EQ(ours->special_id("bos_token"), 1);
    EXPECT_EQ(ours->special_id("eos_token"), 2);
}

TEST(GgufTokenizer, ByteLevelAndSentencePieceMetadataTokenizeAsTheirSources) {
    TFX_TEST_DATA_OR_SKIP(root, "tokenizers");
    const auto texts = corpus_texts(root / "corpus-dev.jsonl");
    struct Case {
        const char* name;
        const char* kind;
        const char* pre;
        const char* bos;
        const char* eos;
        bool add_bos;
    };
    for (const Case& c : {Case{"llama3", "gpt2", "llama-bpe", "<|begin_of_text|>", "<|end_of_text|>", false},
                          Case{"qwen3", "gpt2", "qwen2", "<|endoftext|>", "<|im_end|>", false},
                          Case{"llama2", "llama", "", "<s>", "</s>", true}}) {
        SCOPED_TRACE(c.name);
        const fs::path gguf = gguf_from_tokenizer_json(root / c.name, c.kind, c.pre, c.bos, c.eos, c.add_bos);
        auto ours = tfx::Tokenizer::open(gguf, {});
        auto reference = tfx::Tokenizer::open(root / c.name, {});
        expect_same_tokenizer(*ours, *reference, texts, true);
        fs::remove(gguf);
    }
}

TEST(GgufTokenizer, MetadataTfxCannotBuildIsNamed) {
    auto refused = [](GgufWriter w, const std::string& expected) {
        const fs::path path = fs::temp_directory_path() / "tfx-bad-tokenizer.gguf";
        w.write(path);
        try {
            tfx::Tokenizer::open(path, {});
            ADD_FAILURE() << "accepted: " << expected;
        } catch (const std::exception& e) {
            EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
        }
        fs::remove(path);
    };
    GgufWriter none;
    none.string("general.architecture", "llama");
    refused(none, "metadata 'tokenizer.ggml.model' is missing");
    GgufWriter bert = none;
    bert.string("tokenizer.ggml.model", "bert");
    refused(bert, "metadata 'tokenizer.ggml.model' is 'bert'; tfx builds tokenizers of kinds 'llama'");
    GgufWriter no_scores = none;
    no_scores.string("tokenizer.ggml.model", "llama");
    no_scores.strings("tokenizer.ggml.tokens", {"a", "b"});
    refused(no_scores, "metadata 'tokenizer.ggml.scores' is missing");
    GgufWriter short_scores = no_scores;
    short_scores.floats("tokenizer.ggml.scores", {0.0f});
    refused(short_scores, "'tokenizer.ggml.scores' must be an array of 2 numbers, one per token");
    GgufWriter bad_merge = none;
    bad_merge.string("tokenizer.ggml.model", "gpt2");
    bad_merge.strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
    bad_merge.strings("tokenizer.ggml.merges", {"ab"});
    refused(bad_merge, "'tokenizer.ggml.merges' must hold pairs 'left right', got 'ab'");
    GgufWriter bad_bos = no_scores;
    bad_bos.floats("tokenizer.ggml.scores", {0.0f, -1.0f});
    bad_bos.u32("tokenizer.ggml.bos_token_id", 7);
    refused(bad_bos, "'tokenizer.ggml.bos_token_id' must be a token id below 2");
    GgufWriter unknown_pre = none;
    unknown_pre.string("tokenizer.ggml.model", "gpt2");
    unknown_pre.strings("tokenizer.ggml.tokens", {"a", "b", "ab"});
    unknown_pre.strings("tokenizer.ggml.merges", {"a b"});
    unknown_pre.string("tokenizer.ggml.pre", "falcon");
    refused(unknown_pre, "'tokenizer.ggml.pre' is 'falcon'");
}

}  // namespace
