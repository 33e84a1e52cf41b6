// Reading the goldens' logits: JSON files, logits as lists or as base64 f32 ({"b64f32": ...},
// as the quant goldens store them), and the largest difference between two logit vectors.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tfx::test {

inline float max_abs_diff(std::span<const float> a, std::span<const float> b) {
    float d = 0.0f;
    for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
    return d;
}

inline std::vector<float> logits_of(const nlohmann::json& value) {
    if (value.is_array()) return value.get<std::vector<float>>();
    // {"b64f32": base64 of little-endian f32, "shape": [...]}, as the quant goldens store them.
    const std::string text = value.at("b64f32");
    std::vector<uint8_t> bytes;
    uint32_t bits = 0;
    int count = 0;
    for (char c : text) {
        const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char* at = std::strchr(alphabet, c);
        if (c == '=' || at == nullptr) continue;
        bits = (bits << 6) | static_cast<uint32_t>(at - alphabet);
        if (++count % 4 == 0) {
            for (int shift : {16, 8, 0}) bytes.push_back(static_cast<uint8_t>(bits >> shift));
            bits = 0;
        }
    }
    if (count % 4 == 3) {
        bytes.push_back(static_cast<uint8_t>(bits >> 10));
        bytes.push_back(static_cast<uint8_t>(bits >> 2));
    } else if (count % 4 == 2) {
        bytes.push_back(static_cast<uint8_t>(bits >> 4));
    }
    std::vector<float> out(bytes.size() / 4);
    std::memcpy(out.data(), bytes.data(), out.size() * 4);
    return out;
}

inline nlohmann::json read_json(const std::filesystem::path& path) {
    std::ifstream file(path);
    return nlohmann::json::parse(file);
}

}  // namespace tfx::test
