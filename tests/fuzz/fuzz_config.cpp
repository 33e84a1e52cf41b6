// libFuzzer target: config.json parsing and the typed field access models rely on.
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>

#include "tfx/sdk/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        auto config =
            tfx::sdk::Config::parse(std::string_view(reinterpret_cast<const char*>(data), size), "config.json");
        for (const char* key : {"hidden_size", "num_attention_heads", "vocab_size"}) {
            try {
                (void)config.get<int32_t>(key);
            } catch (const std::exception&) {
            }
        }
        try {
            (void)config.get_or<double>("rope_theta", 10000.0);
            (void)config.get_or<std::string>("model_type", "");
            if (config.has("rope_scaling")) (void)config.child("rope_scaling").get_or<float>("factor", 1.0f);
        } catch (const std::exception&) {
        }
    } catch (const std::exception&) {
    }
    return 0;
}
