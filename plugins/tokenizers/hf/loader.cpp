// Builds the tokenizer pipeline from tokenizer.json, with the defaults of the Rust crate's
// serde definitions and errors that name the offending field.
#include <nlohmann/json.hpp>

#include "json_document.h"
#include "models/bpe.h"
#include "models/unigram.h"
#include "models/wordpiece.h"
#include "tokenizer_core.h"

namespace tfx::tok {
namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& path, const std::string& message) {
    throw Error("tokenizer.json: " + path + ": " + message);
}

std::string child_path(const std::string& path, std::string_view key) {
    return path + "." + std::string(key);
}
std::string index_path(const std::string& path, size_t i) {
    return path + "[" + std::to_string(i) + "]";
}

const json* find(const json& obj, const char* key) {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool get_bool(const json& obj, const std::string& path, const char* key, bool fallback) {
    const json* v = find(obj, key);
    if (!v) return fallback;
    if (!v->is_boolean()) fail(child_path(path, key), "expected a boolean");
    return v->get<bool>();
}

std::string get_string(const json& obj, const std::string& path, const char* key,
                       std::optional<std::string> fallback = {}) {
    const json* v = find(obj, key);
    if (!v) {
        if (fallback) return *fallback;
        fail(child_path(path, key), "missing string");
    }
    if (!v->is_string()) fail(child_path(path, key), "expected a string");
    return v->get<std::string>();
}

std::optional<std::string> get_optional_string(const json& obj, const std::string& path, const char* key) {
    const json* v = find(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(child_path(path, key), "expected a string or null");
    return v->get<std::string>();
}

uint64_t get_uint(const json& obj, const std::string& path, const char* key, std::optional<uint64_t> fallback = {}) {
    const json* v = find(obj, key);
    if (!v) {
        if (fallback) return *fallback;
        fail(child_path(path, key), "missing non-negative integer");
    }
    if (!v->is_number_unsigned() && !(v->is_number_integer() && v->get<int64_t>() >= 0))
        fail(child_path(path, key), "expected a non-negative integer");
    return v->get<uint64_t>();
}

const json& get_array(const json& obj, const std::string& path, const char* key) {
    const json* v = find(obj, key);
    if (!v || !v->is_array()) fail(child_path(path, key), "expected an array");
    return *v;
}

int32_t to_id(uint64_t v, const std::string& path) {
    if (v > INT32_MAX) fail(path, "id out of range");
    return static_cast<int32_t>(v);
}

char32_t single_char(const std::string& s, const std::string& path) {
    if (s.empty() || utf8::char_count(s) != 1) fail(path, "expected a single character");
    size_t len;
    return utf8::decode(s, 0, len);
}

std::string type_of(const json& obj, const std::string& path) {
    if (!obj.is_object()) fail(path, "expected an object");
    return get_string(obj, path, "type");
}

// Nested Sequence components are built recursively; bound the depth.
constexpr int kMaxNesting = 32;

void check_depth(int depth, const std::string& path) {
    if (depth > kMaxNesting) fail(path, "components nested too deeply");
}

[[noreturn]] void unsupported(const std::string& path, const std::string& type) {
    fail(child_path(path, "type"), "unsupported type \"" + type + "\"");
}

// {"String": "..."} or {"Regex": "..."}
std::shared_ptr<const Pattern> make_pattern(const json& obj, const std::string& path) {
    if (!obj.is_object() || obj.size() != 1) fail(path, "expected {\"String\": ...} or {\"Regex\": ...}");
    const auto it = obj.begin();
    const std::string& kind = it.key();
    const json& value = it.value();
    if (!value.is_string()) fail(child_path(path, kind), "expected a string");
    if (kind == "String") return std::make_shared<LiteralPattern>(value.get<std::string>());
    if (kind == "Regex") {
        try {
            return std::make_shared<Regex>(value.get<std::string>());
        } catch (const Error& e) {
            fail(child_path(path, kind), e.what());
        }
    }
    fail(path, "expected {\"String\": ...} or {\"Regex\": ...}");
}

SplitBehavior make_behavior(const json& obj, const std::string& path, const char* key, SplitBehavior fallback) {
    const json* v = find(obj, key);
    if (!v) return fallback;
    const std::string s = v->is_string() ? v->get<std::string>() : "";
    if (s == "Removed") return SplitBehavior::Removed;
    if (s == "Isolated") return SplitBehavior::Isolated;
    if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
    if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
    if (s == "Contiguous") return SplitBehavior::Contiguous;
    fail(child_path(path, key), "expected one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

std::string base64_decode(const std::string& in, const std::string& path) {
    std::string out;
    uint32_t buffer = 0;
    int bits = 0;
    size_t padding = 0;
    for (char c : in) {
        int v;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '+')
            v = 62;
        else if (c == '/')
            v = 63;
        else if (c == '=') {
            ++padding;
            continue;
        } else
            fail(path, "invalid base64");
        if (padding) fail(path, "invalid base64");
        buffer = buffer << 6 | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<char>((buffer >> bits) & 0xFF));
        }
    }
    return out;
}

// Metaspace's prepend_scheme, with the legacy add_prefix_space field.
PrependScheme make_prepend_scheme(const json& obj, const std::string& path) {
    if (const json* v = find(obj, "prepend_scheme")) {
        const std::string s = v->is_string() ? v->get<std::string>() : "";
        if (s == "first") return PrependScheme::First;
        if (s == "never") return PrependScheme::Never;
        if (s == "always") return PrependScheme::Always;
        fail(child_path(path, "prepend_scheme"), "expected \"first\", \"never\" or \"always\"");
    }
    return get_bool(obj, path, "add_prefix_space", true) ? PrependScheme::Always : PrependScheme::Never;
}

NormalizerPtr make_normalizer(const json& obj, const std::string& path, int depth = 0) {
    check_depth(depth, path);
    const std::string type = type_of(obj, path);
    if (type == "Sequence") {
        std::vector<NormalizerPtr> parts;
        const json& list = get_array(obj, path, "normalizers");
        for (size_t i = 0; i < list.size(); ++i)
            parts.push_back(make_normalizer(list[i], index_path(child_path(path, "normalizers"), i), depth + 1));
        return std::make_shared<SequenceNormalizer>(std::move(parts));
    }
    if (type == "NFC") return std::make_shared<UnicodeNormalizer>(NormalForm::NFC);
    if (type == "NFD") return std::make_shared<UnicodeNormalizer>(NormalForm::NFD);
    if (type == "NFKC") return std::make_shared<UnicodeNormalizer>(NormalForm::NFKC);
    if (type == "NFKD") return std::make_shared<UnicodeNormalizer>(NormalForm::NFKD);
    if (type == "Lowercase") return std::make_shared<LowercaseNormalizer>();
    if (type == "StripAccents") return std::make_shared<StripAccentsNormalizer>();
    if (type == "Nmt") return std::make_shared<NmtNormalizer>();
    if (type == "ByteLevel") return std::make_shared<ByteLevelNormalizer>();
    if (type == "Strip")
        return std::make_shared<StripNormalizer>(get_bool(obj, path, "strip_left", true),
                                                 get_bool(obj, path, "strip_right", true));
    if (type == "BertNormalizer") {
        const bool lowercase = get_bool(obj, path, "lowercase", true);
        return std::make_shared<BertNormalizer>(get_bool(obj, path, "clean_text", true),
                                                get_bool(obj, path, "handle_chinese_chars", true),
                                                get_bool(obj, path, "strip_accents", lowercase), lowercase);
    }
    if (type == "Replace") {
        const json* pattern = find(obj, "pattern");
        if (!pattern) fail(child_path(path, "pattern"), "missing pattern");
        return std::make_shared<ReplaceNormalizer>(make_pattern(*pattern, child_path(path, "pattern")),
                                                   get_string(obj, path, "content"));
    }
    if (type == "Prepend") return std::make_shared<PrependNormalizer>(get_string(obj, path, "prepend"));
    if (type == "Precompiled") {
        const std::string encoded = get_string(obj, path, "precompiled_charsmap", std::string());
        if (encoded.empty()) return std::make_shared<SequenceNormalizer>(std::vector<NormalizerPtr>{});
        try {
            return std::make_shared<PrecompiledNormalizer>(
                base64_decode(encoded, child_path(path, "precompiled_charsmap")));
        } catch (const Error& e) {
            if (std::string_view(e.what()).starts_with("tokenizer.json")) throw;
            fail(child_path(path, "precompiled_charsmap"), e.what());
        }
    }
    unsupported(path, type);
}

PreTokenizerPtr make_pre_tokenizer(const json& obj, const std::string& path, int depth = 0) {
    check_depth(depth, path);
    const std::string type = type_of(obj, path);
    if (type == "Sequence") {
        std::vector<PreTokenizerPtr> parts;
        const json& list = get_array(obj, path, "pretokenizers");
        for (size_t i = 0; i < list.size(); ++i)
            parts.push_back(make_pre_tokenizer(list[i], index_path(child_path(path, "pretokenizers"), i), depth + 1));
        return std::make_shared<SequencePreTokenizer>(std::move(parts));
    }
    if (type == "ByteLevel")
        return std::make_shared<ByteLevelPreTokenizer>(get_bool(obj, path, "add_prefix_space", true),
                                                       get_bool(obj, path, "use_regex", true));
    if (type == "Split") {
        const json* pattern = find(obj, "pattern");
        if (!pattern) fail(child_path(path, "pattern"), "missing pattern");
        return std::make_shared<SplitPreTokenizer>(make_pattern(*pattern, child_path(path, "pattern")),
                                                   make_behavior(obj, path, "behavior", SplitBehavior::Removed),
                                                   get_bool(obj, path, "invert", false));
    }
    if (type == "Whitespace") return make_whitespace_pre_tokenizer();
    if (type == "WhitespaceSplit") return make_whitespace_split_pre_tokenizer();
    if (type == "BertPreTokenizer") return std::make_shared<BertPreTokenizer>();
    if (type == "Punctuation")
        return make_punctuation_pre_tokenizer(make_behavior(obj, path, "behavior", SplitBehavior::Isolated));
    if (type == "Digits") return make_digits_pre_tokenizer(get_bool(obj, path, "individual_digits", false));
    if (type == "CharDelimiterSplit")
        return make_char_delimiter_pre_tokenizer(
            single_char(get_string(obj, path, "delimiter"), child_path(path, "delimiter")));
    if (type == "Metaspace")
        return std::make_shared<MetaspacePreTokenizer>(
            single_char(get_string(obj, path, "replacement", "\xE2\x96\x81"), child_path(path, "replacement")),
            make_prepend_scheme(obj, path), get_bool(obj, path, "split", true));
    unsupported(path, type);
}

Vocab make_vocab_map(TokenizerDocument& doc, const std::string& path) {
    if (doc.vocab_kind != TokenizerDocument::VocabKind::Map)
        fail(child_path(path, "vocab"), "expected an object of token -> id");
    if (doc.vocab_id_too_large) fail(child_path(path, "vocab[\"" + *doc.vocab_id_too_large + "\"]"), "id too large");
    return std::move(doc.vocab_map);
}

std::unique_ptr<Model> make_model(TokenizerDocument& doc) {
    const std::string path = "model";
    const json* found = find(doc.root, "model");
    if (!found || !found->is_object()) fail(path, "expected an object");
    const json& obj = *found;
    std::string type;
    if (find(obj, "type")) {
        type = get_string(obj, path, "type");
    } else if (doc.has_merges) {  // untagged, as the Rust crate accepts
        type = "BPE";
    } else if (doc.vocab_kind == TokenizerDocument::VocabKind::List) {
        type = "Unigram";
    } else if (find(obj, "continuing_subword_prefix") || find(obj, "max_input_chars_per_word")) {
        type = "WordPiece";
    } else {
        type = "WordLevel";
    }

    if (type == "BPE") {
        BpeOptions options;
        options.unk_token = get_optional_string(obj, path, "unk_token");
        options.continuing_subword_prefix = get_optional_string(obj, path, "continuing_subword_prefix");
        options.end_of_word_suffix = get_optional_string(obj, path, "end_of_word_suffix");
        options.fuse_unk = get_bool(obj, path, "fuse_unk", false);
        options.byte_fallback = get_bool(obj, path, "byte_fallback", false);
        options.ignore_merges = get_bool(obj, path, "ignore_merges", false);
        if (const json* dropout = find(obj, "dropout"); dropout && !dropout->is_number())
            fail(child_path(path, "dropout"), "expected a number or null");
        Vocab vocab = make_vocab_map(doc, path);
        if (!doc.has_merges && find(obj, "merges")) fail(child_path(path, "merges"), "expected an array");
        try {
            auto model = std::make_unique<BpeModel>(std::move(vocab), doc.merges, std::move(options));
            doc.merges.clear();
            return model;
        } catch (const Error& e) {
            throw Error(std::string("tokenizer.json: ") + e.what());
        }
    }
    if (type == "WordPiece") {
        Vocab vocab = make_vocab_map(doc, path);
        return std::make_unique<WordPieceModel>(std::move(vocab), get_string(obj, path, "unk_token", "[UNK]"),
                                                get_string(obj, path, "continuing_subword_prefix", "##"),
                                                get_uint(obj, path, "max_input_chars_per_word", 100));
    }
    if (type == "WordLevel") {
        Vocab vocab = make_vocab_map(doc, path);
        return std::make_unique<WordLevelModel>(std::move(vocab), get_string(obj, path, "unk_token", "<unk>"));
    }
    if (type == "Unigram") {
        if (doc.vocab_kind != TokenizerDocument::VocabKind::List)
            fail(child_path(path, "vocab"), "expected an array of [piece, score]");
        std::optional<size_t> unk_id;
        if (find(obj, "unk_id")) unk_id = get_uint(obj, path, "unk_id");
        try {
            return std::make_unique<UnigramModel>(std::move(doc.vocab_list), unk_id,
                                                  get_bool(obj, path, "byte_fallback", false));
        } catch (const Error& e) {
            throw Error(std::string("tokenizer.json: ") + e.what());
        }
    }
    unsupported(path, type);
}

std::vector<AddedToken> make_added_tokens(const json& root) {
    std::vector<AddedToken> tokens;
    const json* list = find(root, "added_tokens");
    if (!list) return tokens;
    const std::string path = "added_tokens";
    if (!list->is_array()) fail(path, "expected an array");
    for (size_t i = 0; i < list->size(); ++i) {
        const json& t = (*list)[i];
        const std::string p = index_path(path, i);
        if (!t.is_object()) fail(p, "expected an object");
        AddedToken a;
        a.content = get_string(t, p, "content");
        a.single_word = get_bool(t, p, "single_word", false);
        a.lstrip = get_bool(t, p, "lstrip", false);
        a.rstrip = get_bool(t, p, "rstrip", false);
        a.normalized = get_bool(t, p, "normalized", true);
        a.special = get_bool(t, p, "special", false);
        tokens.push_back(std::move(a));
    }
    return tokens;
}

SpecialTokenRef make_special_ref(const json& obj, const std::string& path, const char* key) {
    const json* v = find(obj, key);
    if (!v || !v->is_array() || v->size() != 2 || !(*v)[0].is_string() || !(*v)[1].is_number_unsigned())
        fail(child_path(path, key), "expected [token, id]");
    return {(*v)[0].get<std::string>(), to_id((*v)[1].get<uint64_t>(), child_path(path, key))};
}

TemplatePiece parse_template_piece_string(const std::string& s, const std::string& path) {
    const auto bad = [&]() -> TemplatePiece { fail(path, "cannot build a template piece from \"" + s + "\""); };
    std::string id = s;
    uint32_t type_id = 0;
    if (const size_t colon = s.find(':'); colon != std::string::npos) {
        if (s.find(':', colon + 1) != std::string::npos) return bad();
        id = s.substr(0, colon);
        const std::string digits = s.substr(colon + 1);
        if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9)
            return bad();
        type_id = static_cast<uint32_t>(std::stoul(digits));
    }
    if (!id.starts_with('$')) return {false, 0, id, type_id};
    const std::string rest = id.substr(1);
    if (rest.empty() || rest == "A" || rest == "a") return {true, 0, "", type_id};
    if (rest == "B" || rest == "b") return {true, 1, "", type_id};
    if (rest.find_first_not_of("0123456789") == std::string::npos && rest.size() <= 9)
        return {true, 0, "", s.find(':') == std::string::npos ? static_cast<uint32_t>(std::stoul(rest)) : type_id};
    return bad();
}

