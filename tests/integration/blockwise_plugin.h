// The installed blockwise quantizer plugin, called directly by tests that check its encodings
// and decodings byte by byte.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <vector>

#include <gtest/gtest.h>

#include "core/paths.h"
#include "core/plugin_catalogue.h"
#include "tfx/quantizer.h"

namespace tfx::test {

inline const tfx_quantizer_table& blockwise() {
    static const tfx::LoadedPlugin plugin = [] {
        tfx::PluginCatalogue catalogue(tfx::paths::plugin_search_path({}));
        const tfx::PluginRecord* record = catalogue.find("blockwise");
        if (record == nullptr) throw std::runtime_error("the blockwise quantizer plugin is not installed");
        return tfx::load_plugin(*record);
    }();
    return *static_cast<const tfx_quantizer_table*>(plugin.table);
}

inline std::vector<uint8_t> quantize(const char* format, const tfx_tensor& src) {
    const uint64_t row_bytes = blockwise().row_bytes(nullptr, format, src.shape[1]);
    std::vector<uint8_t> out(row_bytes * static_cast<uint64_t>(src.shape[0]));
    tfx_error error{};
    EXPECT_EQ(blockwise().quantize(nullptr, format, &src, out.data(), out.size(), &error), TFX_OK) << error.message;
    return out;
}

inline std::vector<float> dequantize(const char* format, const void* blocks, int64_t rows, int64_t cols) {
    std::vector<float> out(static_cast<size_t>(rows * cols));
    tfx_error error{};
    EXPECT_EQ(blockwise().dequantize(nullptr, format, blocks, rows, cols, out.data(), &error), TFX_OK) << error.message;
    return out;
}

}  // namespace tfx::test
