#include "core/forward_call.h"

#include <algorithm>
#include <cmath>

#include "tfx/sdk/error.hpp"

namespace tfx {

ForwardCall::ForwardCall(ModelSession& session, PagedKvCache* cache, PagedKvCache* cross_cache)
    : session_(session), cache_(cache), cross_cache_(cross_cache) {
    if (cache != nullptr && session.info().num_layers == 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, session.architecture() + " keeps no KV cache");
    }
    if (cross_cache != nullptr && session.info().num_cross_layers == 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, session.architecture() + " has no encoder to cross-attend to");
    }
}

namespace {

// Rows of block ids, one per sequence (padded with block 0, never read past a sequence's
// length); the widest row's count.
int32_t fill_block_table(const PagedKvCache& cache, std::span<const SequenceInput> sequences,
                         PagedKvCache::SeqId SequenceInput::*seq, std::vector<int32_t>& table) {
    int32_t width = 0;
    for (const SequenceInput& in : sequences) {
        width = std::max(width, static_cast<int32_t>(cache.blocks(in.*seq).size()));
    }
    table.assign(sequences.size() * static_cast<size_t>(width), 0);
    for (size_t s = 0; s < sequences.size(); ++s) {
        const auto blocks = cache.blocks(sequences[s].*seq);
        std::copy(blocks.begin(), blocks.end(), table.begin() + static_cast<ptrdiff_t>(s * width));
    }
    return width;
}

void check_ids(std::span<const int32_t> ids, int32_t vocab_size) {
    for (int32_t id : ids) {
        if (id < 0 || id >= vocab_size) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "input id " + std::to_string(id) +
                                                           " is outside the vocabulary (size " +
                                                           std::to_string(vocab_size) + ")");
        }
    }
}

// A sequence's f32 input (an image's pixels, a speech encoder's features), checked against the
// model's shape and appended to the call's staged values.
void stage_f32(std::span<const float> values, std::initializer_list<int64_t> shape, const std::string& what,
               const std::string& which, std::vector<float>& staged) {
    int64_t expected = 1;
    std::string dims;
    for (int64_t d : shape) {
        expected *= d;
        dims += (dims.empty() ? "" : ", ") + std::to_string(d);
    }
    if (static_cast<int64_t>(values.size()) != expected) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + ": " + what + " must be f32 [" + dims + "] (" +
                                                       std::to_string(expected) + " values), got " +
                                                       std::to_string(values.size()));
    }
    if (!std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); }))
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + ": a value in " + what + " is not finite");
    staged.insert(staged.end(), values.begin(), values.end());
}

}  // namespace

void ForwardCall::add_encoder_sequence(const SequenceInput& in, int32_t index, bool encodes) {
    const tfx_model_info& info = session_.info();
    const std::string which = "sequence " + std::to_string(index);
    if ((in.cross_seq >= 0) != (cross_cache_ != nullptr)) {
        throw sdk::Error(
            TFX_ERR_INVALID_ARGUMENT,
            "forward: " + which +
                (cross_cache_ != nullptr ? " names no cross-cache sequence"
                                         : " names a cross-cache sequence but the call has no cross cache"));
    }
    const int64_t context = cross_cache_ != nullptr ? cross_cache_->length(in.cross_seq) : 0;
    const bool speech = info.input_feature_tokens > 0;
    if (!speech && !in.input_features.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + ": " + session_.architecture() +
                                                       "'s encoder takes token ids, not input features");
    }
    const std::span<const int32_t> encoder_ids = speech ? add_input_features(in, which) : in.encoder_ids;
    const auto n = static_cast<int64_t>(encoder_ids.size());
    if (encodes != (n > 0)) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: a call encodes every sequence or none, and " + which +
                                                       (n > 0 ? " brings encoder tokens where another does not"
                                                              : " brings no encoder tokens where another does"));
    }
    if (n > 0 && context > 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + " was encoded already");
    }
    if (n == 0 && context == 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "forward: " + which + (speech ? " needs input features" : " needs encoder tokens") +
                             " (an encoder-decoder model's first call, or a call without a cross cache)");
    }
    if (!speech) check_ids(encoder_ids, info.vocab_size);
    if (!speech && info.max_positions > 0 && n > info.max_positions) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + "'s encoder input has " + std::to_string(n) +
                                                       " tokens, past the model's max_position_embeddings (" +
                                                       std::to_string(info.max_positions) + ")");
    }
    enc_ids_.insert(enc_ids_.end(), encoder_ids.begin(), encoder_ids.end());
    for (int64_t i = 0; i < n; ++i) enc_positions_.push_back(static_cast<int32_t>(i));
    enc_seq_start_.push_back(static_cast<int32_t>(enc_ids_.size()));
    enc_context_len_.push_back(static_cast<int32_t>(context));
    if (cross_cache_ != nullptr && n > 0) {
        cross_cache_->reserve(in.cross_seq, n);
        const std::span<const int32_t> blocks = cross_cache_->blocks(in.cross_seq);
        const int64_t bs = cross_cache_->block_size();
        for (int64_t p = 0; p < n; ++p) {
            enc_slots_.push_back(static_cast<int32_t>(blocks[static_cast<size_t>(p / bs)] * bs + p % bs));
        }
    }
}

