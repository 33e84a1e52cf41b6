// Public API behaviour: errors (invalid UTF-8, malformed tokenizer.json), truncation and
// padding, offsets, pairs, special tokens, streaming decode and concurrent use.
#include <gtest/gtest.h>

#include <thread>

#include "test_util.h"
#include "tokenizer.h"
#include "utf8.h"

namespace tfx::tok {
namespace {

using nlohmann::json;

json tiny_document() {
    json vocab = {{"<unk>", 0}, {"[CLS]", 1}, {"[SEP]", 2}, {"[PAD]", 3}, {"a", 4},
                  {"b", 5},     {"c", 6},     {"d", 7},     {"e", 8},     {"f", 9}};
    return {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", json::array({{{"id", 1},
                                           {"content", "[CLS]"},
                                           {"single_word", false},
                                           {"lstrip", false},
                                           {"rstrip", false},
                                           {"normalized", false},
                                           {"special", true}},
                                          {{"id", 2},
                                           {"content", "[SEP]"},
                                           {"single_word", false},
                                           {"lstrip", false},
                                           {"rstrip", false},
                                           {"normalized", false},
                                           {"special", true}}})},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "WhitespaceSplit"}}},
            {"post_processor",
             {{"type", "TemplateProcessing"},
              {"single", "[CLS] $A [SEP]"},
              {"pair", "[CLS] $A [SEP] $B:1 [SEP]:1"},
              {"special_tokens",
               {{"[CLS]", {{"id", "[CLS]"}, {"ids", {1}}, {"tokens", {"[CLS]"}}}},
                {"[SEP]", {{"id", "[SEP]"}, {"ids", {2}}, {"tokens", {"[SEP]"}}}}}}}},
            {"decoder", nullptr},
            {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}}};
}

Tokenizer tiny() {
    return Tokenizer::from_json_text(tiny_document().dump());
}

// Expects loading to fail with a message containing `needle`.
void expect_load_error(const std::string& text, const std::string& needle) {
    try {
        Tokenizer::from_json_text(text);
        ADD_FAILURE() << "loading succeeded; expected an error mentioning " << needle;
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    }
}

json bpe_document(json merges, json vocab = {{"a", 0}, {"b", 1}, {"ab", 2}}) {
    json doc = tiny_document();
    doc["post_processor"] = nullptr;
    doc["added_tokens"] = json::array();
    doc["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
    return doc;
}

TEST(Errors, InvalidUtf8InputThrows) {
    const auto tok = tiny();
    for (const std::string bad : {"\xFF", "abc\xC3", "\xED\xA0\x80", "\xC0\xAF", "\xF4\x90\x80\x80", "a\x80"}) {
        try {
            tok.encode(bad);
            ADD_FAILURE() << "no error for invalid UTF-8";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("UTF-8"), std::string::npos);
        }
    }
    EXPECT_NO_THROW(tok.encode("\xF0\x9F\x8D\x95 \xC3\xA9"));
}

