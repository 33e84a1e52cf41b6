/* Compiled as strict C11: the ABI headers must not need C++. */
#include "tfx/host_api.h"
#include "tfx/tfx.h"

int tfx_abi_c11_check(void);
/* The host API's functions have C prototypes (taking their addresses needs them). */
uint32_t (*const tfx_api_version_check)(void) = tfx_api_version;
int tfx_abi_c11_check(void) {
    tfx_plugin_descriptor d = {0};
    d.magic = TFX_PLUGIN_MAGIC;
    d.abi_major = TFX_ABI_MAJOR;
    return (int)sizeof(d) + (int)sizeof(tfx_backend_ops) + (int)sizeof(tfx_model_table) +
           (int)sizeof(tfx_tokenizer_table) + (int)sizeof(tfx_api_open_options);
}
