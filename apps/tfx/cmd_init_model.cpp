// `tfx init-model`: a model folder with random weights for any config a model plugin
// accepts (like from_config + save_pretrained), so benchmarks at real sizes need no download.
#include <fstream>
#include <iostream>
#include <random>

#include <nlohmann/json.hpp>

#include "apps/tfx/commands.h"
#include "core/json_file.h"
#include "core/model_session.h"
#include "core/safetensors.h"
#include "tfx/sdk/half.hpp"

namespace tfx::cli {
namespace {

namespace fs = std::filesystem;

struct InitOptions {
    std::string config;
    std::string out;
    std::string dtype = "f32";
    uint64_t seed = 0;
    bool force = false;
};

void run_init(const InitOptions& o) {
    if (o.dtype != "f32" && o.dtype != "bf16")
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--dtype: expected f32 or bf16");
    if (fs::exists(fs::path(o.out) / "model.safetensors") && !o.force) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         o.out + " already holds a model.safetensors (use --force to replace it)");
    }
    SessionOptions so;
    so.plugin_paths = global_options().plugin_paths;
    auto session = AutoModel::from_config(o.config, so);
    const nlohmann::json specs = session->weight_specs();
    const float std_dev = session->config().get_or<float>("initializer_range", 0.02f);
    const bool bf16 = o.dtype == "bf16";

    std::mt19937_64 rng(o.seed);
    std::normal_distribution<float> normal(0.0f, std_dev);
    std::vector<std::vector<uint8_t>> storage;
    std::vector<safetensors::TensorToWrite> tensors;
    uint64_t parameters = 0;
    for (const auto& spec : specs) {
        const auto shape = spec.at("shape").get<std::vector<int64_t>>();
        const std::string init = spec.at("init").get<std::string>();
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        parameters += static_cast<uint64_t>(n);
        std::vector<uint8_t> bytes(static_cast<size_t>(n) * (bf16 ? 2 : 4));
        for (int64_t i = 0; i < n; ++i) {
            const float v = init == "normal" ? normal(rng) : init == "ones" ? 1.0f : 0.0f;
            if (bf16) {
                const uint16_t h = sdk::f32_to_bf16(v);
                std::memcpy(bytes.data() + 2 * i, &h, 2);
            } else {
                std::memcpy(bytes.data() + 4 * i, &v, 4);
            }
        }
        storage.push_back(std::move(bytes));
        tensors.push_back({spec.at("name").get<std::string>(),
                           bf16 ? safetensors::DType::BF16 : safetensors::DType::F32, shape, storage.back()});
    }
    fs::create_directories(o.out);
    nlohmann::ordered_json config = nlohmann::ordered_json::parse(read_text_file(o.config));
    config["torch_dtype"] = bf16 ? "bfloat16" : "float32";
    std::ofstream(fs::path(o.out) / "config.json") << config.dump(2) << '\n';
    safetensors::write(fs::path(o.out) / "model.safetensors", tensors, {{"format", "pt"}});
    std::cout << "wrote " << o.out << ": " << session->architecture() << ", " << parameters << " parameters, "
              << o.dtype << ", seed " << o.seed << '\n';
}

}  // namespace

void add_init_model_command(CLI::App& app) {
    auto o = std::make_shared<InitOptions>();
    auto* cmd = app.add_subcommand("init-model", "Write a model folder with random weights for a config.json");
    cmd->add_option("--config", o->config, "config.json to instantiate")->required()->check(CLI::ExistingFile);
    cmd->add_option("--out", o->out, "Output folder")->required();
    cmd->add_option("--dtype", o->dtype, "f32 or bf16")->capture_default_str();
    cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    cmd->add_flag("--force", o->force, "Replace an existing model.safetensors");
    cmd->callback([o] { run_init(*o); });
}

}  // namespace tfx::cli
