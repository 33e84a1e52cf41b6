// `tfx convert` (a checkpoint re-written: dtype, shards) and `tfx merge-lora` (LoRA adapters
// merged into a base model's weights, written the same way): registry/convert_checkpoint.h.
#include <iostream>

#include "apps/tfx/commands.h"
#include "apps/tfx/interrupt.h"
#include "registry/convert_checkpoint.h"

namespace tfx::cli {
namespace {

struct ConvertArgs {
    std::string model, out, dtype, max_shard_size = "5GB", revision;
    std::vector<std::string> lora;
    bool offline = false;
};

void run_convert(const ConvertArgs& a) {
    ConvertOptions options;
    options.dtype = a.dtype;
    options.max_shard_bytes = parse_shard_size(a.max_shard_size, "--max-shard-size");
    for (const std::string& spec : a.lora) options.merge_lora.push_back(lora::parse_spec(spec, "--lora"));
    options.load.plugin_paths = global_options().plugin_paths;
    if (!a.revision.empty()) options.load.revision = a.revision;
    options.load.offline = a.offline;
    InterruptScope interrupt(/*also_sigterm=*/true);
    options.cancelled = [] { return interrupted(); };
    ConvertReport r;
    try {
        r = convert_checkpoint(a.model, a.out, options);
    } catch (const std::exception&) {
        if (interrupted()) throw Interrupted();
        throw;
    }
    std::cout << "wrote " << r.out.string() << ": " << r.tensors << " tensors, " << r.total_size << " bytes in "
              << r.files.size() << (r.files.size() == 1 ? " file" : " shards")
              << (a.dtype.empty() ? std::string() : ", as " + a.dtype) << '\n';
    if (!r.merged.empty()) std::cout << "merged LoRA into " << r.merged.size() << " tensors\n";
    for (const std::string& tied : r.tied) std::cout << "not written (tied to the embeddings): " << tied << '\n';
}

CLI::App* add_common(CLI::App* cmd, ConvertArgs& a) {
    cmd->add_option("--model", a.model, "Model folder or Hub id (org/name)")->required();
    cmd->add_option("--out", a.out, "Output folder (new or empty)")->required();
    cmd->add_option("--dtype", a.dtype, "Write float weights as f32, bf16 or f16 (default: as stored)")
        ->check(CLI::IsMember({"f32", "bf16", "f16"}));
    cmd->add_option("--max-shard-size", a.max_shard_size,
                    "Largest weight file (5GB, 500MB, 2GiB, or bytes); larger checkpoints are sharded with an index")
        ->capture_default_str();
    cmd->add_option("--revision", a.revision, "Hub revision (branch, tag or commit)");
    cmd->add_flag("--offline", a.offline, "Use only the local Hub cache");
    return cmd;
}

}  // namespace

void add_convert_commands(CLI::App& app) {
    auto convert = std::make_shared<ConvertArgs>();
    auto* cmd = add_common(app.add_subcommand("convert",
                                              "Write a model as save_pretrained does: another dtype, sharded "
                                              "safetensors with an index (optionally with --lora adapters merged)"),
                           *convert);
    cmd->add_option("--lora", convert->lora, "A PEFT LoRA adapter to merge in, DIR[=NAME][:SCALE]; repeatable");
    cmd->callback([convert] { run_convert(*convert); });

    auto merge = std::make_shared<ConvertArgs>();
    auto* merge_cmd =
        add_common(app.add_subcommand("merge-lora",
                                      "Merge PEFT LoRA adapters into a base model's weights and write the model "
                                      "(PEFT's merge_and_unload + save_pretrained)"),
                   *merge);
    merge_cmd->add_option("--lora", merge->lora, "A PEFT LoRA adapter folder, DIR[=NAME][:SCALE]; repeatable")
        ->required();
    merge_cmd->callback([merge] { run_convert(*merge); });
}

}  // namespace tfx::cli