std::span<const int32_t> ForwardCall::add_input_features(const SequenceInput& in, const std::string& which) {
    const tfx_model_info& info = session_.info();
    if (!in.encoder_ids.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + ": " + session_.architecture() +
                                                       "'s encoder takes input features, not token ids");
    }
    if (in.input_features.empty()) return {};  // a call that reads the cross cache
    stage_f32(in.input_features, {info.input_feature_bins, info.input_feature_frames}, "the input features", which,
              features_);
    feature_ids_.assign(static_cast<size_t>(info.input_feature_tokens), 0);
    return feature_ids_;
}

bool ForwardCall::add_image(const SequenceInput& in, const std::string& which, std::span<const int32_t>& ids) {
    const tfx_model_info& info = session_.info();
    ids = in.ids;
    if (info.image_tokens <= 0) {
        if (!in.pixels.empty()) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + ": " + session_.architecture() +
                                                           " is not a vision model (it takes no pixels)");
        }
        return false;
    }
    // A vision model with a vocabulary (CLIP) takes texts too.
    if (in.pixels.empty() && !in.ids.empty() && info.vocab_size > 0) return false;
    if (!in.ids.empty()) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "forward: " + which + ": " + session_.architecture() +
                             (info.vocab_size > 0 ? " takes pixels or token ids, not both"
                                                  : " is a vision model: it takes pixels, not token ids"));
    }
    stage_f32(in.pixels, {info.image_channels, info.image_height, info.image_width}, "the image", which, pixels_);
    image_ids_.assign(static_cast<size_t>(info.image_tokens), 0);
    ids = image_ids_;
    return true;
}

void ForwardCall::add_sequence(const SequenceInput& in, int32_t index) {
    const tfx_model_info& info = session_.info();
    const std::string which = "sequence " + std::to_string(index);
    std::span<const int32_t> ids;
    const bool image = add_image(in, which, ids);
    images_ += image ? 1 : 0;
    const auto n = static_cast<int64_t>(ids.size());
    if (n == 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + " has no tokens");
    if ((!in.positions.empty() && static_cast<int64_t>(in.positions.size()) != n) ||
        (!in.token_type_ids.empty() && static_cast<int64_t>(in.token_type_ids.size()) != n)) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "forward: " + which + ": positions and token types must have one entry per token");
    }
    if (!image) check_ids(ids, info.vocab_size);
    if ((in.cache_seq >= 0) != (cache_ != nullptr)) {
        throw sdk::Error(
            TFX_ERR_INVALID_ARGUMENT,
            "forward: " + which +
                (cache_ != nullptr ? " names no cache sequence" : " names a cache sequence but the call has no cache"));
    }
    const int64_t context = cache_ != nullptr ? cache_->length(in.cache_seq) : 0;
    // An image's tokens are the model's own count; max_positions bounds texts (CLIP's 77).
    if (!image && info.max_positions > 0 && context + n > info.max_positions) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "forward: " + which + " reaches position " + std::to_string(context + n) +
                             ", past the model's max_position_embeddings (" + std::to_string(info.max_positions) + ")");
    }
    const auto first = static_cast<int32_t>(ids_.size());
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    for (int64_t i = 0; i < n; ++i) {
        positions_.push_back(in.positions.empty() ? static_cast<int32_t>(context + i) : in.positions[i]);
        types_.push_back(in.token_type_ids.empty() ? 0 : in.token_type_ids[i]);
    }
    seq_start_.push_back(static_cast<int32_t>(ids_.size()));
    context_len_.push_back(static_cast<int32_t>(context));
    if (cache_ != nullptr) {
        cache_->reserve(in.cache_seq, n);
        const std::span<const int32_t> blocks = cache_->blocks(in.cache_seq);
        const int64_t bs = cache_->block_size();
        for (int64_t p = context; p < context + n; ++p) {
            slots_.push_back(static_cast<int32_t>(blocks[static_cast<size_t>(p / bs)] * bs + p % bs));
        }
    }
    if (in.output == SequenceInput::Output::last) output_rows_.push_back(first + static_cast<int32_t>(n) - 1);
    if (in.output == SequenceInput::Output::all) {
        for (int64_t i = 0; i < n; ++i) output_rows_.push_back(first + static_cast<int32_t>(i));
    }
}

