// Unit tests of the pipeline components, driven through small tokenizer.json documents so
// that each behaviour is checked as users configure it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "normalized_string.h"
#include "test_util.h"
#include "tokenizer.h"

namespace tfx::tok {
namespace {

using nlohmann::json;

// A tokenizer.json around the given parts (absent parts are null).
Tokenizer make(json model, json normalizer = nullptr, json pre_tokenizer = nullptr, json decoder = nullptr,
               json added_tokens = json::array(), json post_processor = nullptr) {
    const json doc = {{"version", "1.0"},
                      {"truncation", nullptr},
                      {"padding", nullptr},
                      {"added_tokens", added_tokens},
                      {"normalizer", normalizer},
                      {"pre_tokenizer", pre_tokenizer},
                      {"post_processor", post_processor},
                      {"decoder", decoder},
                      {"model", model}};
    return Tokenizer::from_json_text(doc.dump());
}

json word_level(const std::vector<std::string>& tokens, const std::string& unk = "<unk>") {
    json vocab = json::object();
    vocab[unk] = 0;
    for (const auto& t : tokens)
        if (!vocab.contains(t)) vocab[t] = static_cast<int>(vocab.size());
    return {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", unk}};
}

json added(const std::string& content, bool special, bool lstrip = false, bool rstrip = false, bool single_word = false,
           bool normalized = false) {
    return {{"id", 0},          {"content", content},       {"single_word", single_word}, {"lstrip", lstrip},
            {"rstrip", rstrip}, {"normalized", normalized}, {"special", special}};
}

std::vector<Offsets> offsets_of(const Tokenizer& tok, std::string_view text) {
    return tok.encode(text, false).offsets;
}

// --- NormalizedString alignments ---------------------------------------------------

TEST(NormalizedString, DecompositionKeepsOriginalSpans) {
    NormalizedString ns("H\xC3\xA9llo");  // "Héllo"
    ns.unicode_normalize(NormalForm::NFD);
    EXPECT_EQ(ns.get(), "He\xCC\x81llo");
    // "e" + U+0301 both come from the 2-byte "é" at [1, 3).
    EXPECT_EQ(ns.to_original(1, 4), (std::pair<size_t, size_t>{1, 3}));
    EXPECT_EQ(ns.to_original(4, 6), (std::pair<size_t, size_t>{3, 5}));
}

TEST(NormalizedString, ReplaceAndPrependAlignToReplacedText) {
    NormalizedString ns("a b");
    ns.replace(LiteralPattern(" "), "\xE2\x96\x81");
    ns.prepend("\xE2\x96\x81");
    EXPECT_EQ(ns.get(),
              "\xE2\x96\x81"
              "a"
              "\xE2\x96\x81"
              "b");
    EXPECT_EQ(ns.to_original(0, 4), (std::pair<size_t, size_t>{0, 1}));  // "▁a" -> "a"
    EXPECT_EQ(ns.to_original(4, 8), (std::pair<size_t, size_t>{1, 3}));  // "▁b" -> " b"
}

TEST(NormalizedString, LowercaseUsesFullMapping) {
    NormalizedString ns("\xC4\xB0X");  // U+0130 lowercases to "i" + U+0307
    ns.lowercase();
    EXPECT_EQ(ns.get(), "i\xCC\x87x");
    EXPECT_EQ(ns.to_original(0, 3), (std::pair<size_t, size_t>{0, 2}));
}

TEST(NormalizedString, StripRemovesUnicodeWhitespace) {
    NormalizedString ns("\xE3\x80\x80 ab \t");
    ns.strip(true, true);
    EXPECT_EQ(ns.get(), "ab");
    EXPECT_EQ(ns.to_original(0, 2), (std::pair<size_t, size_t>{4, 6}));
}

// --- Split behaviours -------------------------------------------------------------------

std::vector<Offsets> split_offsets(const std::string& behavior) {
    const json pre = {{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", false}};
    return offsets_of(make(word_level({}), nullptr, pre), "the-final--countdown");
}

TEST(PreTokenizers, SplitBehaviors) {
    using O = std::vector<Offsets>;
    EXPECT_EQ(split_offsets("Removed"), (O{{0, 3}, {4, 9}, {11, 20}}));
    EXPECT_EQ(split_offsets("Isolated"), (O{{0, 3}, {3, 4}, {4, 9}, {9, 10}, {10, 11}, {11, 20}}));
    EXPECT_EQ(split_offsets("MergedWithPrevious"), (O{{0, 4}, {4, 10}, {10, 11}, {11, 20}}));
    EXPECT_EQ(split_offsets("MergedWithNext"), (O{{0, 3}, {3, 9}, {9, 10}, {10, 20}}));
    EXPECT_EQ(split_offsets("Contiguous"), (O{{0, 3}, {3, 4}, {4, 9}, {9, 11}, {11, 20}}));
}

TEST(PreTokenizers, SplitRegexInvertKeepsMatches) {
    const json pre = {{"type", "Split"}, {"pattern", {{"Regex", "\\d+"}}}, {"behavior", "Removed"}, {"invert", true}};
    EXPECT_EQ(offsets_of(make(word_level({}), nullptr, pre), "ab12cd345"), (std::vector<Offsets>{{2, 4}, {6, 9}}));
}

TEST(PreTokenizers, WhitespaceAndDigits) {
    const auto ws = make(word_level({}), nullptr, {{"type", "Whitespace"}});
    EXPECT_EQ(offsets_of(ws, "Hi, you!"), (std::vector<Offsets>{{0, 2}, {2, 3}, {4, 7}, {7, 8}}));
    const auto digits = make(word_level({}), nullptr, {{"type", "Digits"}, {"individual_digits", true}});
    EXPECT_EQ(offsets_of(digits, "a12"), (std::vector<Offsets>{{0, 1}, {1, 2}, {2, 3}}));
}

TEST(PreTokenizers, MetaspacePrependSchemeFirstSkipsPiecesAfterAddedTokens) {
    const json pre = {
        {"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "first"}, {"split", true}};
    const auto tok = make(word_level({"<s>", "\xE2\x96\x81hi", "hi", "\xE2\x96\x81there"}), nullptr, pre, nullptr,
                          json::array({added("<s>", true)}));
    EXPECT_EQ(tok.encode("hi there", false).tokens, (std::vector<std::string>{"\xE2\x96\x81hi", "\xE2\x96\x81there"}));
    EXPECT_EQ(tok.encode("<s>hi there", false).tokens, (std::vector<std::string>{"<s>", "hi", "\xE2\x96\x81there"}));
}

TEST(PreTokenizers, ByteLevelMapsBytesAndSplitsLikeGpt2) {
    const json pre = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}};
    const auto tok = make(word_level({}), nullptr, pre);
    const auto e = tok.encode("it's  \xC3\xA9", false);
    // " it" / "'s" / " " / " é" after the prefix space; offsets point into the original.
    EXPECT_EQ(e.offsets, (std::vector<Offsets>{{0, 2}, {2, 4}, {4, 5}, {5, 8}}));
}

// --- Models -----------------------------------------------------------------------------

json bpe(json vocab, json merges, json extra = json::object()) {
    json m = {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}};
    m.update(extra);
    return m;
}

std::vector<int32_t> ids_of(const Tokenizer& tok, std::string_view text) {
    return tok.encode(text, false).ids;
}

TEST(Bpe, AppliesMergesByRank) {
    const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"ab", 3}, {"bc", 4}, {"abc", 5}};
    EXPECT_EQ(ids_of(make(bpe(vocab, {"b c", "a b"})), "abc"), (std::vector<int32_t>{0, 4}));
    EXPECT_EQ(ids_of(make(bpe(vocab, {"a b", "b c", "ab c"})), "abc"), (std::vector<int32_t>{5}));
    // Pair form of merges is accepted too.
    EXPECT_EQ(ids_of(make(bpe(vocab, json::array({json::array({"a", "b"})}))), "abc"), (std::vector<int32_t>{3, 2}));
}

TEST(Bpe, IgnoreMergesUsesWholeWordWhenInVocab) {
    const json vocab = {{"a", 0}, {"b", 1}, {"c", 2}, {"abc", 3}};
    EXPECT_EQ(ids_of(make(bpe(vocab, json::array())), "abc"), (std::vector<int32_t>{0, 1, 2}));
    EXPECT_EQ(ids_of(make(bpe(vocab, json::array(), {{"ignore_merges", true}})), "abc"), (std::vector<int32_t>{3}));
}

TEST(Bpe, ByteFallbackAndUnknownFusing) {
    json vocab = {{"<unk>", 0}, {"a", 1}, {"<0xC3>", 2}, {"<0xA9>", 3}};
    EXPECT_EQ(ids_of(make(bpe(vocab, json::array(), {{"byte_fallback", true}, {"unk_token", "<unk>"}})), "a\xC3\xA9"),
              (std::vector<int32_t>{1, 2, 3}));
    EXPECT_EQ(ids_of(make(bpe(vocab, json::array(), {{"unk_token", "<unk>"}, {"fuse_unk", true}})), "xyza"),
              (std::vector<int32_t>{0, 1}));
    EXPECT_EQ(ids_of(make(bpe(vocab, json::array(), {{"unk_token", "<unk>"}, {"fuse_unk", false}})), "xya"),
              (std::vector<int32_t>{0, 0, 1}));
}

TEST(Bpe, SubwordPrefixAndSuffix) {
    EXPECT_EQ(
        ids_of(make(bpe({{"a", 0}, {"##b", 1}, {"ab", 2}}, {"a ##b"}, {{"continuing_subword_prefix", "##"}})), "ab"),
        (std::vector<int32_t>{2}));
    EXPECT_EQ(
        ids_of(make(bpe({{"a", 0}, {"b</w>", 1}, {"ab</w>", 2}}, {"a b</w>"}, {{"end_of_word_suffix", "</w>"}})), "ab"),
        (std::vector<int32_t>{2}));
}

TEST(WordPiece, GreedyLongestMatch) {
    const json model = {{"type", "WordPiece"},
                        {"unk_token", "[UNK]"},
                        {"continuing_subword_prefix", "##"},
                        {"max_input_chars_per_word", 10},
                        {"vocab", {{"[UNK]", 0}, {"un", 1}, {"##aff", 2}, {"##able", 3}}}};
    const auto tok = make(model, nullptr, {{"type", "WhitespaceSplit"}});
    const auto e = tok.encode("unaffable unknown unaffableunaffable", false);
    EXPECT_EQ(e.ids, (std::vector<int32_t>{1, 2, 3, 0, 0}));
    EXPECT_EQ(e.tokens[1], "##aff");
    EXPECT_EQ(e.offsets[1], (Offsets{2, 5}));
}

TEST(Unigram, ViterbiWithFusedUnknowns) {
    const json vocab = json::array({json::array({"<unk>", 0.0}), json::array({"a", 0.0}), json::array({"b", 0.0}),
                                    json::array({"c", 0.0}), json::array({"d", 0.0}), json::array({"cd", 1.0}),
                                    json::array({"ab", 2.0}), json::array({"abc", 5.0}), json::array({"abcd", 10.0})});
    const auto tok = make({{"type", "Unigram"}, {"unk_id", 0}, {"vocab", vocab}});
    const auto e = tok.encode("abcdacdxx", false);
    EXPECT_EQ(e.tokens, (std::vector<std::string>{"abcd", "a", "cd", "xx"}));
    EXPECT_EQ(e.ids, (std::vector<int32_t>{8, 1, 5, 0}));
}

// --- Normalizers ------------------------------------------------------------------------

TEST(Normalizers, BertCleansAccentsCaseAndChineseChars) {
    const json norm = {{"type", "BertNormalizer"},
                       {"clean_text", true},
                       {"handle_chinese_chars", true},
                       {"strip_accents", nullptr},
                       {"lowercase", true}};
    const auto tok = make(word_level({"hello", "world", "\xE4\xBD\xA0"}), norm, {{"type", "BertPreTokenizer"}});
    const auto e = tok.encode("H\xC3\xA9llo\tWORLD\x01\xE4\xBD\xA0!", false);
    EXPECT_EQ(e.ids, (std::vector<int32_t>{1, 2, 3, 0}));
    EXPECT_EQ(e.offsets[0], (Offsets{0, 6}));
    EXPECT_EQ(e.offsets[2], (Offsets{13, 16}));
}

TEST(Normalizers, SequenceReplaceAndNfkc) {
    const json norm = {
        {"type", "Sequence"},
        {"normalizers",
         json::array({{{"type", "NFKC"}}, {{"type", "Replace"}, {"pattern", {{"Regex", "\\s+"}}}, {"content", "_"}}})}};
    const auto tok = make(word_level({"fi_a"}), norm);
    EXPECT_EQ(ids_of(tok, "\xEF\xAC\x81 \t a"), (std::vector<int32_t>{1}));  // "ﬁ" -> "fi"
}

// --- Added tokens -----------------------------------------------------------------------

TEST(AddedTokens, StripFlagsAbsorbSurroundingSpaces) {
    const auto tok = make(word_level({"a", "b"}), nullptr, {{"type", "WhitespaceSplit"}}, nullptr,
                          json::array({added("<mask>", true, true, true)}));
    const auto e = tok.encode("a <mask> b", false);
    EXPECT_EQ(e.tokens, (std::vector<std::string>{"a", " <mask> ", "b"}));
    EXPECT_EQ(e.offsets, (std::vector<Offsets>{{0, 1}, {1, 9}, {9, 10}}));
}

TEST(AddedTokens, SingleWordOnlyMatchesWholeWords) {
    const auto tok = make(word_level({}), nullptr, {{"type", "WhitespaceSplit"}}, nullptr,
                          json::array({added("ab", false, false, false, true)}));
    const auto id = *tok.token_to_id("ab");
    const auto e = tok.encode("ab abc xab", false);
    EXPECT_EQ(e.ids, (std::vector<int32_t>{id, 0, 0}));
}

TEST(AddedTokens, NormalizedTokensMatchAfterNormalization) {
    const auto tok = make(word_level({}), {{"type", "Lowercase"}}, nullptr, nullptr,
                          json::array({added("hello", false, false, false, false, true)}));
    const auto e = tok.encode("HELLO", false);
    EXPECT_EQ(e.ids, (std::vector<int32_t>{*tok.token_to_id("hello")}));
    EXPECT_EQ(e.offsets[0], (Offsets{0, 5}));
}

TEST(AddedTokens, IdsFollowTheModelVocabulary) {
    const auto tok = make(word_level({"a"}), nullptr, nullptr, nullptr,
                          json::array({added("a", true), added("<x>", true), added("<y>", false)}));
    EXPECT_EQ(tok.token_to_id("a"), 1);
    EXPECT_EQ(tok.token_to_id("<x>"), 2);
    EXPECT_EQ(tok.token_to_id("<y>"), 3);
    EXPECT_EQ(tok.vocab_size(false), 2u);
    EXPECT_EQ(tok.vocab_size(true), 4u);
    EXPECT_TRUE(tok.is_special_token(2));
    EXPECT_FALSE(tok.is_special_token(3));
}

// --- Decoders ---------------------------------------------------------------------------

std::string decode_tokens(json decoder, const std::vector<std::string>& tokens) {
    const auto tok = make(word_level(tokens), nullptr, nullptr, decoder);
    std::vector<int32_t> ids;
    for (const auto& t : tokens) ids.push_back(*tok.token_to_id(t));
    return tok.decode(ids);
}

TEST(Decoders, WordPieceJoinsSubwordsAndCleansUp) {
    EXPECT_EQ(
        decode_tokens({{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}, {"hello", "##world", ",", "you"}),
        "helloworld, you");
}

TEST(Decoders, ByteFallbackFuseAndStrip) {
    const json seq = {{"type", "Sequence"},
                      {"decoders", json::array({{{"type", "ByteFallback"}},
                                                {{"type", "Fuse"}},
                                                {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
    EXPECT_EQ(decode_tokens(seq, {" x", "<0xE2>", "<0x82>", "<0xAC>"}), "x\xE2\x82\xAC");
    EXPECT_EQ(decode_tokens(seq, {"<0xE2>", "<0x82>", "b"}),
              "\xEF\xBF\xBD\xEF\xBF\xBD"
              "b");
}

TEST(Decoders, CtcBpeMetaspaceByteLevel) {
    EXPECT_EQ(decode_tokens({{"type", "CTC"}}, {"<pad>", "h", "e", "l", "<pad>", "l", "o", "|", "w"}),
              "hel"
              "lo w");
    EXPECT_EQ(decode_tokens({{"type", "BPEDecoder"}, {"suffix", "</w>"}}, {"hel", "lo</w>", "wor", "ld</w>"}),
              "hello world");
    EXPECT_EQ(decode_tokens({{"type", "Metaspace"}, {"replacement", "\xE2\x96\x81"}, {"prepend_scheme", "always"}},
                            {"\xE2\x96\x81Hello", "\xE2\x96\x81world"}),
              "Hello world");
    EXPECT_EQ(decode_tokens({{"type", "ByteLevel"}}, {"\xC4\xA0hello", "\xC4\x8A"}), " hello\n");
}

// --- Precompiled (SentencePiece charsmap) -------------------------------------------------

TEST(Precompiled, T5CharsmapNormalizesCompatibilityForms) {
    TFX_REQUIRE_TEST_DATA(dir);
    const auto tok = Tokenizer::from_file(*dir / "t5-style-unigram" / "tokenizer.json");
    EXPECT_EQ(tok.encode("\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3 abc", false).ids,
              tok.encode("ABC abc", false).ids);  // fullwidth
    const auto e = tok.encode("\xEF\xBC\xA1\xEF\xBC\xA2\xEF\xBC\xA3", false);
    ASSERT_FALSE(e.offsets.empty());
    EXPECT_EQ(e.offsets.back().end, 9u);
}

}  // namespace
}  // namespace tfx::tok
