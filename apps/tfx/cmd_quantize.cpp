// `tfx quantize`: a model folder (or Hub id) written back as a GPTQ checkpoint whose linear
// weights are int8 or int4 (registry/quantize_checkpoint.h).
#include <iostream>

#include "apps/tfx/commands.h"
#include "registry/quantize_checkpoint.h"

namespace tfx::cli {
namespace {

struct QuantizeArgs {
    std::string model, out, method, revision;
    int64_t group_size = 32;
    bool offline = false;
};

void run_quantize(const QuantizeArgs& a) {
    QuantizeCheckpointOptions options;
    options.method = a.method;
    options.group_size = a.group_size;
    options.load.plugin_paths = global_options().plugin_paths;
    if (!a.revision.empty()) options.load.revision = a.revision;
    options.load.offline = a.offline;
    const QuantizeCheckpointReport r = quantize_checkpoint(a.model, a.out, options);
    std::cout << "wrote " << r.out.string() << ": " << r.quantized.size() << " linear weights quantized to " << r.bits
              << " bits (GPTQ, groups of " << a.group_size << "), weights " << r.bytes_in / 1024 << " KiB -> "
              << r.bytes_out / 1024 << " KiB\n";
    for (const std::string& kept : r.kept) std::cout << "kept as stored: " << kept << '\n';
}

}  // namespace

void add_quantize_command(CLI::App& app) {
    auto a = std::make_shared<QuantizeArgs>();
    auto* cmd = app.add_subcommand(
        "quantize",
        "Write a model's linear weights as a GPTQ checkpoint (int8 or int4) that tfx and transformers load");
    cmd->add_option("--model", a->model, "Model folder or Hub id (org/name)")->required();
    cmd->add_option("--out", a->out, "Output folder (new or empty)")->required();
    cmd->add_option("--method", a->method, "int8 or int4")->required();
    cmd->add_option("--group-size", a->group_size, "Inputs sharing one scale")->capture_default_str();
    cmd->add_option("--revision", a->revision, "Hub revision (branch, tag or commit)");
    cmd->add_flag("--offline", a->offline, "Use only the local Hub cache");
    cmd->callback([a] { run_quantize(*a); });
}

}  // namespace tfx::cli
