/* Compiled as strict C11: the ABI headers must not need C++. */
#include "tfx/tfx.h"

int tfx_abi_c11_check(void);
int tfx_abi_c11_check(void) {
    tfx_plugin_descriptor d = {0};
    d.magic = TFX_PLUGIN_MAGIC;
    d.abi_major = TFX_ABI_MAJOR;
    return (int)sizeof(d) + (int)sizeof(tfx_backend_ops) + (int)sizeof(tfx_model_table) +
           (int)sizeof(tfx_tokenizer_table);
}
