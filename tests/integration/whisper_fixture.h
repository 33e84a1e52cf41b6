// A Whisper model folder with a tokenizer, for the speech-recognition pipeline's tests: the
// shared tiny Whisper (which has no tokenizer) copied with a byte-level BPE tokenizer.json of
// its 384 ids (256 bytes, 122 two-letter merges, then <|de|> and Whisper's special tokens at
// the tiny config's ids 378..383) and a generation_config.json that lists languages and tasks
// as real Whisper folders do (optional: an older folder has none).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tfx::test {

// The byte GPT-2's byte-level alphabet shows as, in the order bytes get ids here.
inline std::vector<std::pair<int, std::string>> byte_level_alphabet() {
    auto utf8 = [](int code) {
        std::string s;
        if (code < 0x80) {
            s += static_cast<char>(code);
        } else {
            s += static_cast<char>(0xC0 | (code >> 6));
            s += static_cast<char>(0x80 | (code & 0x3F));
        }
        return s;
    };
    std::vector<std::pair<int, std::string>> out;
    std::vector<bool> printable(256, false);
    for (int b = 0; b < 256; ++b) printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    for (int b = 0; b < 256; ++b) {
        if (printable[b]) out.emplace_back(b, utf8(b));
    }
    int next = 256;
    for (int b = 0; b < 256; ++b) {
        if (!printable[b]) out.emplace_back(b, utf8(next++));
    }
    return out;
}

constexpr const char* kLetters = "abcdefghijklmnopqrstuvwxyz";
constexpr int kMerges = 122;  // ids 256..377

// The text of token `id` of the fixture's vocabulary (special tokens: empty).
inline std::string whisper_fixture_text(int id) {
    if (id < 256) return std::string(1, static_cast<char>(byte_level_alphabet()[static_cast<size_t>(id)].first));
    if (id < 256 + kMerges) return {kLetters[(id - 256) / 26], kLetters[(id - 256) % 26]};
    return "";
}

inline std::filesystem::path write_whisper_fixture(
    const std::filesystem::path& tiny_whisper, const std::filesystem::path& dir, bool whisper_generation_fields,
    bool multilingual = true, const nlohmann::json& more_generation_fields = nlohmann::json::object()) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    for (const char* file : {"config.json", "model.safetensors", "preprocessor_config.json"})
        std::filesystem::copy_file(tiny_whisper / file, dir / file);
    nlohmann::json vocab = nlohmann::json::object();
    const auto alphabet = byte_level_alphabet();
    for (size_t id = 0; id < alphabet.size(); ++id) vocab[alphabet[id].second] = id;
    nlohmann::json merges = nlohmann::json::array();
    for (int m = 0; m < kMerges; ++m) {
        const std::string a(1, kLetters[m / 26]), b(1, kLetters[m % 26]);
        vocab[a + b] = 256 + m;
        merges.push_back(a + " " + b);
    }
    nlohmann::json added = nlohmann::json::array();
    const std::vector<std::string> specials = {"<|de|>",         "<|startoftranscript|>", "<|en|>",
                                               "<|transcribe|>", "<|notimestamps|>",      "<|endoftext|>"};
    for (size_t i = 0; i < specials.size(); ++i) {
        added.push_back({{"id", 378 + i},
                         {"content", specials[i]},
                         {"single_word", false},
                         {"lstrip", false},
                         {"rstrip", false},
                         {"normalized", false},
                         {"special", true}});
    }
    const nlohmann::json byte_level = {
        {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    const nlohmann::json tokenizer = {{"version", "1.0"},
                                      {"truncation", nullptr},
                                      {"padding", nullptr},
                                      {"added_tokens", added},
                                      {"normalizer", nullptr},
                                      {"pre_tokenizer", byte_level},
                                      {"post_processor", nullptr},
                                      {"decoder", byte_level},
                                      {"model",
                                       {{"type", "BPE"},
                                        {"dropout", nullptr},
                                        {"unk_token", nullptr},
                                        {"continuing_subword_prefix", ""},
                                        {"end_of_word_suffix", ""},
                                        {"fuse_unk", false},
                                        {"byte_fallback", false},
                                        {"vocab", vocab},
                                        {"merges", merges}}}};
    std::ofstream(dir / "tokenizer.json") << tokenizer.dump();
    nlohmann::json generation = {{"decoder_start_token_id", 379},
                                 {"eos_token_id", 383},
                                 {"pad_token_id", 383},
                                 {"bos_token_id", 383},
                                 {"begin_suppress_tokens", {220, 383}}};
    if (whisper_generation_fields) {
        generation["is_multilingual"] = multilingual;
        generation["lang_to_id"] = {{"<|de|>", 378}, {"<|en|>", 380}};
        generation["task_to_id"] = {{"transcribe", 381}, {"translate", 377}};
        generation["no_timestamps_token_id"] = 382;
    }
    generation.update(more_generation_fields);
    std::ofstream(dir / "generation_config.json") << generation.dump();
    return dir;
}

}  // namespace tfx::test
