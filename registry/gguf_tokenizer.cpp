#include "registry/gguf_tokenizer.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

// tokenizer.ggml.token_type values (llama.cpp's vocabulary token types).
constexpr int kUnknown = 2, kControl = 3, kUserDefined = 4;

// The pre-tokenizer regexes of the byte-level vocabularies, as their tokenizer.json files
// write them (tokenizer.ggml.pre names the one a file was converted with).
constexpr const char* kLlama3Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2Split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Metadata {
    const gguf::Header& header;
    const std::string& file_name;

    [[noreturn]] void fail(const std::string& key, const std::string& what) const {
        throw sdk::Error(TFX_ERR_FORMAT, file_name + ": metadata '" + key + "' " + what);
    }
    const nlohmann::json* find(const std::string& key) const {
        const auto it = header.metadata.find(key);
        return it == header.metadata.end() ? nullptr : &it->second;
    }
    std::vector<std::string> strings(const std::string& key) const {
        const nlohmann::json* v = find(key);
        if (v == nullptr) fail(key, "is missing (the file has no tokenizer; pass --input-ids)");
        if (!v->is_array()) fail(key, "must be an array of strings");
        std::vector<std::string> out;
        out.reserve(v->size());
        for (const auto& s : *v) {
            if (!s.is_string()) fail(key, "must be an array of strings");
            out.push_back(s.get<std::string>());
        }
        return out;
    }
    template <class T>
    std::optional<std::vector<T>> numbers(const std::string& key, size_t count) const {
        const nlohmann::json* v = find(key);
        if (v == nullptr) return std::nullopt;
        if (!v->is_array() || v->size() != count) {
            fail(key, "must be an array of " + std::to_string(count) + " numbers, one per token");
        }
        std::vector<T> out;
        out.reserve(count);
        for (const auto& x : *v) {
            if (!x.is_number()) fail(key, "must be an array of numbers");
            out.push_back(x.get<T>());
        }
        return out;
    }
    // A token id that must name one of `count` tokens.
    std::optional<int64_t> token_id(const std::string& key, size_t count) const {
        const nlohmann::json* v = find(key);
        if (v == nullptr) return std::nullopt;
        if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<uint64_t>() >= count) {
            fail(key, "must be a token id below " + std::to_string(count));
        }
        return v->get<int64_t>();
    }
    std::optional<bool> flag(const std::string& key) const {
        const nlohmann::json* v = find(key);
        if (v == nullptr) return std::nullopt;
        if (!v->is_boolean()) fail(key, "must be true or false");
        return v->get<bool>();
    }
    std::optional<std::string> text(const std::string& key) const {
        const nlohmann::json* v = find(key);
        if (v == nullptr) return std::nullopt;
        if (!v->is_string()) fail(key, "must be a string");
        return v->get<std::string>();
    }
};

// The byte offsets where UTF-8 characters start in `s` (after the first): the places a token
// splits into two, as Python slices a str.
std::vector<size_t> character_boundaries(const std::string& s) {
    std::vector<size_t> out;
    for (size_t i = 1; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) out.push_back(i);
    }
    return out;
}

// transformers' merges for a SentencePiece vocabulary that stores scores, not merges: every
// split of a token into two tokens, those of one token ordered by the halves' scores (highest
// first), then all ordered by the whole token's score (highest first; ties keep that order).
nlohmann::json merges_from_scores(const std::vector<std::string>& tokens, const std::vector<float>& scores) {
    std::unordered_map<std::string, float> score_of;  // the last score of a repeated token, as a dict keeps
    for (size_t i = 0; i < tokens.size(); ++i) score_of[tokens[i]] = scores[i];
    struct Merge {
        std::string left, right;
        float score;
    };
    std::vector<Merge> merges;
    std::unordered_set<std::string> seen;
    for (const std::string& token : tokens) {
        if (!seen.insert(token).second) continue;  // a dict visits each key once
        const float score = score_of.at(token);
        std::vector<Merge> local;
        for (size_t at : character_boundaries(token)) {
            std::string left = token.substr(0, at), right = token.substr(at);
            if (score_of.contains(left) && score_of.contains(right)) local.push_back({left, right, score});
        }
        std::stable_sort(local.begin(), local.end(), [&](const Merge& a, const Merge& b) {
            const float al = score_of.at(a.left), bl = score_of.at(b.left);
            if (al != bl) return al > bl;
            return score_of.at(a.right) > score_of.at(b.right);
        });
        merges.insert(merges.end(), local.begin(), local.end());
    }
    std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) { return a.score > b.score; });
    nlohmann::json out = nlohmann::json::array();
    for (const Merge& m : merges) out.push_back(nlohmann::json::array({m.left, m.right}));
    return out;
}

