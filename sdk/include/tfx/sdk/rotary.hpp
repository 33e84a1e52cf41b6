// Rotary position embeddings as transformers' modeling_rope_utils computes them, in f32 like
// torch: rope_type default, linear, dynamic (NTK, growing with the longest sequence seen),
// llama3, yarn and longrope (Phi-3's short or long factors, chosen per call). A mechanism
// shared by model families (as ROPE_INIT_FUNCTIONS is in transformers); which rope types a
// family accepts stays the family's decision.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfx/sdk/config.hpp"

namespace tfx::sdk {

struct RopeSettings {
    int64_t dim;            // rotated dims per head (head_dim, or less for partial rotary)
    double theta;           // rope_theta
    std::string type;       // "default", "linear", "dynamic", "llama3", "yarn" or "longrope"
    Config scaling;         // the rope_scaling object (empty when absent)
    int64_t max_positions;  // max_position_embeddings
    // The config's own original_max_position_embeddings (Phi-3 keeps it beside rope_scaling),
    // 0 when it has none; only longrope reads it, as transformers does.
    int64_t original_max_positions = 0;
};

// rope_scaling's "rope_type" (or the older "type"), "default" when there is none.
inline std::string rope_type_of(const Config& config) {
    if (!config.has("rope_scaling")) return "default";
    const Config s = config.child("rope_scaling");
    return s.has("rope_type") ? s.get<std::string>("rope_type") : s.get_or<std::string>("type", "default");
}

class RotaryEmbedding {
  public:
    explicit RotaryEmbedding(RopeSettings settings) : c_(std::move(settings)), dim_(c_.dim) {
        const RopeSettings& c = c_;
        const Config& s = c.scaling;
        original_max_ = s.get_or<int64_t>("original_max_position_embeddings", c.max_positions);
        inv_freq_ = base_inv_freq(c.theta);
        if (c.type == "linear") {
            const float factor = s.get<float>("factor");
            for (float& f : inv_freq_) f /= factor;
        } else if (c.type == "llama3") {
            llama3(s);
        } else if (c.type == "yarn") {
            yarn(s);
        } else if (c.type == "dynamic") {
            original_inv_freq_ = inv_freq_;
            cached_len_ = c.max_positions;
        } else if (c.type == "longrope") {
            longrope(s);
        }
    }

    // Chooses the frequencies for a call over `positions` (dynamic and longrope scaling depend on
    // the largest position); true when they changed since the last call. The backend's rope op
    // then turns position p by p * inv_freq()[i], scaling cos and sin by attention_factor().
    bool update(const int32_t* positions, int64_t tokens) {
        int64_t seq_len = 0;
        for (int64_t t = 0; t < tokens; ++t) seq_len = std::max<int64_t>(seq_len, int64_t{positions[t]} + 1);
        if (c_.type == "dynamic") return update_dynamic(seq_len);
        if (c_.type == "longrope") return update_longrope(seq_len);
        return false;
    }
    const std::vector<float>& inv_freq() const { return inv_freq_; }
    float attention_factor() const { return attention_factor_; }

  private:
    std::vector<float> base_inv_freq(double base) const {
        std::vector<float> f(static_cast<size_t>(dim_ / 2));
        for (int64_t i = 0; i < dim_ / 2; ++i) {
            f[i] = 1.0f / std::pow(static_cast<float>(base), static_cast<float>(2 * i) / static_cast<float>(dim_));
        }
        return f;
    }

    void llama3(const Config& s) {
        const float factor = s.get<float>("factor");
        const float low = s.get<float>("low_freq_factor");
        const float high = s.get<float>("high_freq_factor");
        const float old_context = static_cast<float>(s.get<int64_t>("original_max_position_embeddings"));
        const float low_wavelen = old_context / low;
        const float high_wavelen = old_context / high;
        for (float& f : inv_freq_) {
            const float wavelen = 2.0f * std::numbers::pi_v<float> / f;
            if (wavelen > low_wavelen) {
                f /= factor;
            } else if (wavelen >= high_wavelen) {
                const float smooth = (old_context / wavelen - low) / (high - low);
                f = (1.0f - smooth) * f / factor + smooth * f;
            }
        }
    }

