// `tfx init-model`: a model folder with random weights for any config a model plugin
// accepts (like from_config + save_pretrained), so benchmarks at real sizes need no download.
#include <cctype>
#include <charconv>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <random>
#include <sstream>

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
    std::string max_size = "8G";
};

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

// "8G", "512M", "1T", "1000000" (bytes; K, M, G, T are powers of 1024) -> bytes.
uint64_t parse_size(const std::string& text) {
    const std::string expected =
        "--max-size: expected a size such as 512M, 8G or 1T (bytes; K/M/G/T are powers of 1024), got '" + text + "'";
    uint64_t value = 0;
    const char* end = text.data() + text.size();
    auto [next, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc() || next == text.data()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, expected);
    std::string unit(next, end);
    if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
    if (unit.size() == 2 && (unit[1] == 'i' || unit[1] == 'I')) unit.pop_back();
    int shift = 0;
    if (unit.empty()) {
        shift = 0;
    } else if (unit.size() == 1 && std::string("kKmMgGtT").find(unit[0]) != std::string::npos) {
        shift = 10 * (1 + static_cast<int>(std::string("kmgt").find(static_cast<char>(std::tolower(unit[0])))));
    } else {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, expected);
    }
    if (shift > 0 && value > (kNoLimit >> shift)) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, expected + " (too large)");
    return value << shift;
}

std::string human_size(long double bytes) {
    const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    int u = 0;
    while (bytes >= 1024.0L && u < 6) {
        bytes /= 1024.0L;
        ++u;
    }
    std::ostringstream out;
    out << std::fixed << std::setprecision(u == 0 ? 0 : 1) << static_cast<double>(bytes) << ' ' << units[u];
    return out.str();
}

void run_init(const InitOptions& o) {
    if (o.dtype != "f32" && o.dtype != "bf16" && o.dtype != "f16")
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "--dtype: expected f32, bf16 or f16, got '" + o.dtype + "'");
    if (fs::exists(fs::path(o.out) / "model.safetensors") && !o.force) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         o.out + " already holds a model.safetensors (use --force to replace it)");
    }
    SessionOptions so;
    so.plugin_paths = global_options().plugin_paths;
    auto session = AutoModel::from_config(o.config, so);
    const nlohmann::json specs = session->weight_specs();
    const uint64_t limit = parse_size(o.max_size);
    const bool bf16 = o.dtype == "bf16", f16 = o.dtype == "f16";
    const size_t element_bytes = bf16 || f16 ? 2 : 4;

    // The size of every tensor, before anything is allocated or written (long double: a config
    // with a huge dimension must not wrap around).
    long double total_bytes = 0, total_parameters = 0, largest_bytes = 0;
    std::string largest;
    for (const auto& spec : specs) {
        long double n = 1;
        for (int64_t d : spec.at("shape").get<std::vector<int64_t>>()) {
            if (d < 0) {
                throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, o.config + ": tensor " + spec.at("name").get<std::string>() +
                                                               " would have a negative dimension " + std::to_string(d));
            }
            n *= static_cast<long double>(d);
        }
        total_parameters += n;
        total_bytes += n * element_bytes;
        if (n * element_bytes > largest_bytes) {
            largest_bytes = n * element_bytes;
            largest = spec.at("name").get<std::string>() + " " + spec.at("shape").dump();
        }
    }
    if (total_bytes > static_cast<long double>(limit)) {
        std::ostringstream parameters_text;
        parameters_text << std::setprecision(4) << static_cast<double>(total_parameters);
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         o.config + ": the weights would take " + human_size(total_bytes) + " (" +
                             parameters_text.str() + " parameters, " + o.dtype + "; largest tensor " + largest + ", " +
                             human_size(largest_bytes) + "), over the --max-size limit of " + human_size(limit) +
                             " (it is written from memory); check the config's sizes, or pass a larger --max-size "
                             "(e.g. --max-size " +
                             std::to_string(static_cast<uint64_t>(total_bytes / (1024.0L * 1024 * 1024)) + 1) +
                             "G) to write it anyway");
    }
    const float std_dev = session->config().get_or<float>("initializer_range", 0.02f);

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
        std::vector<uint8_t> bytes;
        try {
            bytes.resize(static_cast<size_t>(n) * element_bytes);
        } catch (const std::bad_alloc&) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                             o.config + ": out of memory allocating tensor " + spec.at("name").get<std::string>() +
                                 " " + spec.at("shape").dump() + " (" +
                                 human_size(static_cast<long double>(n) * element_bytes) +
                                 "; all weights: " + human_size(total_bytes) + "); check the config's sizes");
        }
        for (int64_t i = 0; i < n; ++i) {
            const float v = init == "normal" ? normal(rng) : init == "ones" ? 1.0f : 0.0f;
            if (bf16 || f16) {
                const uint16_t h = bf16 ? sdk::f32_to_bf16(v) : sdk::f32_to_f16(v);
                std::memcpy(bytes.data() + 2 * i, &h, 2);
            } else {
                std::memcpy(bytes.data() + 4 * i, &v, 4);
            }
        }
        storage.push_back(std::move(bytes));
        tensors.push_back({spec.at("name").get<std::string>(),
                           bf16  ? safetensors::DType::BF16
                           : f16 ? safetensors::DType::F16
                                 : safetensors::DType::F32,
                           shape, storage.back()});
    }
    fs::create_directories(o.out);
    nlohmann::ordered_json config = nlohmann::ordered_json::parse(read_text_file(o.config));
    config["torch_dtype"] = bf16 ? "bfloat16" : f16 ? "float16" : "float32";
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
    cmd->add_option("--dtype", o->dtype, "f32, bf16 or f16")->capture_default_str();
    cmd->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    cmd->add_flag("--force", o->force, "Replace an existing model.safetensors");
    cmd->add_option("--max-size", o->max_size,
                    "Refuse weights larger than this (512M, 8G, 1T; K/M/G/T are powers of 1024)")
        ->capture_default_str();
    cmd->callback([o] { run_init(*o); });
}

}  // namespace tfx::cli
