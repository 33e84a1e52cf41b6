// The ops and attention tables the host hands to model plugins. Each entry checks that the
// chosen plugin offers the call (table size and pointer), validates the tensor operands,
// traces the call (TFX_LOG_LEVEL=trace), then forwards it: one place to validate and trace.
#pragma once

#include "tfx/attention.h"
#include "tfx/backend.h"

namespace tfx {

struct OpsTarget {
    const tfx_backend_ops* backend = nullptr;
    void* backend_self = nullptr;
};
// The table to pass as host services' ops, with a pointer to an OpsTarget as ops_self.
const tfx_backend_ops* forwarding_ops();

struct AttentionTarget {
    const tfx_attention_table* table = nullptr;
    void* self = nullptr;
};
// The table to pass as host services' attention, with an AttentionTarget as attention_self.
const tfx_attention_table* forwarding_attention();

}  // namespace tfx