std::vector<TemplatePiece> make_template(const json& obj, const std::string& path, const char* key) {
    const json* v = find(obj, key);
    std::vector<TemplatePiece> pieces;
    if (!v) return pieces;
    const std::string p = child_path(path, key);
    if (v->is_string()) {
        const std::string s = v->get<std::string>();
        size_t i = 0;
        while (i < s.size()) {
            while (i < s.size() && s[i] == ' ') ++i;
            const size_t j = std::min(s.find(' ', i), s.size());
            if (j > i) pieces.push_back(parse_template_piece_string(s.substr(i, j - i), p));
            i = j;
        }
        return pieces;
    }
    if (!v->is_array()) fail(p, "expected an array or a string");
    for (size_t i = 0; i < v->size(); ++i) {
        const json& item = (*v)[i];
        const std::string ip = index_path(p, i);
        if (item.is_string()) {
            pieces.push_back(parse_template_piece_string(item.get<std::string>(), ip));
            continue;
        }
        if (!item.is_object() || item.size() != 1) fail(ip, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        const auto it = item.begin();
        const std::string& kind = it.key();
        const json& body = it.value();
        const std::string bp = child_path(ip, kind);
        if (!body.is_object()) fail(bp, "expected an object");
        const auto type_id = static_cast<uint32_t>(get_uint(body, bp, "type_id", 0));
        if (kind == "Sequence") {
            const std::string id = get_string(body, bp, "id");
            if (id != "A" && id != "B") fail(child_path(bp, "id"), "expected \"A\" or \"B\"");
            pieces.push_back({true, id == "A" ? size_t{0} : size_t{1}, "", type_id});
        } else if (kind == "SpecialToken") {
            pieces.push_back({false, 0, get_string(body, bp, "id"), type_id});
        } else {
            fail(ip, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}");
        }
    }
    return pieces;
}

PostProcessorPtr make_post_processor(const json& obj, const std::string& path, int depth = 0) {
    check_depth(depth, path);
    const std::string type = type_of(obj, path);
    if (type == "Sequence") {
        std::vector<PostProcessorPtr> parts;
        const json& list = get_array(obj, path, "processors");
        for (size_t i = 0; i < list.size(); ++i)
            parts.push_back(make_post_processor(list[i], index_path(child_path(path, "processors"), i), depth + 1));
        return std::make_shared<SequencePostProcessor>(std::move(parts));
    }
    if (type == "ByteLevel")
        return std::make_shared<ByteLevelPostProcessor>(get_bool(obj, path, "add_prefix_space", true),
                                                        get_bool(obj, path, "trim_offsets", true));
    if (type == "BertProcessing")
        return std::make_shared<BertPostProcessor>(make_special_ref(obj, path, "sep"),
                                                   make_special_ref(obj, path, "cls"));
    if (type == "RobertaProcessing")
        return std::make_shared<RobertaPostProcessor>(
            make_special_ref(obj, path, "sep"), make_special_ref(obj, path, "cls"),
            get_bool(obj, path, "trim_offsets", true), get_bool(obj, path, "add_prefix_space", true));
    if (type == "TemplateProcessing") {
        std::map<std::string, TemplateSpecialToken> specials;
        if (const json* st = find(obj, "special_tokens")) {
            const std::string sp = child_path(path, "special_tokens");
            if (!st->is_object()) fail(sp, "expected an object");
            for (const auto& [name, body] : st->items()) {
                const std::string bp = child_path(sp, name);
                if (!body.is_object()) fail(bp, "expected an object");
                TemplateSpecialToken t;
                const json& ids = get_array(body, bp, "ids");
                for (size_t i = 0; i < ids.size(); ++i) {
                    if (!ids[i].is_number_unsigned()) fail(index_path(child_path(bp, "ids"), i), "expected an id");
                    t.ids.push_back(to_id(ids[i].get<uint64_t>(), index_path(child_path(bp, "ids"), i)));
                }
                const json& toks = get_array(body, bp, "tokens");
                for (size_t i = 0; i < toks.size(); ++i) {
                    if (!toks[i].is_string()) fail(index_path(child_path(bp, "tokens"), i), "expected a string");
                    t.tokens.push_back(toks[i].get<std::string>());
                }
                if (t.ids.size() != t.tokens.size()) fail(bp, "ids and tokens must have the same length");
                specials.emplace(get_string(body, bp, "id", name), std::move(t));
            }
        }
        try {
            return std::make_shared<TemplatePostProcessor>(make_template(obj, path, "single"),
                                                           make_template(obj, path, "pair"), std::move(specials));
        } catch (const Error& e) {
            if (std::string_view(e.what()).starts_with("tokenizer.json")) throw;
            throw Error(std::string("tokenizer.json: ") + e.what());
        }
    }
    unsupported(path, type);
}

DecoderPtr make_decoder(const json& obj, const std::string& path, int depth = 0) {
    check_depth(depth, path);
    const std::string type = type_of(obj, path);
    if (type == "Sequence") {
        std::vector<DecoderPtr> parts;
        const json& list = get_array(obj, path, "decoders");
        for (size_t i = 0; i < list.size(); ++i)
            parts.push_back(make_decoder(list[i], index_path(child_path(path, "decoders"), i), depth + 1));
        return std::make_shared<SequenceDecoder>(std::move(parts));
    }
    if (type == "ByteLevel") return std::make_shared<ByteLevelDecoder>();
    if (type == "ByteFallback") return std::make_shared<ByteFallbackDecoder>();
    if (type == "Fuse") return std::make_shared<FuseDecoder>();
    if (type == "Metaspace")
        return std::make_shared<MetaspaceDecoder>(
            single_char(get_string(obj, path, "replacement", "\xE2\x96\x81"), child_path(path, "replacement")),
            make_prepend_scheme(obj, path));
    if (type == "WordPiece")
        return std::make_shared<WordPieceDecoder>(get_string(obj, path, "prefix", "##"),
                                                  get_bool(obj, path, "cleanup", true));
    if (type == "Strip")
        return std::make_shared<StripDecoder>(
            single_char(get_string(obj, path, "content"), child_path(path, "content")), get_uint(obj, path, "start", 0),
            get_uint(obj, path, "stop", 0));
    if (type == "Replace") {
        const json* pattern = find(obj, "pattern");
        if (!pattern) fail(child_path(path, "pattern"), "missing pattern");
        return std::make_shared<ReplaceDecoder>(make_pattern(*pattern, child_path(path, "pattern")),
                                                get_string(obj, path, "content"));
    }
    if (type == "BPEDecoder") return std::make_shared<BpeDecoder>(get_string(obj, path, "suffix", "</w>"));
    if (type == "CTC")
        return std::make_shared<CtcDecoder>(get_string(obj, path, "pad_token", "<pad>"),
                                            get_string(obj, path, "word_delimiter_token", "|"),
                                            get_bool(obj, path, "cleanup", true));
    unsupported(path, type);
}

Direction make_direction(const json& obj, const std::string& path) {
    const std::string d = get_string(obj, path, "direction", "Right");
    if (d == "Right") return Direction::Right;
    if (d == "Left") return Direction::Left;
    fail(child_path(path, "direction"), "expected \"Left\" or \"Right\"");
}

std::optional<TruncationParams> make_truncation(const json& root) {
    const json* t = find(root, "truncation");
    if (!t) return std::nullopt;
    const std::string path = "truncation";
    if (!t->is_object()) fail(path, "expected an object or null");
    TruncationParams p;
    p.max_length = get_uint(*t, path, "max_length", 512);
    p.stride = get_uint(*t, path, "stride", 0);
    p.direction = make_direction(*t, path);
    const std::string strategy = get_string(*t, path, "strategy", "LongestFirst");
    if (strategy == "LongestFirst")
        p.strategy = TruncationStrategy::LongestFirst;
    else if (strategy == "OnlyFirst")
        p.strategy = TruncationStrategy::OnlyFirst;
    else if (strategy == "OnlySecond")
        p.strategy = TruncationStrategy::OnlySecond;
    else
        fail(child_path(path, "strategy"), "expected LongestFirst, OnlyFirst or OnlySecond");
    return p;
}

std::optional<PaddingParams> make_padding(const json& root) {
    const json* pj = find(root, "padding");
    if (!pj) return std::nullopt;
    const std::string path = "padding";
    if (!pj->is_object()) fail(path, "expected an object or null");
    PaddingParams p;
    if (const json* s = find(*pj, "strategy")) {
        if (s->is_object() && s->contains("Fixed"))
            p.fixed_length = get_uint(*s, child_path(path, "strategy"), "Fixed");
        else if (!(s->is_string() && s->get<std::string>() == "BatchLongest"))
            fail(child_path(path, "strategy"), "expected \"BatchLongest\" or {\"Fixed\": n}");
    }
    p.direction = make_direction(*pj, path);
    if (find(*pj, "pad_to_multiple_of")) p.pad_to_multiple_of = get_uint(*pj, path, "pad_to_multiple_of");
    p.pad_id = to_id(get_uint(*pj, path, "pad_id", 0), child_path(path, "pad_id"));
    p.pad_type_id = static_cast<uint32_t>(get_uint(*pj, path, "pad_type_id", 0));
    p.pad_token = get_string(*pj, path, "pad_token", "[PAD]");
    return p;
}

}  // namespace

