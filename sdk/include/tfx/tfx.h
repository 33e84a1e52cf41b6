/* Umbrella header of the tfx plugin ABI. */
#ifndef TFX_TFX_H
#define TFX_TFX_H

#include "tfx/abi.h"
#include "tfx/attention.h"
#include "tfx/backend.h"
#include "tfx/host.h"
#include "tfx/model.h"
#include "tfx/quantizer.h"
#include "tfx/tensor.h"
#include "tfx/tokenizer.h"

#endif /* TFX_TFX_H */
