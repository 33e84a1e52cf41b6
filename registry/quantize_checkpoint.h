// `tfx quantize`: a model folder's linear weights quantized into a GPTQ checkpoint (what
// transformers, optimum / AutoGPTQ and tfx itself load), written atomically.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "registry/auto_model.h"

namespace tfx {

struct QuantizeCheckpointOptions {
    std::string method;       // "int8" or "int4"
    int64_t group_size = 32;  // inputs sharing a scale (32: the granularity of q8_0 / q4_0)
    LoadOptions load;         // where the model comes from (plugin paths, revision, offline)
};

struct QuantizeCheckpointReport {
    std::filesystem::path source, out;
    int bits = 0;
    std::vector<std::string> quantized;    // linear weights, by checkpoint name
    std::vector<std::string> kept;         // linear weights left as they were, each with why
    uint64_t bytes_in = 0, bytes_out = 0;  // the weight files
};

// Quantizes every linear weight the model's plugin declares (weight_specs' "linear"), except
// the output projection (lm_head, as GPTQ leaves it), by round-to-nearest in symmetric groups
// (core/gptq_writer.h); copies every other tensor as stored, and the tokenizer and generation
// files. `out` must not exist or be empty; on any error nothing is left there. Throws
// sdk::Error naming the option or file at fault.
QuantizeCheckpointReport quantize_checkpoint(const std::string& id_or_path, const std::filesystem::path& out,
                                             const QuantizeCheckpointOptions& options);

}  // namespace tfx
