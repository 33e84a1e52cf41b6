#include "core/lora_adapter.h"

#include <charconv>
#include <cmath>
#include <map>

#include "core/json_file.h"
#include "core/safetensors.h"
#include "tfx/sdk/error.hpp"

namespace tfx::lora {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kPrefix = "base_model.model.";
constexpr std::string_view kA = ".lora_A.weight";
constexpr std::string_view kB = ".lora_B.weight";

[[noreturn]] void fail(int32_t code, const std::string& message) {
    throw sdk::Error(code, message);
}

std::string shape_text(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// A setting PEFT would act on and tfx does not: refused rather than silently computed without.
void refuse_unless(bool neutral, const fs::path& config, const std::string& field, const std::string& why) {
    if (!neutral) fail(TFX_ERR_UNSUPPORTED, config.string() + ": " + field + " " + why);
}

bool is_null_or_empty(const nlohmann::json& j) {
    return j.is_null() || ((j.is_array() || j.is_object()) && j.empty());
}

struct Settings {
    int64_t rank;
    double alpha;
    bool rslora;
    std::vector<std::string> modules_to_save;  // whole modules the adapter replaces
};

Settings read_settings(const fs::path& config_path) {
    const sdk::Config c = load_json_file(config_path);
    const nlohmann::json& j = c.json();
    const std::string peft_type = c.get_or<std::string>("peft_type", "LORA");
    if (peft_type != "LORA") {
        fail(TFX_ERR_UNSUPPORTED,
             config_path.string() + ": peft_type is '" + peft_type + "'; tfx applies LORA adapters");
    }
    refuse_unless(!c.get_or<bool>("use_dora", false), config_path, "use_dora", "is true: DoRA is not supported");
    const std::string bias = c.get_or<std::string>("bias", "none");
    refuse_unless(bias == "none", config_path, "bias",
                  "is '" + bias + "': adapters with trained biases are not supported");
    for (const char* field : {"rank_pattern", "alpha_pattern", "layer_replication"}) {
        refuse_unless(!j.contains(field) || is_null_or_empty(j[field]), config_path, field,
                      "is set: not supported (tfx applies one r and lora_alpha to every module)");
    }
    // fan_in_fan_out is not read: PEFT sets it by the layer's kind (Conv1D or Linear) whatever it says.
    Settings s{c.get<int64_t>("r"), c.get<double>("lora_alpha"), c.get_or<bool>("use_rslora", false), {}};
    if (j.contains("modules_to_save") && j["modules_to_save"].is_array()) {
        for (const auto& m : j["modules_to_save"]) {
            if (!m.is_string()) c.fail("modules_to_save", "must be a list of module names");
            s.modules_to_save.push_back(m.get<std::string>());
        }
    } else if (j.contains("modules_to_save") && !j["modules_to_save"].is_null()) {
        c.fail("modules_to_save", "must be a list of module names or null");
    }
    if (s.rank <= 0) c.fail("r", "must be a positive rank");
    if (!std::isfinite(s.alpha)) c.fail("lora_alpha", "must be a finite number");
    return s;
}

struct Pair {
    const safetensors::TensorInfo* a = nullptr;
    const safetensors::TensorInfo* b = nullptr;
};

// The base checkpoint's tensor for `name` (a path in the transformers model): itself, or without
// the path's first component where the checkpoint stores the bare base model (GPT-2's
// "h.0.attn.c_attn.weight"); nullopt when the base has neither.
std::optional<std::pair<std::string, std::vector<int64_t>>> base_tensor(const std::string& name,
                                                                        const BaseShape& base_shape) {
    if (auto shape = base_shape(name)) return std::pair{name, *shape};
    const size_t dot = name.find('.');
    if (dot == std::string::npos) return std::nullopt;
    if (auto shape = base_shape(name.substr(dot + 1))) return std::pair{name.substr(dot + 1), *shape};
    return std::nullopt;
}

// Whether PEFT's modules_to_save names `module` (the whole path, or its last components).
bool saved_whole(const std::string& module, const std::vector<std::string>& modules_to_save) {
    for (const std::string& m : modules_to_save) {
        if (module == m || module.ends_with("." + m)) return true;
    }
    return false;
}

}  // namespace

AdapterSpec parse_spec(const std::string& text, const std::string& option) {
    AdapterSpec spec;
    std::string rest = text;
    if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
        const std::string number = rest.substr(colon + 1);
        float scale = 0;
        const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), scale);
        if (ec == std::errc() && end == number.data() + number.size() && !number.empty()) {
            if (!std::isfinite(scale)) fail(TFX_ERR_INVALID_ARGUMENT, option + " " + text + ": SCALE must be finite");
            spec.scale = scale;
            rest.resize(colon);
        }
    }
    // "=NAME" ends the text and names no folder ("runs/lr=1e-4/adapter" is a path).
    if (const size_t eq = rest.rfind('='); eq != std::string::npos && rest.find('/', eq) == std::string::npos) {
        spec.name = rest.substr(eq + 1);
        rest.resize(eq);
        if (spec.name.empty()) fail(TFX_ERR_INVALID_ARGUMENT, option + " " + text + ": NAME after '=' is empty");
    }
    if (rest.empty()) fail(TFX_ERR_INVALID_ARGUMENT, option + " " + text + ": expected DIR[=NAME][:SCALE]");
    spec.dir = rest;
    return spec;
}

