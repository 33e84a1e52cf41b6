#include "core/gguf_model.h"

#include <cctype>

#include "tfx/sdk/error.hpp"

namespace tfx::gguf {
namespace {

// llama.cpp's architectures that tfx runs, with the transformers class they become and whether
// the converter interleaved the rotary halves of q and k.
struct Architecture {
    const char* gguf;
    const char* hf_class;
    const char* model_type;
    bool permuted_qk;
};
constexpr Architecture kArchitectures[] = {
    {"llama", "LlamaForCausalLM", "llama", true},
    {"qwen2", "Qwen2ForCausalLM", "qwen2", false},
};

// GGUF block names -> Hugging Face module names.
const std::map<std::string, std::string, std::less<>> kLayerNames = {
    {"attn_norm", "input_layernorm"}, {"ffn_norm", "post_attention_layernorm"},
    {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"},
    {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};
const std::map<std::string, std::string, std::less<>> kGlobalNames = {
    {"token_embd.weight", "model.embed_tokens.weight"},
    {"output_norm.weight", "model.norm.weight"},
    {"output.weight", "lm_head.weight"},
};

class Meta {
  public:
    Meta(const File& file, std::string arch) : file_(file), arch_(std::move(arch)) {}
    [[noreturn]] void fail(const std::string& key, const std::string& what) const {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, file_.path().string() + ": metadata '" + key + "' " + what);
    }
    const nlohmann::json* find(const std::string& key) const { return file_.meta(arch_ + "." + key); }
    template <class T>
    T number(const std::string& key) const {
        const nlohmann::json* v = find(key);
        if (v == nullptr || !v->is_number()) fail(arch_ + "." + key, "is missing or not a number");
        return v->get<T>();
    }
    template <class T>
    T number_or(const std::string& key, T fallback) const {
        const nlohmann::json* v = find(key);
        return v != nullptr && v->is_number() ? v->get<T>() : fallback;
    }

  private:
    const File& file_;
    std::string arch_;
};

}  // namespace

std::string format_name(Type type) {
    std::string name(traits_of(static_cast<uint32_t>(type))->name);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return name;
}

bool is_float(Type type) {
    return type == Type::F32 || type == Type::F16 || type == Type::BF16;
}

int64_t stored_row(int64_t row, int64_t rows, int64_t heads) {
    const int64_t head_rows = rows / heads, half = head_rows / 2;
    const int64_t head = row / head_rows, within = row % head_rows;
    return head * head_rows + 2 * (within % half) + within / half;
}

HfView hf_view(const File& file) {
    const nlohmann::json* arch_value = file.meta("general.architecture");
    if (arch_value == nullptr || !arch_value->is_string()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         file.path().string() + ": metadata 'general.architecture' is missing or not a string");
    }
    const std::string arch = arch_value->get<std::string>();
    const Architecture* known = nullptr;
    for (const Architecture& a : kArchitectures) {
        if (arch == a.gguf) known = &a;
    }
    Meta meta(file, arch);
    if (known == nullptr) meta.fail("general.architecture", "is '" + arch + "'; tfx maps llama and qwen2 GGUF files");

    nlohmann::json config;
    config["architectures"] = {known->hf_class};
    config["model_type"] = known->model_type;
    const auto hidden = meta.number<int64_t>("embedding_length");
    const auto heads = meta.number<int64_t>("attention.head_count");
    const auto kv_heads = meta.number_or<int64_t>("attention.head_count_kv", heads);
    config["hidden_size"] = hidden;
    config["intermediate_size"] = meta.number<int64_t>("feed_forward_length");
    config["num_hidden_layers"] = meta.number<int64_t>("block_count");
    config["num_attention_heads"] = heads;
    config["num_key_value_heads"] = kv_heads;
    config["rms_norm_eps"] = meta.number<double>("attention.layer_norm_rms_epsilon");
    config["rope_theta"] = meta.number_or<double>("rope.freq_base", 10000.0);
    config["max_position_embeddings"] = meta.number_or<int64_t>("context_length", 2048);
    if (const auto key_length = meta.number_or<int64_t>("attention.key_length", 0); key_length > 0) {
        config["head_dim"] = key_length;
    }
    if (const nlohmann::json* scaling = meta.find("rope.scaling.type"); scaling != nullptr && *scaling != "none") {
        if (*scaling != "linear")
            meta.fail(arch + ".rope.scaling.type", "is " + scaling->dump() + "; tfx maps none and linear");
        config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", meta.number<double>("rope.scaling.factor")}};
    }
    const Tensor* embedding = file.find("token_embd.weight");
    if (embedding == nullptr || embedding->ne.size() != 2) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, file.path().string() + ": no 2-D tensor 'token_embd.weight'");
    }
    config["vocab_size"] = meta.number_or<int64_t>("vocab_size", embedding->ne[1]);
    config["tie_word_embeddings"] = file.find("output.weight") == nullptr;
    config["torch_dtype"] = "float32";
    for (const char* id : {"bos_token_id", "eos_token_id"}) {
        const nlohmann::json* v = file.meta(std::string("tokenizer.ggml.") + id);
        if (v != nullptr && v->is_number_unsigned()) config[id] = *v;
    }

    HfView view;
    view.config_json = config.dump(2);
    for (const Tensor& t : file.header().tensors) {
        std::vector<int64_t> shape(t.ne.rbegin(), t.ne.rend());
        std::string name = t.name;
        int64_t permuted = 0;
        if (auto it = kGlobalNames.find(t.name); it != kGlobalNames.end()) {
            name = it->second;
        } else if (t.name.starts_with("blk.")) {
            // blk.<layer>.<module>.<weight|bias>
            const size_t layer_end = t.name.find('.', 4), module_end = t.name.rfind('.');
            if (layer_end != std::string::npos && module_end > layer_end) {
                const std::string layer = t.name.substr(4, layer_end - 4);
                const std::string module = t.name.substr(layer_end + 1, module_end - layer_end - 1);
                if (auto m = kLayerNames.find(module); m != kLayerNames.end()) {
                    name = "model.layers." + layer + "." + m->second + t.name.substr(module_end);
                    if (known->permuted_qk && (module == "attn_q" || module == "attn_k")) {
                        permuted = module == "attn_q" ? heads : kv_heads;
                        if (shape[0] % (2 * permuted) != 0) {
                            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, file.path().string() + ": tensor '" + t.name +
                                                                           "' has " + std::to_string(shape[0]) +
                                                                           " rows, not an even number per head");
                        }
                    }
                }
            }
        }
        view.tensors.emplace(name, HfTensor{&t, std::move(shape), permuted});
    }
    return view;
}

}  // namespace tfx::gguf
