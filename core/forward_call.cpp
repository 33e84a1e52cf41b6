#include "core/forward_call.h"

#include "tfx/sdk/error.hpp"

namespace tfx {

std::span<const float> ForwardCall::run(const ForwardInputs& in) {
    const tfx_model_info& info = session_.info();
    const int64_t n = in.batch * in.tokens;
    if (in.batch <= 0 || in.tokens <= 0 || static_cast<int64_t>(in.ids.size()) != n) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: ids must hold batch x tokens entries");
    }
    if ((!in.positions.empty() && static_cast<int64_t>(in.positions.size()) != n) ||
        (!in.token_type_ids.empty() && static_cast<int64_t>(in.token_type_ids.size()) != n) ||
        (!in.key_mask.empty() && static_cast<int64_t>(in.key_mask.size()) != in.batch * (in.past_len + in.tokens))) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: positions, token types or key mask have the wrong size");
    }
    std::span<const int64_t> positions = in.positions;
    if (positions.empty()) {
        default_positions_.resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) default_positions_[i] = in.past_len + i % in.tokens;
        positions = default_positions_;
    }
    const bool per_sequence = info.output_kind == TFX_OUTPUT_CLASS_LOGITS || in.last_token_only;
    rows_ = per_sequence ? in.batch : n;
    output_.resize(static_cast<size_t>(rows_ * info.output_size));
    int64_t out_shape[3] = {in.batch, rows_ / in.batch, info.output_size};
    tfx_tensor out{output_.data(), {TFX_DEVICE_CPU, 0}, 3, {TFX_DTYPE_FLOAT, 32, 1}, out_shape, nullptr, 0};

    pooled_.resize(static_cast<size_t>(info.has_pooler ? in.batch * info.hidden_size : 0));
    int64_t pooled_shape[2] = {in.batch, info.hidden_size};
    tfx_tensor pooled{pooled_.data(), {TFX_DEVICE_CPU, 0}, 2, {TFX_DTYPE_FLOAT, 32, 1}, pooled_shape, nullptr, 0};

    tfx_forward_args args{};
    args.struct_size = sizeof(args);
    args.batch = in.batch;
    args.tokens = static_cast<int32_t>(in.tokens);
    args.last_token_only = in.last_token_only ? 1 : 0;
    args.input_ids = in.ids.data();
    args.positions = positions.data();
    args.key_mask = in.key_mask.empty() ? nullptr : in.key_mask.data();
    args.past_len = in.past_len;
    args.cache = in.cache != nullptr ? in.cache->layers() : nullptr;
    args.output = &out;
    args.token_type_ids = in.token_type_ids.empty() ? nullptr : in.token_type_ids.data();
    args.pooled_output = info.has_pooler ? &pooled : nullptr;
    session_.forward(args);
    return output_;
}

std::span<float> ForwardCall::row(int64_t r) {
    const auto width = static_cast<size_t>(session_.info().output_size);
    return std::span<float>(output_).subspan(static_cast<size_t>(r) * width, width);
}

}  // namespace tfx
