// The cpu backend plugin: the CPU backend library (cpu_backend.h) behind a descriptor.
#include "cpu_backend.h"
#include "tfx/sdk/plugin.hpp"

TFX_PLUGIN_EXPORT(tfx::cpu::CpuBackend, tfx::cpu::CpuBackend::ops())