    void yarn(const Config& s) {
        const float factor = s.get<float>("factor");
        const float beta_fast = s.get_or<float>("beta_fast", 32.0f);
        const float beta_slow = s.get_or<float>("beta_slow", 1.0f);
        auto mscale = [](float scale, float m) { return scale <= 1.0f ? 1.0f : 0.1f * m * std::log(scale) + 1.0f; };
        if (s.has("attention_factor")) {
            attention_factor_ = s.get<float>("attention_factor");
        } else if (s.has("mscale") && s.has("mscale_all_dim")) {
            attention_factor_ = mscale(factor, s.get<float>("mscale")) / mscale(factor, s.get<float>("mscale_all_dim"));
        } else {
            attention_factor_ = mscale(factor, 1.0f);
        }
        const float base = static_cast<float>(c_.theta);
        const float d = static_cast<float>(dim_);
        auto correction_dim = [&](float rotations) {
            return (d * std::log(static_cast<float>(original_max_) / (rotations * 2.0f * std::numbers::pi_v<float>))) /
                   (2.0f * std::log(base));
        };
        float low = std::floor(correction_dim(beta_fast));
        float high = std::ceil(correction_dim(beta_slow));
        low = std::max(low, 0.0f);
        high = std::min(high, d - 1.0f);
        if (low == high) high += 0.001f;  // avoids a division by zero in the ramp
        for (int64_t i = 0; i < dim_ / 2; ++i) {
            const float extrapolation = inv_freq_[i];
            const float interpolation = extrapolation / factor;
            const float ramp = std::clamp((static_cast<float>(i) - low) / (high - low), 0.0f, 1.0f);
            const float extrapolation_weight = 1.0f - ramp;
            inv_freq_[i] = interpolation * (1.0f - extrapolation_weight) + extrapolation * extrapolation_weight;
        }
    }

    // _compute_longrope_parameters: inv_freq = 1 / (ext * theta^(2i/dim)) with ext the
    // short_factor list, or long_factor (see update_longrope); cos and sin scaled by
    // attention_factor, by default sqrt(1 + ln(factor) / ln(original)) (1 when factor <= 1).
    // With a top-level original_max_position_embeddings, factor = max / original; without,
    // the original context is max_position_embeddings and factor is rope_scaling's.
    void longrope(const Config& s) {
        double factor = 0.0;
        if (c_.original_max_positions > 0) {
            original_max_ = c_.original_max_positions;
            factor = static_cast<double>(c_.max_positions) / static_cast<double>(original_max_);
        } else {
            original_max_ = c_.max_positions;
            factor = s.get<double>("factor");
        }
        if (s.has("attention_factor")) {
            attention_factor_ = s.get<float>("attention_factor");
        } else if (factor > 1.0) {
            const double original = static_cast<double>(original_max_);
            attention_factor_ = static_cast<float>(std::sqrt(1.0 + std::log(factor) / std::log(original)));
        }
        short_inv_freq_ = longrope_inv_freq(s, "short_factor");
        long_inv_freq_ = longrope_inv_freq(s, "long_factor");
        inv_freq_ = short_inv_freq_;
    }

    std::vector<float> longrope_inv_freq(const Config& s, const char* key) const {
        const int64_t half = dim_ / 2;
        if (!s.has(key)) s.fail(key, "required for longrope");
        const nlohmann::json& list = s.json().at(key);
        if (!list.is_array() || static_cast<int64_t>(list.size()) != half) {
            s.fail(key, "expected a list of " + std::to_string(half) + " numbers (rotary dims / 2)");
        }
        std::vector<float> f(static_cast<size_t>(half));
        for (int64_t i = 0; i < half; ++i) {
            const nlohmann::json& ext = list[static_cast<size_t>(i)];
            if (!ext.is_number()) s.fail(key, "expected numbers, got " + ext.dump());
            const float base_pow =
                std::pow(static_cast<float>(c_.theta), static_cast<float>(2 * i) / static_cast<float>(dim_));
            f[i] = 1.0f / (ext.get<float>() * base_pow);
        }
        return f;
    }

    // long_factor once a call's largest position + 1 passes the original context, else
    // short_factor: decided per call, as _longrope_frequency_update does.
    bool update_longrope(int64_t seq_len) {
        const bool use_long = seq_len > original_max_;
        if (use_long == long_in_use_) return false;
        long_in_use_ = use_long;
        inv_freq_ = use_long ? long_inv_freq_ : short_inv_freq_;
        return true;
    }

    // NTK-aware scaling that grows with the longest sequence seen, as transformers does.
    bool update_dynamic(int64_t seq_len) {
        if (seq_len > cached_len_) {
            const double factor = c_.scaling.get<double>("factor");
            const double d = static_cast<double>(dim_);
            const double base =
                c_.theta *
                std::pow(factor * static_cast<double>(seq_len) / static_cast<double>(c_.max_positions) - (factor - 1.0),
                         d / (d - 2.0));
            inv_freq_ = base_inv_freq(base);
            cached_len_ = seq_len;
            return true;
        }
        if (seq_len < original_max_ && cached_len_ > original_max_) {
            inv_freq_ = original_inv_freq_;
            cached_len_ = original_max_;
            return true;
        }
        return false;
    }

    RopeSettings c_;
    int64_t dim_;
    int64_t original_max_;
    std::vector<float> inv_freq_, original_inv_freq_, short_inv_freq_, long_inv_freq_;
    int64_t cached_len_ = 0;
    bool long_in_use_ = false;  // longrope: long_factor's frequencies are the current ones
    float attention_factor_ = 1.0f;
};

}  // namespace tfx::sdk
