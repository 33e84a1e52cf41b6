#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "parallel.h"
#include "tfx/backend.h"

namespace tfx::cpu {
void rms_norm(const float* x, const float* w, float eps, float offset, float* y, int64_t rows, int64_t dim) {
    parallel_for(rows, rows > 1, [&](int64_t r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        float sum = 0.0f;
        for (int64_t i = 0; i < dim; ++i) sum += xr[i] * xr[i];
        const float inv = 1.0f / std::sqrt(sum / static_cast<float>(dim) + eps);
        for (int64_t i = 0; i < dim; ++i) yr[i] = (offset + w[i]) * (xr[i] * inv);
    });
}

void layer_norm(const float* x, const float* w, const float* b, float eps, float* y, int64_t rows, int64_t dim) {
    parallel_for(rows, rows > 1, [&](int64_t r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        float mean = 0.0f;
        for (int64_t i = 0; i < dim; ++i) mean += xr[i];
        mean /= static_cast<float>(dim);
        float var = 0.0f;
        for (int64_t i = 0; i < dim; ++i) var += (xr[i] - mean) * (xr[i] - mean);
        var /= static_cast<float>(dim);
        const float inv = 1.0f / std::sqrt(var + eps);
        for (int64_t i = 0; i < dim; ++i) yr[i] = (xr[i] - mean) * inv * w[i] + (b != nullptr ? b[i] : 0.0f);
    });
}

void rope(float* x, const int32_t* positions, const float* inv_freq, float attention_scaling, int64_t tokens,
          int64_t heads, int64_t head_dim, int64_t half) {
    parallel_for(tokens, tokens > 1, [&](int64_t t) {
        // cos and sin of this token's angles, once for all heads (grow-only, per thread).
        thread_local std::vector<float> angles;
        angles.resize(static_cast<size_t>(2 * half));
        float* c = angles.data();
        float* s = c + half;
        const float position = static_cast<float>(positions[t]);
        for (int64_t i = 0; i < half; ++i) {
            const float angle = position * inv_freq[i];
            c[i] = std::cos(angle) * attention_scaling;
            s[i] = std::sin(angle) * attention_scaling;
        }
        for (int64_t h = 0; h < heads; ++h) {
            float* v = x + (t * heads + h) * head_dim;
            for (int64_t i = 0; i < half; ++i) {
                const float a = v[i];
                const float b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
    });
}

void softmax(const float* x, float* y, int64_t rows, int64_t dim) {
    parallel_for(rows, rows > 1, [&](int64_t r) {
        const float* xr = x + r * dim;
        float* yr = y + r * dim;
        const float max = *std::max_element(xr, xr + dim);
        float sum = 0.0f;
        for (int64_t i = 0; i < dim; ++i) sum += (yr[i] = std::exp(xr[i] - max));
        for (int64_t i = 0; i < dim; ++i) yr[i] /= sum;
    });
}

void weighted_sum(const float* x, const float* w, float* y, int64_t n, int64_t k, int64_t dim) {
    parallel_for(n, n > 1 && n * k * dim > 16384, [&](int64_t t) {
        float* yt = y + t * dim;
        for (int64_t d = 0; d < dim; ++d) yt[d] = 0.0f;
        for (int64_t s = 0; s < k; ++s) {
            const float ws = w[t * k + s];
            const float* xs = x + (t * k + s) * dim;
            for (int64_t d = 0; d < dim; ++d) yt[d] += ws * xs[d];
        }
    });
}

}  // namespace tfx::cpu