TEST(Errors, MalformedJsonNamesTheField) {
    expect_load_error(bpe_document({"a b", "ab"}).dump(), R"(model.merges[1]: expected "a b" string or [a, b] pair)");
    expect_load_error(bpe_document(json::array({json::array({"a"})})).dump(), "model.merges[0]: expected");
    expect_load_error(bpe_document({"a zz"}).dump(), R"(model.merges[0]: token "zz" is not in the vocabulary)");
    expect_load_error(bpe_document({"a b"}, {{"a", "x"}}).dump(), R"(model.vocab["a"]: expected an integer id)");

    json doc = tiny_document();
    doc["pre_tokenizer"] = {{"type", "NoSuchThing"}};
    expect_load_error(doc.dump(), "pre_tokenizer.type: unsupported type \"NoSuchThing\"");

    doc = tiny_document();
    doc["normalizer"] = {{"type", "Sequence"},
                         {"normalizers", json::array({{{"type", "NFC"}}, {{"type", "Replace"}, {"content", "x"}}})}};
    expect_load_error(doc.dump(), "normalizer.normalizers[1].pattern");

    doc = tiny_document();
    doc["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
    expect_load_error(doc.dump(), "pre_tokenizer.pattern.Regex");

    doc = tiny_document();
    doc["added_tokens"][0].erase("content");
    expect_load_error(doc.dump(), "added_tokens[0].content");

    doc = tiny_document();
    doc.erase("model");
    expect_load_error(doc.dump(), "tokenizer.json: model");

    expect_load_error("{\"model\": [1, 2", "invalid JSON");
    expect_load_error("[]", "top level must be an object");
}

TEST(Truncation, KeepsSpecialTokensAndReportsOverflow) {
    auto tok = tiny();
    tok.set_truncation(TruncationParams{.max_length = 5});
    auto e = tok.encode("a b c d e f");
    EXPECT_EQ(e.ids, (std::vector<int32_t>{1, 4, 5, 6, 2}));
    ASSERT_EQ(e.overflowing.size(), 1u);
    EXPECT_EQ(e.overflowing[0].ids, (std::vector<int32_t>{1, 7, 8, 9, 2}));

    tok.set_truncation(TruncationParams{.max_length = 5, .stride = 1});
    e = tok.encode("a b c d e f");
    ASSERT_EQ(e.overflowing.size(), 2u);
    EXPECT_EQ(e.overflowing[0].ids, (std::vector<int32_t>{1, 6, 7, 8, 2}));
    EXPECT_EQ(e.overflowing[1].ids, (std::vector<int32_t>{1, 8, 9, 2}));

    tok.set_truncation(TruncationParams{.max_length = 3, .direction = Direction::Left});
    EXPECT_EQ(tok.encode("a b c d e f", false).ids, (std::vector<int32_t>{7, 8, 9}));

    EXPECT_THROW(tok.set_truncation(TruncationParams{.max_length = 3, .stride = 3}), Error);
}

TEST(Truncation, PairStrategies) {
    auto tok = tiny();
    tok.set_truncation(TruncationParams{.max_length = 6});
    auto e = tok.encode_pair("a b c d e", "f a", false);
    EXPECT_EQ(e.ids, (std::vector<int32_t>{4, 5, 6, 7, 9, 4}));
    EXPECT_EQ(e.type_ids, (std::vector<uint32_t>{0, 0, 0, 0, 1, 1}));

    tok.set_truncation(TruncationParams{.max_length = 4, .strategy = TruncationStrategy::OnlySecond});
    EXPECT_EQ(tok.encode_pair("a b", "c d e", false).ids, (std::vector<int32_t>{4, 5, 6, 7}));
    EXPECT_THROW(tok.encode("a b c d e", false), Error);
}

TEST(Padding, BatchLongestFixedAndMultiple) {
    auto tok = tiny();
    tok.set_padding(PaddingParams{.pad_id = 3, .pad_token = "[PAD]"});
    const std::vector<std::string_view> texts{"a", "a b c"};
    auto batch = tok.encode_batch(texts);
    ASSERT_EQ(batch.size(), 2u);
    EXPECT_EQ(batch[0].ids, (std::vector<int32_t>{1, 4, 2, 3, 3}));
    EXPECT_EQ(batch[0].attention_mask, (std::vector<uint32_t>{1, 1, 1, 0, 0}));
    EXPECT_EQ(batch[0].special_tokens_mask, (std::vector<uint32_t>{1, 0, 1, 1, 1}));
    EXPECT_EQ(batch[0].tokens.back(), "[PAD]");
    EXPECT_EQ(batch[1].ids.size(), 5u);

    tok.set_padding(PaddingParams{.pad_to_multiple_of = 4, .direction = Direction::Left, .pad_id = 3});
    batch = tok.encode_batch(texts);
    EXPECT_EQ(batch[0].ids, (std::vector<int32_t>{3, 3, 3, 3, 3, 1, 4, 2}));
    EXPECT_EQ(batch[1].ids.size(), 8u);

    tok.set_padding(PaddingParams{.fixed_length = 4, .pad_id = 3});
    EXPECT_EQ(tok.encode("a", false).ids, (std::vector<int32_t>{4, 3, 3, 3}));
}

TEST(Padding, TruncationAndPaddingFromTokenizerJson) {
    json doc = tiny_document();
    doc["truncation"] = {{"max_length", 4}, {"stride", 0}, {"strategy", "LongestFirst"}, {"direction", "Right"}};
    doc["padding"] = {
        {"strategy", {{"Fixed", 6}}}, {"direction", "Left"}, {"pad_to_multiple_of", nullptr}, {"pad_id", 3},
        {"pad_type_id", 0},           {"pad_token", "[PAD]"}};
    const auto tok = Tokenizer::from_json_text(doc.dump());
    ASSERT_TRUE(tok.truncation().has_value());
    EXPECT_EQ(tok.encode("a b c d e").ids, (std::vector<int32_t>{3, 3, 1, 4, 5, 2}));
}

TEST(Encode, EmptyInputAndUnknownIds) {
    const auto tok = tiny();
    EXPECT_EQ(tok.encode("", true).ids, (std::vector<int32_t>{1, 2}));
    EXPECT_TRUE(tok.encode("", false).ids.empty());
    const std::vector<int32_t> ids{4, 9999, -1, 5};
    EXPECT_EQ(tok.decode(ids), "a b");
    EXPECT_EQ(tok.num_special_tokens_to_add(false), 2u);
    EXPECT_EQ(tok.num_special_tokens_to_add(true), 3u);
}

// --- With the shared reference tokenizers ---------------------------------------------

TEST(RealTokenizers, OffsetsPointIntoTheOriginalText) {
    TFX_REQUIRE_TEST_DATA(dir);
    const auto bert = Tokenizer::from_file(*dir / "bert-base-uncased" / "tokenizer.json");
    const auto e = bert.encode("Hello, World!");
    EXPECT_EQ(e.tokens, (std::vector<std::string>{"[CLS]", "hello", ",", "world", "!", "[SEP]"}));
    EXPECT_EQ(e.offsets, (std::vector<Offsets>{{0, 0}, {0, 5}, {5, 6}, {7, 12}, {12, 13}, {0, 0}}));
    EXPECT_EQ(e.special_tokens_mask, (std::vector<uint32_t>{1, 0, 0, 0, 0, 1}));

    const auto llama3 = Tokenizer::from_file(*dir / "llama3" / "tokenizer.json");
    EXPECT_EQ(llama3.encode("Hello world").offsets, (std::vector<Offsets>{{0, 5}, {5, 11}}));
    const auto llama2 = Tokenizer::from_file(*dir / "llama2" / "tokenizer.json");
    EXPECT_EQ(llama2.encode("Hello world").offsets, (std::vector<Offsets>{{0, 0}, {0, 5}, {5, 11}}));
    // "é" is two bytes: a token covering it spans both.
    const auto caf = llama3.encode("caf\xC3\xA9");
    EXPECT_EQ(caf.offsets.back().end, 5u);
}

TEST(RealTokenizers, PairsSpecialTokensAndLookups) {
    TFX_REQUIRE_TEST_DATA(dir);
    const auto bert = Tokenizer::from_file(*dir / "bert-base-uncased" / "tokenizer.json");
    const auto pair = bert.encode_pair("hello", "world");
    EXPECT_EQ(pair.type_ids, (std::vector<uint32_t>{0, 0, 0, 1, 1}));
    EXPECT_EQ(pair.special_tokens_mask, (std::vector<uint32_t>{1, 0, 1, 0, 1}));
    const std::vector<int32_t> ids{101, 7592, 102};
    EXPECT_EQ(bert.decode(ids, true), "hello");
    EXPECT_EQ(bert.decode(ids, false), "[CLS] hello [SEP]");

    auto llama3 = Tokenizer::from_file(*dir / "llama3" / "tokenizer.json");
    EXPECT_EQ(llama3.token_to_id("<|begin_of_text|>"), 128000);
    EXPECT_EQ(llama3.id_to_token(128000), "<|begin_of_text|>");
    EXPECT_EQ(llama3.vocab_size(true), 128256u);
    EXPECT_EQ(llama3.encode("<|begin_of_text|>", false).ids, (std::vector<int32_t>{128000}));
    llama3.set_encode_special_tokens(true);
    EXPECT_GT(llama3.encode("<|begin_of_text|>", false).ids.size(), 1u);
}

TEST(RealTokenizers, StreamingNeverSplitsCharacters) {
    TFX_REQUIRE_TEST_DATA(dir);
    for (const char* name : {"llama2", "llama3", "gemma3"}) {
        const auto tok = Tokenizer::from_file(*dir / name / "tokenizer.json");
        const std::string text = "I love \xF0\x9F\x8D\x95 and \xE4\xBD\xA0\xE5\xA5\xBD, caf\xC3\xA9!";
        const auto ids = tok.encode(text, false).ids;
        auto stream = tok.decode_stream();
        std::string joined;
        size_t held_back = 0;
        for (const int32_t id : ids) {
            const std::string piece = stream.step(id);
            EXPECT_FALSE(utf8::find_invalid(piece).has_value()) << name;
            held_back += piece.empty();
            joined += piece;
        }
        joined += stream.flush();
        EXPECT_EQ(joined, tok.decode(ids)) << name;
        if (std::string_view(name) == "llama2") {
            EXPECT_GT(held_back, 0u);  // byte-fallback bytes of the emoji
        }
    }
}

TEST(RealTokenizers, ConcurrentEncodeIsConsistent) {
    TFX_REQUIRE_TEST_DATA(dir);
    const auto tok = Tokenizer::from_file(*dir / "llama3" / "tokenizer.json");
    const auto rows = test::read_jsonl(*dir / "corpus-dev.jsonl");
    std::vector<std::vector<int32_t>> expected;
    for (const auto& r : rows) expected.push_back(tok.encode(r["text"].get<std::string>(), false).ids);
    std::vector<std::thread> threads;
    std::vector<int> mismatches(4, 0);
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
            for (int round = 0; round < 5; ++round)
                for (size_t i = 0; i < rows.size(); ++i)
                    mismatches[static_cast<size_t>(t)] +=
                        tok.encode(rows[i]["text"].get<std::string>(), false).ids != expected[i];
        });
    for (auto& th : threads) th.join();
    for (int m : mismatches) EXPECT_EQ(m, 0);
}

}  // namespace
}  // namespace tfx::tok
