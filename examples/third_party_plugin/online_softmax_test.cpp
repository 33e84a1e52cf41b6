// The third-party plugin against the built-in eager attention on a real model: identical
// greedy tokens. The model comes from TFX_TEST_DATA (the shared test data folder).
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "core/generation.h"
#include "core/model_session.h"
#include "registry/auto_model.h"

int main() {
    const char* data = std::getenv("TFX_TEST_DATA");
    const auto model = std::filesystem::path(data != nullptr ? data : "") / "models" / "tinystories-656k";
    if (data == nullptr || !std::filesystem::exists(model)) {
        std::cerr << "SKIP: set TFX_TEST_DATA to the shared test data folder\n";
        return 77;
    }
    tfx::LoadOptions plugin_options;
    plugin_options.attn_implementation = "online-softmax";
    auto with_plugin = tfx::AutoModel::from_pretrained(model, plugin_options);
    auto with_eager = tfx::AutoModel::from_pretrained(model, tfx::LoadOptions{});
    tfx::GenerationConfig greedy;
    greedy.max_new_tokens = 32;
    greedy.ignore_eos = true;
    const std::vector<std::vector<int32_t>> prompts = {{1, 80, 147, 201, 282, 57}, {1, 1044, 302}};
    const auto a = tfx::generate(*with_plugin, prompts, greedy).new_tokens;
    const auto b = tfx::generate(*with_eager, prompts, greedy).new_tokens;
    std::cout << with_plugin->plugin_summary() << '\n';
    if (a != b) {
        std::cerr << "FAIL: online-softmax and eager attention generate different tokens\n";
        return 1;
    }
    // Its manifest lists an f32 cache only: the host refuses a bf16 one, naming the plugin.
    plugin_options.kv_dtype = "bf16";
    try {
        tfx::AutoModel::from_pretrained(model, plugin_options);
        std::cerr << "FAIL: a bf16 KV cache was paired with an f32-only attention plugin\n";
        return 1;
    } catch (const std::exception& e) {
        std::cout << "refused as expected: " << e.what() << '\n';
    }
    std::cout << "PASS: " << a[0].size() + a[1].size() << " tokens identical to eager attention\n";
    return 0;
}
