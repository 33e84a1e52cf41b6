#include "registry/text_offsets.h"

#include <fstream>

#include <nlohmann/json.hpp>

namespace tfx {

std::u32string code_points(const std::string& s) {
    std::u32string out;
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const size_t len = c < 0x80 ? 1 : c >> 5 == 6 ? 2 : c >> 4 == 14 ? 3 : c >> 3 == 30 ? 4 : 1;
        char32_t cp = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
        for (size_t k = 1; k < len && i + k < s.size(); ++k)
            cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        out.push_back(cp);
        i += len;
    }
    return out;
}

std::vector<int64_t> char_index_of_bytes(const std::string& s) {
    std::vector<int64_t> index(s.size() + 1);
    int64_t character = -1;
    for (size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) ++character;  // a lead byte starts one
        index[i] = character;
    }
    index[s.size()] = character + 1;
    return index;
}

bool word_aware_tokenizer(const std::filesystem::path& model_dir) {
    std::ifstream in(model_dir / "tokenizer.json");
    const auto json = nlohmann::json::parse(in, nullptr, false);
    if (!json.is_object() || !json.contains("model") || !json["model"].is_object()) return false;
    const auto prefix = json["model"].find("continuing_subword_prefix");
    return prefix != json["model"].end() && prefix->is_string() && !prefix->get<std::string>().empty();
}

}  // namespace tfx