std::shared_ptr<const Tokenizer::Core> load_tokenizer_core(std::string_view json_text) {
    TokenizerDocument doc = parse_tokenizer_json(json_text);
    const json& root = doc.root;
    if (const json* version = find(root, "version");
        version && (!version->is_string() || version->get<std::string>() != "1.0"))
        fail("version", "unknown tokenizer version (expected \"1.0\")");

    auto core = std::make_shared<Tokenizer::Core>();
    if (const json* n = find(root, "normalizer")) core->normalizer = make_normalizer(*n, "normalizer");
    if (const json* p = find(root, "pre_tokenizer")) core->pre_tokenizer = make_pre_tokenizer(*p, "pre_tokenizer");
    core->model = make_model(doc);
    if (const json* p = find(root, "post_processor")) core->post_processor = make_post_processor(*p, "post_processor");
    if (const json* d = find(root, "decoder")) core->decoder = make_decoder(*d, "decoder");
    core->truncation = make_truncation(root);
    core->padding = make_padding(root);
    core->added.add_tokens(make_added_tokens(root), *core->model, core->normalizer.get());

    // Size of the union of the model and added vocabularies, as get_vocab(true).len().
    size_t extra = 0;
    core->added.for_each([&](std::string_view token, int32_t) { extra += core->model->token_to_id(token) ? 0 : 1; });
    core->vocab_size_with_added = core->model->vocab_size() + extra;
    return core;
}

}  // namespace tfx::tok
