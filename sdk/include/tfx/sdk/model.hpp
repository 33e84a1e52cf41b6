// A model plugin in a few parts of its own: derive the model class from ModelPlugin<Model, ModelConfig>,
// give it declare(WeightTable&) (every tensor of the checkpoint, once), get_info() and forward(), and
// export it with model_table:
//
//   class GPT2 : public tfx::sdk::ModelPlugin<GPT2, GPT2Config> { ... };
//   TFX_PLUGIN_EXPORT(GPT2, tfx::sdk::model_table<GPT2>)
//
// load() and weight_specs() both run declare(), so what a model reads and what init-model writes
// cannot disagree. Decoders of the llama lineage derive from DecoderModel (decoder.hpp) instead.
#pragma once

#include "tfx/model.h"
#include "tfx/sdk/host.hpp"
#include "tfx/sdk/layers.hpp"
#include "tfx/sdk/plugin.hpp"

namespace tfx::sdk {

// Holds the host and the model's config (ModelConfig built from config.json, so a bad config fails
// at creation); provides load() and weight_specs() from Model::declare().
template <class Model, class ModelConfig>
class ModelPlugin {
  public:
    explicit ModelPlugin(const tfx_host_services* services) : host_(services), config_(host_.config()) {}

    // Whether the model shards its layers across tensor-parallel ranks (--tp): a model sets it
    // when every linear it splits is declared with a WeightTable::Split and each split over input
    // features is summed with Host::all_reduce (attention_weights, gated_mlp, SelfAttention and
    // ffn_gated do both).
    static constexpr bool kTensorParallel = false;

    void load(const char*) {
        if (host_.tp_size() > 1 && !Model::kTensorParallel) {
            throw Error(TFX_ERR_UNSUPPORTED, "--tp: model family '" +
                                                 host_.config().template get_or<std::string>("model_type", "?") +
                                                 "' does not shard its layers across ranks yet");
        }
        WeightTable w(host_, WeightTable::Mode::load);
        static_cast<Model*>(this)->declare(w);
    }
    void weight_specs(const char*, tfx_sink sink) {
        WeightTable w(host_, WeightTable::Mode::describe);
        static_cast<Model*>(this)->declare(w);
        w.write_specs(sink);
    }

  protected:
    Host host_;
    const ModelConfig config_;
};

namespace detail {
// The table's C entry points: each calls the model's method by name (its own or ModelPlugin's).
template <class Model>
struct ModelEntry {
    static Model& self(void* instance) { return *static_cast<Model*>(instance); }
    static int32_t load(void* instance, const char* architecture, tfx_error* error) noexcept {
        return guard(error, [&] { self(instance).load(architecture); });
    }
    static int32_t get_info(void* instance, tfx_model_info* info, tfx_error* error) noexcept {
        return guard(error, [&] { self(instance).get_info(info); });
    }
    static int32_t forward(void* instance, const tfx_forward_args* args, tfx_error* error) noexcept {
        return guard(error, [&] { self(instance).forward(args); });
    }
    static int32_t weight_specs(void* instance, const char* architecture, tfx_sink sink, tfx_error* error) noexcept {
        return guard(error, [&] { self(instance).weight_specs(architecture, sink); });
    }
};
}  // namespace detail

// The model table of a ModelPlugin, for TFX_PLUGIN_EXPORT.
template <class Model>
inline const tfx_model_table model_table = {
    sizeof(tfx_model_table),
    &detail::ModelEntry<Model>::load,
    &detail::ModelEntry<Model>::get_info,
    &detail::ModelEntry<Model>::forward,
    &detail::ModelEntry<Model>::weight_specs,
};

}  // namespace tfx::sdk