bool conv1d_model_type(const std::string& model_type) {
    return model_type == "gpt2";
}

std::string load_name(const AdapterSpec& spec) {
    if (!spec.name.empty()) return spec.name;
    fs::path dir = fs::absolute(spec.dir).lexically_normal();
    if (dir.filename().empty()) dir = dir.parent_path();  // "adapters/a1/"
    return dir.filename().string();
}

const Module* Adapter::module_for(const std::string& weight) const {
    for (const Module& m : modules) {
        if (m.weight == weight) return &m;
    }
    return nullptr;
}

Adapter load(const AdapterSpec& spec, const BaseShape& base_shape, bool conv1d_model) {
    Adapter adapter;
    adapter.dir = spec.dir;
    adapter.name = load_name(spec);
    if (!fs::is_directory(spec.dir)) {
        fail(TFX_ERR_NOT_FOUND, spec.dir.string() + ": not a LoRA adapter folder (it does not exist)");
    }
    const fs::path config_path = spec.dir / "adapter_config.json";
    if (!fs::exists(config_path)) {
        fail(TFX_ERR_NOT_FOUND, spec.dir.string() + ": no adapter_config.json (is this a PEFT adapter folder?)");
    }
    const Settings settings = read_settings(config_path);
    adapter.rank = settings.rank;
    adapter.alpha = settings.alpha;
    adapter.rslora = settings.rslora;
    const double r = static_cast<double>(settings.rank);
    adapter.scaling = static_cast<float>(settings.alpha / (settings.rslora ? std::sqrt(r) : r) * spec.scale);

    const fs::path weights_path = spec.dir / "adapter_model.safetensors";
    if (!fs::exists(weights_path)) {
        fail(TFX_ERR_NOT_FOUND, spec.dir.string() + ": no adapter_model.safetensors" +
                                    (fs::exists(spec.dir / "adapter_model.bin")
                                         ? " (adapter_model.bin is a pickle tfx does not read; save the adapter "
                                           "with safe_serialization=True)"
                                         : ""));
    }
    const safetensors::File file(weights_path);
    const std::string where = weights_path.string() + ": tensor '";
    std::map<std::string, Pair> pairs;  // by module path
    for (const auto& t : file.header().tensors) {
        const bool is_a = t.name.ends_with(kA), is_b = t.name.ends_with(kB);
        // A module the adapter saves whole (modules_to_save): its weight or bias replaces the base's.
        if (t.name.starts_with(kPrefix) && !is_a && !is_b) {
            const std::string path = t.name.substr(kPrefix.size());
            const size_t last = path.rfind('.');
            if (last != std::string::npos && saved_whole(path.substr(0, last), settings.modules_to_save)) {
                const auto base = base_tensor(path, base_shape);
                if (!base || base->second != t.shape) {
                    fail(TFX_ERR_INVALID_ARGUMENT,
                         where + t.name + "' (modules_to_save) replaces " + path + ", which the base model " +
                             (base ? "stores as " + shape_text(base->second) + ", not " + shape_text(t.shape)
                                   : std::string("does not have")) +
                             ": is the adapter for another base model?");
                }
                size_t n = 1;
                for (int64_t d : t.shape) n *= static_cast<size_t>(d);
                adapter.replaced.push_back(
                    {base->first, safetensors::widened(file.data(t), t.dtype, n, t.name.c_str())});
                continue;
            }
        }
        if (!t.name.starts_with(kPrefix) || (!is_a && !is_b)) {
            fail(TFX_ERR_UNSUPPORTED, where + t.name +
                                          "' is not a LoRA matrix of a linear layer (expected base_model.model.<module>"
                                          ".lora_A.weight / .lora_B.weight; embedding LoRA is not supported)");
        }
        const std::string module = t.name.substr(kPrefix.size(), t.name.size() - kPrefix.size() - kA.size());
        (is_a ? pairs[module].a : pairs[module].b) = &t;
    }
    if (pairs.empty() && adapter.replaced.empty())
        fail(TFX_ERR_FORMAT, weights_path.string() + ": holds no LoRA tensors");

    for (const auto& [module_path, pair] : pairs) {
        if (pair.a == nullptr || pair.b == nullptr) {
            fail(TFX_ERR_FORMAT, where + std::string(kPrefix) + module_path +
                                     (pair.a ? std::string(kB) : std::string(kA)) +
                                     "' is missing (every module needs lora_A and lora_B)");
        }
        const auto& a = *pair.a;
        const auto& b = *pair.b;
        if (a.shape.size() != 2 || b.shape.size() != 2 || a.shape[0] != settings.rank || b.shape[1] != settings.rank) {
            fail(TFX_ERR_FORMAT, where + a.name + "' / '" + b.name + "': expected [r, in] and [out, r] with r = " +
                                     std::to_string(settings.rank) + " (adapter_config.json), got " +
                                     shape_text(a.shape) + " and " + shape_text(b.shape));
        }
        Module m;
        m.module = module_path;
        m.rank = settings.rank;
        m.in = a.shape[1];
        m.out = b.shape[0];
        const auto base = base_tensor(module_path + ".weight", base_shape);
        if (base) m.weight = base->first;
        const std::optional<std::vector<int64_t>> stored = base ? std::optional(base->second) : std::nullopt;
        if (!stored) {
            fail(TFX_ERR_INVALID_ARGUMENT, where + a.name + "' adapts module '" + module_path +
                                               "', which the base model does not have (no tensor " + module_path +
                                               ".weight): is the adapter for another base model?");
        }
        const std::vector<int64_t> linear{m.out, m.in}, conv1d{m.in, m.out};
        if (*stored == linear && *stored == conv1d) {
            // Square: the layer's kind decides, as PEFT forces fan_in_fan_out by it whatever the
            // config says (GPT-2's blocks are Conv1D, its LM head a Linear).
            m.transposed = conv1d_model && !module_path.ends_with("lm_head");
        } else if (*stored == linear || *stored == conv1d) {
            m.transposed = *stored == conv1d;
        } else {
            fail(TFX_ERR_INVALID_ARGUMENT, where + a.name + "': the base tensor " + m.weight + " is " +
                                               shape_text(*stored) + ", which does not fit lora_A " +
                                               shape_text(a.shape) + " and lora_B " + shape_text(b.shape) +
                                               ": is the adapter for another base model?");
        }
        m.a = safetensors::widened(file.data(a), a.dtype, static_cast<size_t>(m.rank * m.in), a.name.c_str());
        m.b = safetensors::widened(file.data(b), b.dtype, static_cast<size_t>(m.out * m.rank), b.name.c_str());
        adapter.modules.push_back(std::move(m));
    }
    return adapter;
}

void merge_into(const Module& m, float scaling, std::span<float> w) {
    if (w.size() != static_cast<size_t>(m.in * m.out)) {
        fail(TFX_ERR_INTERNAL, "LoRA merge: " + m.weight + " has " + std::to_string(w.size()) + " values, expected " +
                                   std::to_string(m.in * m.out));
    }
    std::vector<float> delta_row(static_cast<size_t>(m.in));
    for (int64_t o = 0; o < m.out; ++o) {
        std::fill(delta_row.begin(), delta_row.end(), 0.0f);
        for (int64_t k = 0; k < m.rank; ++k) {
            const float bk = m.b[static_cast<size_t>(o * m.rank + k)];
            const float* a_row = &m.a[static_cast<size_t>(k * m.in)];
            for (int64_t i = 0; i < m.in; ++i) delta_row[static_cast<size_t>(i)] += bk * a_row[i];
        }
        for (int64_t i = 0; i < m.in; ++i) {
            const size_t at = static_cast<size_t>(m.transposed ? i * m.out + o : o * m.in + i);
            w[at] += delta_row[static_cast<size_t>(i)] * scaling;
        }
    }
}

}  // namespace tfx::lora
