// One forward call over a ragged batch built from host-side data: the one place where host
// code (generation, pipelines, tfx forward, tfx bench, tests) fills tfx_forward_args. It
// uploads the batch (ids, positions, sequence offsets, block tables, slots) to the backend's
// device in one transfer, runs the model and downloads only the output rows. Its device and
// host buffers grow to the largest call seen, so a decode loop allocates nothing per step.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/kv_cache.h"
#include "core/model_session.h"

namespace tfx {

// One sequence's part of a call.
struct SequenceInput {
    std::span<const int32_t> ids;             // its new tokens
    std::span<const int32_t> positions;       // empty: cached length + 0, 1, ...
    std::span<const int32_t> token_type_ids;  // empty: all segment 0
    PagedKvCache::SeqId cache_seq = -1;       // its sequence in the call's cache (-1: no cache)
    int32_t adapter = lora::kActiveAdapters;  // LoRA applied at run time: the session's active set, none, or one
    enum class Output { last, all, none } output = Output::last;
    // Encoder-decoder models: the encoder's tokens on the call that encodes (every sequence of
    // it), none on later calls, which read the encoder's keys and values from the cross cache
    // (`cross_seq`: the sequence's entry in it, -1 without one; then every call encodes).
    std::span<const int32_t> encoder_ids;
    PagedKvCache::SeqId cross_seq = -1;
    // A vision model's image (model_info.image_tokens > 0): f32 [channels, height, width], the
    // image processor's pixel_values; `ids` stay empty, as the model makes its tokens of these.
    std::span<const float> pixels;
    // A speech encoder-decoder model's encoder input (model_info.input_feature_tokens > 0) on
    // the call that encodes: f32 [input_feature_bins, input_feature_frames] (Whisper's log-mel
    // input_features), in place of encoder_ids.
    std::span<const float> input_features;
};

class ForwardCall {
  public:
    // `cache`: the KV cache every sequence of a call lives in, or nullptr for cache-less passes;
    // `cross_cache`: an encoder-decoder model's cross-attention cache (num_cross_layers layers).
    explicit ForwardCall(ModelSession& session, PagedKvCache* cache = nullptr, PagedKvCache* cross_cache = nullptr);

    // Runs the model over the sequences (each gets its own positions and cache blocks). Returns
    // the output rows, sequence by sequence: those each asked for, or one per sequence for a
    // classifier; valid until the next run.
    std::span<const float> run(std::span<const SequenceInput> sequences);
    std::span<const float> run(const SequenceInput& sequence) { return run(std::span(&sequence, 1)); }
    int64_t rows() const { return rows_; }
    // One output row; writable, so logits processors can work in place.
    std::span<float> row(int64_t r);
    // The pooler's output [sequences, hidden] when the model has one, else empty.
    std::span<const float> pooled() const { return pooled_; }
    // The encoder's last hidden state [encoder tokens, hidden] of the last call, when it encoded.
    std::span<const float> encoder_output() const { return encoder_output_; }

  private:
    // Checks one sequence's inputs and appends its part of the batch to the host arrays.
    void add_sequence(const SequenceInput& in, int32_t index);
    // A vision model's image checked and staged; returns whether the sequence is an image, and
    // its ids in `ids` (placeholders for an image, else its own).
    bool add_image(const SequenceInput& in, const std::string& which, std::span<const int32_t>& ids);
    // The same for its encoder part (encoder-decoder models); `encodes`: whether the call does.
    void add_encoder_sequence(const SequenceInput& in, int32_t index, bool encodes);
    // A speech encoder's input features checked and staged; its placeholder encoder ids.
    std::span<const int32_t> add_input_features(const SequenceInput& in, const std::string& which);

    ModelSession& session_;
    PagedKvCache* cache_;
    PagedKvCache* cross_cache_;
    int64_t rows_ = 0;
    // Host side of the batch: every i32 array in one buffer (one upload), sections at offsets.
    std::vector<int32_t> ids_, positions_, types_, seq_start_, context_len_, slots_, block_table_, output_rows_;
    // The encoder's batch, addressing the cross cache.
    std::vector<int32_t> enc_ids_, enc_positions_, enc_seq_start_, enc_context_len_, enc_slots_, enc_block_table_;
    std::vector<int32_t> staging_;
    std::vector<int32_t> image_ids_;                 // a vision model's placeholder ids (not read by the model)
    std::vector<float> pixels_;                      // the call's images back to back
    std::vector<float> features_;                    // the call's encoder input features back to back
    std::vector<int32_t> feature_ids_;               // a speech encoder's placeholder ids (not read)
    int64_t images_ = 0;                             // how many of the call's sequences are images
    std::vector<int32_t> token_lora_, output_lora_;  // each row's LoRA choice
    DeviceAllocation device_batch_, device_output_, device_pooled_, device_encoder_output_, device_pixels_,
        device_features_;
    std::vector<float> output_, pooled_, encoder_output_;
};

}  // namespace tfx