std::span<const float> ForwardCall::run(std::span<const SequenceInput> sequences) {
    const tfx_model_info& info = session_.info();
    const Device& device = session_.device();
    if (sequences.empty()) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: no sequences");
    for (auto* v : {&ids_, &positions_, &types_, &context_len_, &slots_, &block_table_, &output_rows_, &enc_ids_,
                    &enc_positions_, &enc_context_len_, &enc_slots_, &enc_block_table_}) {
        v->clear();
    }
    seq_start_.assign(1, 0);
    enc_seq_start_.assign(1, 0);
    pixels_.clear();
    features_.clear();
    images_ = 0;
    const bool encoder_decoder = info.num_cross_layers > 0;
    const bool encodes =
        encoder_decoder && (!sequences.front().encoder_ids.empty() || !sequences.front().input_features.empty());
    for (size_t s = 0; s < sequences.size(); ++s) {
        const SequenceInput& in = sequences[s];
        if (!encoder_decoder && (!in.encoder_ids.empty() || !in.input_features.empty() || in.cross_seq >= 0)) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + session_.architecture() +
                                                           " is not an encoder-decoder model (no encoder input)");
        }
        add_sequence(in, static_cast<int32_t>(s));
        if (encoder_decoder) add_encoder_sequence(in, static_cast<int32_t>(s), encodes);
    }
    if (images_ > 0 && images_ != static_cast<int64_t>(sequences.size())) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: a call's sequences must be all images or all texts");
    }
    const auto num_seqs = static_cast<int32_t>(sequences.size());
    const auto num_tokens = static_cast<int32_t>(ids_.size());
    const auto encoder_tokens = static_cast<int32_t>(enc_ids_.size());

    int32_t max_context = 0, max_encoder_context = 0;
    for (int32_t s = 0; s < num_seqs; ++s) {
        max_context = std::max(max_context, context_len_[s] + seq_start_[s + 1] - seq_start_[s]);
        if (encoder_decoder) {
            max_encoder_context =
                std::max(max_encoder_context, enc_context_len_[s] + enc_seq_start_[s + 1] - enc_seq_start_[s]);
        }
    }
    const int32_t max_blocks =
        cache_ != nullptr ? fill_block_table(*cache_, sequences, &SequenceInput::cache_seq, block_table_) : 0;
    const int32_t max_encoder_blocks =
        cross_cache_ != nullptr
            ? fill_block_table(*cross_cache_, sequences, &SequenceInput::cross_seq, enc_block_table_)
            : 0;
    // Classifiers and embedders give one row per sequence.
    const bool classifier = info.output_kind == TFX_OUTPUT_CLASS_LOGITS || info.output_kind == TFX_OUTPUT_EMBEDDING;
    const bool every_token = !classifier && static_cast<int32_t>(output_rows_.size()) == num_tokens &&
                             std::all_of(sequences.begin(), sequences.end(), [](const SequenceInput& in) {
                                 return in.output == SequenceInput::Output::all;
                             });
    rows_ = classifier ? num_seqs : static_cast<int64_t>(output_rows_.size());
    if (session_.applies_lora()) {
        // Each token row, and each output row, applies its sequence's adapters.
        token_lora_.clear();
        output_lora_.clear();
        for (int32_t s = 0; s < num_seqs; ++s) {
            token_lora_.insert(token_lora_.end(), static_cast<size_t>(seq_start_[s + 1] - seq_start_[s]),
                               sequences[s].adapter);
            if (classifier) output_lora_.push_back(sequences[s].adapter);
        }
        for (int32_t row : output_rows_) {
            if (!classifier) output_lora_.push_back(token_lora_[static_cast<size_t>(row)]);
        }
        session_.set_lora_rows(token_lora_, output_lora_);
    }

    // One upload: the arrays back to back, then views of them on the device.
    struct Section {
        const std::vector<int32_t>* data;
        size_t offset;
    };
    std::vector<Section> sections;
    staging_.clear();
    for (const auto* v :
         {&ids_, &positions_, &types_, &seq_start_, &context_len_, &slots_, &block_table_, &output_rows_, &enc_ids_,
          &enc_positions_, &enc_seq_start_, &enc_context_len_, &enc_slots_, &enc_block_table_}) {
        sections.push_back({v, staging_.size()});
        staging_.insert(staging_.end(), v->begin(), v->end());
    }
    const uint64_t batch_bytes = std::max<size_t>(staging_.size(), 1) * sizeof(int32_t);
    if (device_batch_.bytes() < batch_bytes) device_batch_ = device.alloc(batch_bytes);
    sdk::View all(device_batch_.data(), sdk::kI32, {static_cast<int64_t>(staging_.size())}, device.device());
    device.upload(staging_.data(), all);
    auto view = [&](size_t i, std::initializer_list<int64_t> shape) {
        return all.at(static_cast<int64_t>(sections[i].offset), shape);
    };
    sdk::View ids = view(0, {num_tokens}), positions = view(1, {num_tokens}), types = view(2, {num_tokens});
    sdk::View seq_start = view(3, {num_seqs + 1}), context_len = view(4, {num_seqs});
    sdk::View slots = view(5, {num_tokens}), block_table = view(6, {num_seqs, max_blocks});
    sdk::View output_rows = view(7, {static_cast<int64_t>(output_rows_.size())});
    sdk::View enc_ids = view(8, {encoder_tokens}), enc_positions = view(9, {encoder_tokens});
    sdk::View enc_seq_start = view(10, {num_seqs + 1}), enc_context_len = view(11, {num_seqs});
    sdk::View enc_slots = view(12, {encoder_tokens}), enc_block_table = view(13, {num_seqs, max_encoder_blocks});

    tfx_batch batch{};
    batch.struct_size = sizeof(batch);
    batch.num_tokens = num_tokens;
    batch.num_seqs = num_seqs;
    batch.block_size = cache_ != nullptr ? cache_->block_size() : 0;
    batch.max_blocks_per_seq = max_blocks;
    batch.max_context_len = max_context;
    batch.seq_start = seq_start_.data();
    batch.context_len = context_len_.data();
    batch.positions = positions_.data();
    batch.seq_start_dev = seq_start.get();
    batch.context_len_dev = context_len.get();
    batch.positions_dev = positions.get();
    batch.block_table = cache_ != nullptr ? block_table.get() : nullptr;
    batch.slot_mapping = cache_ != nullptr ? slots.get() : nullptr;

    // The encoder's batch: its tokens on the call that encodes, and the cross cache's addressing.
    tfx_batch encoder_batch{};
    encoder_batch.struct_size = sizeof(encoder_batch);
    encoder_batch.num_tokens = encoder_tokens;
    encoder_batch.num_seqs = num_seqs;
    encoder_batch.block_size = cross_cache_ != nullptr ? cross_cache_->block_size() : 0;
    encoder_batch.max_blocks_per_seq = max_encoder_blocks;
    encoder_batch.max_context_len = max_encoder_context;
    encoder_batch.seq_start = enc_seq_start_.data();
    encoder_batch.context_len = enc_context_len_.data();
    encoder_batch.positions = enc_positions_.data();
    encoder_batch.seq_start_dev = enc_seq_start.get();
    encoder_batch.context_len_dev = enc_context_len.get();
    encoder_batch.positions_dev = enc_positions.get();
    encoder_batch.block_table = cross_cache_ != nullptr ? enc_block_table.get() : nullptr;
    encoder_batch.slot_mapping = cross_cache_ != nullptr ? enc_slots.get() : nullptr;
    const uint64_t encoder_bytes = static_cast<uint64_t>(std::max(encoder_tokens, 1)) * info.hidden_size * 4;
    if (encodes && device_encoder_output_.bytes() < encoder_bytes) device_encoder_output_ = device.alloc(encoder_bytes);
    sdk::View encoder_out(device_encoder_output_.data(), sdk::kF32, {encoder_tokens, info.hidden_size},
                          device.device());

    const uint64_t output_bytes = static_cast<uint64_t>(std::max<int64_t>(rows_, 1)) * info.output_size * 4;
    if (device_output_.bytes() < output_bytes) device_output_ = device.alloc(output_bytes);
    sdk::View out(device_output_.data(), sdk::kF32, {rows_, info.output_size}, device.device());
    const int64_t pooled_rows = info.has_pooler ? num_seqs : 0;
    const uint64_t pooled_bytes = static_cast<uint64_t>(std::max<int64_t>(pooled_rows, 1)) * info.hidden_size * 4;
    if (info.has_pooler && device_pooled_.bytes() < pooled_bytes) device_pooled_ = device.alloc(pooled_bytes);
    sdk::View pooled(device_pooled_.data(), sdk::kF32, {pooled_rows, info.hidden_size}, device.device());

    tfx_forward_args args{};
    args.struct_size = sizeof(args);
    args.batch = &batch;
    args.input_ids = ids.get();
    args.token_type_ids =
        std::any_of(types_.begin(), types_.end(), [](int32_t t) { return t != 0; }) ? types.get() : nullptr;
    args.cache = cache_ != nullptr ? cache_->layers() : nullptr;
    args.output_rows = classifier || every_token ? nullptr : output_rows.get();
    args.num_output_rows = static_cast<int32_t>(classifier ? 0 : rows_);
    args.output = out.get();
    args.pooled_output = info.has_pooler ? pooled.get() : nullptr;
    if (encoder_decoder) {
        args.encoder_batch = &encoder_batch;
        args.encoder_input_ids = encodes ? enc_ids.get() : nullptr;
        args.cross_cache = cross_cache_ != nullptr ? cross_cache_->layers() : nullptr;
        args.encoder_output = encodes ? encoder_out.get() : nullptr;
    }
    // The images or input features in an upload of their own (f32, beside the batch's i32 arrays).
    auto upload_f32 = [&](const std::vector<float>& values, DeviceAllocation& buffer,
                          std::initializer_list<int64_t> shape) {
        const uint64_t bytes = values.size() * sizeof(float);
        if (buffer.bytes() < bytes) buffer = device.alloc(bytes);
        sdk::View uploaded(buffer.data(), sdk::kF32, shape, device.device());
        device.upload(values.data(), uploaded);
        return uploaded;
    };
    sdk::View pixels, features;
    if (images_ > 0) {
        pixels =
            upload_f32(pixels_, device_pixels_, {num_seqs, info.image_channels, info.image_height, info.image_width});
        args.pixel_values = pixels.get();
    }
    if (!features_.empty()) {
        features =
            upload_f32(features_, device_features_, {num_seqs, info.input_feature_bins, info.input_feature_frames});
        args.input_features = features.get();
    }
    session_.forward(args);
    for (int32_t s = 0; s < num_seqs; ++s) {
        if (cache_ != nullptr) cache_->advance(sequences[s].cache_seq, seq_start_[s + 1] - seq_start_[s]);
        if (cross_cache_ != nullptr && encodes) {
            cross_cache_->advance(sequences[s].cross_seq, enc_seq_start_[s + 1] - enc_seq_start_[s]);
        }
    }

    output_.resize(static_cast<size_t>(rows_ * info.output_size));
    if (rows_ > 0) device.download(out, output_.data());
    pooled_.resize(static_cast<size_t>(pooled_rows * info.hidden_size));
    if (pooled_rows > 0) device.download(pooled, pooled_.data());
    encoder_output_.resize(encodes ? static_cast<size_t>(encoder_tokens) * info.hidden_size : 0);
    if (encodes) device.download(encoder_out, encoder_output_.data());
    return output_;
}

std::span<float> ForwardCall::row(int64_t r) {
    const auto width = static_cast<size_t>(session_.info().output_size);
    return std::span<float>(output_).subspan(static_cast<size_t>(r) * width, width);
}

}  // namespace tfx