nlohmann::json byte_level(bool trim_offsets, bool use_regex) {
    return {
        {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", trim_offsets}, {"use_regex", use_regex}};
}

nlohmann::json split_then_bytes(const char* regex, bool trim_offsets) {
    return {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
              byte_level(trim_offsets, false)}}};
}

}  // namespace

GgufTokenizer tokenizer_of(const gguf::File& file) {
    return tokenizer_of(file.header(), file.path().string());
}

GgufTokenizer tokenizer_of(const gguf::Header& header, const std::string& file_name) {
    const Metadata meta{header, file_name};
    const std::string kind_key = "tokenizer.ggml.model";
    const std::optional<std::string> kind = meta.text(kind_key);
    if (!kind) meta.fail(kind_key, "is missing (the file has no tokenizer; pass --input-ids)");
    if (*kind != "llama" && *kind != "gpt2") {
        meta.fail(kind_key, "is '" + *kind + "'; tfx builds tokenizers of kinds 'llama' (SentencePiece) and 'gpt2' " +
                                "(byte-level BPE) from GGUF files; pass --input-ids, or put the model's " +
                                "tokenizer.json beside the file");
    }
    const std::vector<std::string> tokens = meta.strings("tokenizer.ggml.tokens");
    const size_t n = tokens.size();
    const auto types = meta.numbers<int32_t>("tokenizer.ggml.token_type", n);
    const auto bos = meta.token_id("tokenizer.ggml.bos_token_id", n);
    const auto eos = meta.token_id("tokenizer.ggml.eos_token_id", n);
    const auto unk = meta.token_id("tokenizer.ggml.unknown_token_id", n);
    const auto pad = meta.token_id("tokenizer.ggml.padding_token_id", n);
    const bool llama = *kind == "llama";
    // SentencePiece vocabularies start sequences with BOS unless the file says otherwise
    // (LlamaTokenizer's default); byte-level ones only when it says so.
    const bool add_bos = meta.flag("tokenizer.ggml.add_bos_token").value_or(llama) && bos.has_value();
    const bool add_eos = meta.flag("tokenizer.ggml.add_eos_token").value_or(false) && eos.has_value();

    nlohmann::json vocab = nlohmann::json::object();
    for (size_t i = 0; i < n; ++i) {
        if (!vocab.contains(tokens[i])) vocab[tokens[i]] = i;
    }
    nlohmann::json model = {{"type", "BPE"},
                            {"dropout", nullptr},
                            {"continuing_subword_prefix", nullptr},
                            {"end_of_word_suffix", nullptr},
                            {"vocab", std::move(vocab)}};
    nlohmann::json tokenizer = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}};
    bool clean_up_spaces = false;
    if (llama) {
        const auto scores = meta.numbers<float>("tokenizer.ggml.scores", n);
        if (!scores) meta.fail("tokenizer.ggml.scores", "is missing (a 'llama' vocabulary is built from its scores)");
        model["merges"] = merges_from_scores(tokens, *scores);
        model["unk_token"] = unk ? nlohmann::json(tokens[*unk]) : nlohmann::json(nullptr);
        model["fuse_unk"] = true;
        model["byte_fallback"] = true;
        tokenizer["normalizer"] = {{"type", "Sequence"},
                                   {"normalizers",
                                    {{{"type", "Prepend"}, {"prepend", "\u2581"}},
                                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\u2581"}}}}};
        tokenizer["pre_tokenizer"] = nullptr;
        tokenizer["decoder"] = {{"type", "Sequence"},
                                {"decoders",
                                 {{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                  {{"type", "ByteFallback"}},
                                  {{"type", "Fuse"}},
                                  {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
    } else {
        const std::string merges_key = "tokenizer.ggml.merges";
        nlohmann::json merges = nlohmann::json::array();
        for (const std::string& m : meta.strings(merges_key)) {
            const size_t space = m.find(' ');
            if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
                m.find(' ', space + 1) != std::string::npos) {
                meta.fail(merges_key, "must hold pairs 'left right', got '" + m + "'");
            }
            merges.push_back(nlohmann::json::array({m.substr(0, space), m.substr(space + 1)}));
        }
        model["merges"] = std::move(merges);
        model["unk_token"] = nullptr;
        model["fuse_unk"] = false;
        model["byte_fallback"] = false;
        const std::string pre = meta.text("tokenizer.ggml.pre").value_or("default");
        tokenizer["normalizer"] = nullptr;
        if (pre == "llama-bpe" || pre == "llama3") {
            model["ignore_merges"] = true;  // Llama 3 takes a word whole when it is a token
            tokenizer["pre_tokenizer"] = split_then_bytes(kLlama3Split, true);
            clean_up_spaces = true;  // as transformers loads Llama 3's from GGUF
        } else if (pre == "qwen2") {
            tokenizer["normalizer"] = {{"type", "NFC"}};
            tokenizer["pre_tokenizer"] = split_then_bytes(kQwen2Split, false);
        } else if (pre == "gpt2" || pre == "default") {
            tokenizer["pre_tokenizer"] = byte_level(true, true);
        } else {
            meta.fail("tokenizer.ggml.pre", "is '" + pre + "'; tfx knows the byte-level pre-tokenizers llama-bpe, " +
                                                "qwen2 and gpt2 (default); pass --input-ids, or put the model's " +
                                                "tokenizer.json beside the file");
        }
        tokenizer["decoder"] = byte_level(true, true);
    }
    tokenizer["model"] = std::move(model);

    nlohmann::json added = nlohmann::json::array();
    for (size_t i = 0; i < n; ++i) {
        // Control tokens, and the unknown token, are special (as in the tokenizer.json the file was
        // converted from); without types, the unknown, BOS and EOS tokens.
        const bool control =
            types ? ((*types)[i] == kControl || (*types)[i] == kUnknown) : (i == unk || i == bos || i == eos);
        const bool user = types && (*types)[i] == kUserDefined;
        if (!control && !user) continue;
        added.push_back({{"id", i},
                         {"content", tokens[i]},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", control}});
    }
    tokenizer["added_tokens"] = std::move(added);

    nlohmann::json single = nlohmann::json::array(), special = nlohmann::json::object();
    auto special_token = [&](int64_t id) {
        const std::string& t = tokens[static_cast<size_t>(id)];
        special[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
        return nlohmann::json{{"SpecialToken", {{"id", t}, {"type_id", 0}}}};
    };
    if (add_bos) single.push_back(special_token(*bos));
    single.push_back({{"Sequence", {{"id", "A"}, {"type_id", 0}}}});
    if (add_eos) single.push_back(special_token(*eos));
    nlohmann::json pair = single;
    pair.push_back({{"Sequence", {{"id", "B"}, {"type_id", 1}}}});
    tokenizer["post_processor"] = {
        {"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", special}};

    GgufTokenizer out;
    out.tokenizer_json = tokenizer.dump();
    out.clean_up_spaces = clean_up_spaces;
    for (const auto& [key, id] :
         {std::pair{"bos_token", bos}, {"eos_token", eos}, {"unk_token", unk}, {"pad_token", pad}}) {
        if (id) out.settings[key] = tokens[static_cast<size_t>(*id)];
    }
    if (auto chat = meta.text("tokenizer.chat_template")) out.settings["chat_template"] = *chat;
    return out;
}

}  // namespace tfx
