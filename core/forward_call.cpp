#include "core/forward_call.h"

#include <algorithm>

#include "tfx/sdk/error.hpp"

namespace tfx {

ForwardCall::ForwardCall(ModelSession& session, PagedKvCache* cache) : session_(session), cache_(cache) {
    if (cache != nullptr && session.info().num_layers == 0) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, session.architecture() + " keeps no KV cache");
    }
}

void ForwardCall::add_sequence(const SequenceInput& in, int32_t index) {
    const tfx_model_info& info = session_.info();
    const auto n = static_cast<int64_t>(in.ids.size());
    const std::string which = "sequence " + std::to_string(index);
    if (n == 0) throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "forward: " + which + " has no tokens");
    if ((!in.positions.empty() && static_cast<int64_t>(in.positions.size()) != n) ||
        (!in.token_type_ids.empty() && static_cast<int64_t>(in.token_type_ids.size()) != n)) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "forward: " + which + ": positions and token types must have one entry per token");
    }
    for (int32_t id : in.ids) {
        if (id < 0 || id >= info.vocab_size) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "input id " + std::to_string(id) +
                                                           " is outside the vocabulary (size " +
                                                           std::to_string(info.vocab_size) + ")");
        }
    }
    if ((in.cache_seq >= 0) != (cache_ != nullptr)) {
        throw sdk::Error(
            TFX_ERR_INVALID_ARGUMENT,
            "forward: " + which +
                (cache_ != nullptr ? " names no cache sequence" : " names a cache sequence but the call has no cache"));
    }
    const int64_t context = cache_ != nullptr ? cache_->length(in.cache_seq) : 0;
    if (info.max_positions > 0 && context + n > info.max_positions) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT,
                         "forward: " + which + " reaches position " + std::to_string(context + n) +
                             ", past the model's max_position_embeddings (" + std::to_string(info.max_positions) + ")");
    }
    const auto first = static_cast<int32_t>(ids_.size());
    ids_.insert(ids_.end(), in.ids.begin(), in.ids.end());
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
    for (auto* v : {&ids_, &positions_, &types_, &context_len_, &slots_, &block_table_, &output_rows_}) v->clear();
    seq_start_.assign(1, 0);
    for (size_t s = 0; s < sequences.size(); ++s) add_sequence(sequences[s], static_cast<int32_t>(s));
    const auto num_seqs = static_cast<int32_t>(sequences.size());
    const auto num_tokens = static_cast<int32_t>(ids_.size());

    // Block tables, one row per sequence, padded with block 0 (never read past a sequence's length).
    int32_t max_blocks = 0, max_context = 0;
    for (int32_t s = 0; s < num_seqs; ++s) {
        max_context = std::max(max_context, context_len_[s] + seq_start_[s + 1] - seq_start_[s]);
        if (cache_ != nullptr) {
            max_blocks = std::max(max_blocks, static_cast<int32_t>(cache_->blocks(sequences[s].cache_seq).size()));
        }
    }
    block_table_.assign(static_cast<size_t>(num_seqs) * max_blocks, 0);
    for (int32_t s = 0; s < num_seqs && cache_ != nullptr; ++s) {
        const auto blocks = cache_->blocks(sequences[s].cache_seq);
        std::copy(blocks.begin(), blocks.end(), block_table_.begin() + static_cast<ptrdiff_t>(s) * max_blocks);
    }
    const bool classifier = info.output_kind == TFX_OUTPUT_CLASS_LOGITS;
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
         {&ids_, &positions_, &types_, &seq_start_, &context_len_, &slots_, &block_table_, &output_rows_}) {
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
    session_.forward(args);
    if (cache_ != nullptr) {
        for (int32_t s = 0; s < num_seqs; ++s) {
            cache_->advance(sequences[s].cache_seq, seq_start_[s + 1] - seq_start_[s]);
        }
    }

    output_.resize(static_cast<size_t>(rows_ * info.output_size));
    if (rows_ > 0) device.download(out, output_.data());
    pooled_.resize(static_cast<size_t>(pooled_rows * info.hidden_size));
    if (pooled_rows > 0) device.download(pooled, pooled_.data());
    return output_;
}

std::span<float> ForwardCall::row(int64_t r) {
    const auto width = static_cast<size_t>(session_.info().output_size);
    return std::span<float>(output_).subspan(static_cast<size_t>(r) * width, width);
}

}  // namespace tfx
