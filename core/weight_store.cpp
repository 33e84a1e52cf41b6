#include "core/weight_store.h"

#include <cctype>

#include <cstring>

#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"

namespace tfx {
namespace fs = std::filesystem;
namespace {

// n values of an f32, bf16 or f16 tensor as f32.
// A host tensor over `data` with `shape` (storage that outlives the view).
tfx_tensor host_view(const void* data, tfx_dtype dtype, const std::vector<int64_t>& shape) {
    tfx_tensor out{};
    out.data = const_cast<void*>(data);
    out.device = {TFX_DEVICE_CPU, 0};
    out.ndim = static_cast<int32_t>(shape.size());
    out.dtype = dtype;
    out.shape = const_cast<int64_t*>(shape.data());
    return out;
}

constexpr tfx_dtype kF32{TFX_DTYPE_FLOAT, 32, 1};

// The dtype of a float GGUF tensor (F32, F16 or BF16).
tfx_dtype float_dtype(gguf::Type type) {
    return type == gguf::Type::F32   ? kF32
           : type == gguf::Type::F16 ? tfx_dtype{TFX_DTYPE_FLOAT, 16, 1}
                                     : tfx_dtype{TFX_DTYPE_BFLOAT, 16, 1};
}

// A block-quantized GGUF tensor's blocks at `bytes` (its rows in Hugging Face order).
WeightStore::Encoded encoded_of(const gguf::Tensor& stored, const uint8_t* bytes) {
    return {gguf::format_name(stored.type), bytes, stored.rows(), stored.ne[0],
            stored.bytes / static_cast<uint64_t>(stored.rows())};
}

}  // namespace

WeightStore::WeightStore(const fs::path& model_dir) : checkpoint_(safetensors::Checkpoint::open(model_dir)) {
    const auto& files = checkpoint_->files();
    source_ = (model_dir / (files.size() == 1 ? files[0]->path().filename() : fs::path("model.safetensors.index.json")))
                  .string();
}

WeightStore::WeightStore(std::shared_ptr<const gguf::File> file, gguf::HfView view)
    : gguf_(std::move(file)), gguf_view_(std::move(view)), source_(gguf_->path().string()) {}

const gguf::HfTensor* WeightStore::find_gguf(const char* name) const {
    if (!gguf_ || name == nullptr) return nullptr;
    auto it = gguf_view_.tensors.find(name);
    if (it == gguf_view_.tensors.end()) return nullptr;
    asked_.emplace(name);
    return &it->second;
}

std::set<std::string> WeightStore::stored_formats() const {
    std::set<std::string> out;
    if (!gguf_) return out;
    for (const auto& [name, t] : gguf_view_.tensors) {
        if (!gguf::is_float(t.tensor->type)) out.insert(gguf::format_name(t.tensor->type));
    }
    return out;
}

const WeightStore::Encoded* WeightStore::encoded_behind(const void* data) const {
    auto it = encoded_.find(data);
    return it == encoded_.end() ? nullptr : &it->second;
}

tfx_tensor WeightStore::get_gguf(const char* name) {
    const gguf::HfTensor* t = find_gguf(name);
    if (t == nullptr) throw sdk::Error(TFX_ERR_NOT_FOUND, source_ + ": tensor '" + std::string(name) + "' not found");
    const gguf::Tensor& stored = *t->tensor;
    const bool is_float = gguf::is_float(stored.type);
    if (is_float && t->permuted_heads == 0) {
        auto& shape = shapes_[name];
        shape = t->shape;
        return host_view(gguf_->data(stored), float_dtype(stored.type), shape);
    }
    auto it = materialized_.find(name);
    if (it == materialized_.end()) {
        const uint8_t* bytes = gguf_rows_in_order(*t, reordered_encoded_[name]);
        Materialized m{{}, is_float ? float_dtype(stored.type) : kF32, t->shape};
        if (is_float) {
            m.bytes.assign(bytes, bytes + stored.bytes);
        } else {
            decode_gguf(*t, bytes, m.bytes);
            encoded_[m.bytes.data()] = encoded_of(stored, bytes);
        }
        if (bytes != reordered_encoded_[name].data()) reordered_encoded_.erase(name);
        it = materialized_.emplace(name, std::move(m)).first;
    }
    return host_view(it->second.bytes.data(), it->second.dtype, it->second.shape);
}

const uint8_t* WeightStore::gguf_rows_in_order(const gguf::HfTensor& t, std::vector<uint8_t>& scratch) const {
    const gguf::Tensor& stored = *t.tensor;
    const uint8_t* bytes = gguf_->data(stored);
    if (t.permuted_heads == 0) return bytes;
    // Whole rows of bytes at a time: a row of blocks is a row of values.
    const int64_t rows = t.shape[0];
    const uint64_t row_bytes = stored.bytes / static_cast<uint64_t>(rows);
    scratch.resize(stored.bytes);
    for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(scratch.data() + r * row_bytes, bytes + gguf::stored_row(r, rows, t.permuted_heads) * row_bytes,
                    row_bytes);
    }
    return scratch.data();
}

void WeightStore::decode_gguf(const gguf::HfTensor& t, const uint8_t* bytes, std::vector<uint8_t>& out) const {
    const gguf::Tensor& stored = *t.tensor;
    const std::string format = gguf::format_name(stored.type);
    if (!dequantize_) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, source_ + ": tensor '" + stored.name + "' is " + format +
                                                  ", and no quantizer plugin decodes it");
    }
    const int64_t cols = stored.ne[0], rows = stored.rows();
    out.resize(static_cast<size_t>(cols * rows) * sizeof(float));
    dequantize_(format, bytes, rows, cols, reinterpret_cast<float*>(out.data()));
}

WeightStore::Lease WeightStore::lease(const char* name) {
    Lease lease(*this, name != nullptr ? name : "");
    if (const gguf::HfTensor* t = find_gguf(name)) {
        lease.gguf_ = t;
        lease.shape_ = t->shape;
        if (!gguf::is_float(t->tensor->type) && !materialized_.contains(lease.name_)) {
            lease.encoded_ = encoded_of(*t->tensor, gguf_rows_in_order(*t, lease.rows_in_order_));
            lease.stored_bytes_ = t->tensor->bytes;
        }
        return lease;
    }
    if (gguf_) throw sdk::Error(TFX_ERR_NOT_FOUND, source_ + ": tensor '" + lease.name_ + "' not found");
    if (const auto fp8 = find_fp8(name); fp8 && !f32_copies_.contains(lease.name_)) {
        lease.fp8_ = true;
        lease.shape_ = fp8->first.info->shape;
        for (const auto* part : {&fp8->first, &fp8->second}) lease.stored_bytes_ += part->info->end - part->info->begin;
        return lease;
    }
    if (!f32_copies_.contains(lease.name_) && !find(name)) {
        if (const auto packed = find_packed(name)) {
            lease.gptq_awq_ = true;
            for (const auto* part : {&packed->qweight, &packed->qzeros, &packed->scales}) {
                lease.stored_bytes_ += part->info->end - part->info->begin;
            }
            if (packed->g_idx) lease.stored_bytes_ += packed->g_idx->info->end - packed->g_idx->info->begin;
            const quantized_checkpoint::Unpacked unpacked = unpack_gptq_awq(name);
            lease.shape_ = {unpacked.out, unpacked.in};
            // As ggml blocks the backend may compute on; else decoded to f32 for the pack.
            if (auto blocks = quantized_checkpoint::as_blocks(*quantization_, unpacked)) {
                lease.blocks_ = std::move(blocks->bytes);
                lease.encoded_ =
                    Encoded{blocks->format, lease.blocks_.data(), unpacked.out, unpacked.in, blocks->row_bytes};
            } else {
                lease.dequantized_ = quantized_checkpoint::dequantize(unpacked);
            }
            return lease;
        }
    }
    const tfx_tensor t = merged_name(name) != nullptr ? merged_view(name) : get(name);
    lease.shape_.assign(t.shape, t.shape + t.ndim);
    return lease;
}

tfx_tensor WeightStore::Lease::values() {
    WeightStore& store = *store_;
    if (gguf_ != nullptr && encoded_) {
        if (decoded_.empty()) store.decode_gguf(*gguf_, encoded_->bytes, decoded_);
        return host_view(decoded_.data(), kF32, shape_);
    }
    if (gguf_ != nullptr && gguf_->permuted_heads > 0 && !store.materialized_.contains(name_)) {
        return host_view(store.gguf_rows_in_order(*gguf_, rows_in_order_), float_dtype(gguf_->tensor->type), shape_);
    }
    if (fp8_) {
        if (dequantized_.empty()) dequantized_ = store.decode_fp8(name_.c_str());
        return host_view(dequantized_.data(), kF32, shape_);
    }
    if (gptq_awq_) {
        // Decoded for this pack only.
        if (dequantized_.empty()) dequantized_ = quantized_checkpoint::dequantize(store.unpack_gptq_awq(name_.c_str()));
        return host_view(dequantized_.data(), kF32, shape_);
    }
    // A merged weight is read for this pack only (release_packed_merges frees it after load).
    if (store.merged_name(name_.c_str()) != nullptr) return store.merged_view(name_.c_str());
    return store.get(name_.c_str());
}

const char* WeightStore::storage_of(const char* name) const {
    if (name == nullptr) return nullptr;
    std::string storage;
    if (const gguf::HfTensor* t = find_gguf(name)) {
        storage = gguf::format_name(t->tensor->type);
    } else if (find_fp8(name)) {
        storage = "fp8";
    } else if (const auto e = find(name)) {
        storage = safetensors::dtype_name(e->info->dtype);
        for (char& c : storage) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    } else if (find_packed(name)) {
        storage = quantization_->kind == quantized_checkpoint::Method::Kind::gptq ? "gptq" : "awq";
    } else {
        return nullptr;
    }
    return storage_names_.insert(storage).first->c_str();
}

std::string WeightStore::Lease::stored_format() const {
    if (fp8_) return "fp8";
    if (gptq_awq_) return store_->quantization_->kind == quantized_checkpoint::Method::Kind::gptq ? "gptq" : "awq";
    return encoded_ ? encoded_->format : "";
}

std::optional<std::pair<safetensors::Checkpoint::Entry, safetensors::Checkpoint::Entry>> WeightStore::find_fp8(
    const char* name) const {
    if (!quantization_ || quantization_->kind != quantized_checkpoint::Method::Kind::fp8) return std::nullopt;
    const auto weight = find(name);
    if (!weight || weight->info->dtype != safetensors::DType::F8_E4M3) return std::nullopt;
    const std::string scale_name = std::string(name) + "_scale_inv";
    const auto scale = find(scale_name.c_str());
    if (!scale) {
        throw sdk::Error(TFX_ERR_NOT_FOUND,
                         source_ + ": '" + name + "' is F8_E4M3 but '" + scale_name + "' is not there");
    }
    return std::pair{*weight, *scale};
}

std::vector<float> WeightStore::decode_fp8(const char* name) const {
    const auto fp8 = find_fp8(name);
    try {
        return quantized_checkpoint::dequantize_fp8(*quantization_, fp8->first, fp8->second, name);
    } catch (const sdk::Error& e) {
        throw sdk::Error(e.code(), source_ + ": " + e.what());
    }
}

quantized_checkpoint::Unpacked WeightStore::unpack_gptq_awq(const char* name) const {
    try {
        return quantized_checkpoint::unpack(*quantization_, *find_packed(name),
                                            std::string(name).substr(0, std::strlen(name) - 7));
    } catch (const sdk::Error& e) {
        throw sdk::Error(e.code(), source_ + ": " + e.what());
    }
}

std::optional<quantized_checkpoint::Packed> WeightStore::find_packed(const char* name) const {
    if (!quantization_ || !checkpoint_ || name == nullptr) return std::nullopt;
    const std::string_view full = name;
    if (!full.ends_with(".weight") || checkpoint_->find(full)) return std::nullopt;
    const std::string base(full.substr(0, full.size() - 7));
    const auto qweight = checkpoint_->find(base + ".qweight");
    if (!qweight) return std::nullopt;
    auto part = [&](const char* suffix) {
        auto e = checkpoint_->find(base + suffix);
        if (!e) {
            throw sdk::Error(TFX_ERR_NOT_FOUND,
                             source_ + ": '" + base + ".qweight' is there but '" + base + suffix + "' is not");
        }
        asked_.emplace(base + suffix);
        return *e;
    };
    asked_.emplace(name);
    asked_.emplace(base + ".qweight");
    quantized_checkpoint::Packed packed{*qweight, part(".qzeros"), part(".scales"), std::nullopt};
    if (auto g = checkpoint_->find(base + ".g_idx")) {
        asked_.emplace(base + ".g_idx");
        if (quantization_->kind == quantized_checkpoint::Method::Kind::gptq) packed.g_idx = *g;
    }
    return packed;
}

std::optional<safetensors::Checkpoint::Entry> WeightStore::find(const char* name) const {
    if (!checkpoint_ || name == nullptr) return std::nullopt;
    auto entry = checkpoint_->find(name);
    asked_.emplace(name);
    if (entry) asked_.emplace(entry->info->name);  // an alias (tied weights) uses the tensor it names
    return entry;
}

void WeightStore::drop_resident_pages() const {
    if (gguf_) gguf_->drop_resident_pages();
    if (checkpoint_) {
        for (const auto& file : checkpoint_->files()) file->drop_resident_pages();
    }
}

std::vector<std::string> WeightStore::copies() const {
    std::set<std::string> names;
    for (const auto& [name, m] : materialized_) names.insert(name);
    for (const auto& [name, c] : f32_copies_) names.insert(name);
    return {names.begin(), names.end()};
}

std::vector<std::string> WeightStore::unused() const {
    std::vector<std::string> out;
    if (gguf_) {
        for (const auto& [name, t] : gguf_view_.tensors) {
            if (!asked_.contains(name)) out.push_back(name);
        }
        return out;
    }
    if (!checkpoint_) return out;
    for (std::string& name : checkpoint_->names()) {
        if (!asked_.contains(name)) out.push_back(std::move(name));
    }
    return out;
}

WeightStore::Usage WeightStore::usage() const {
    Usage usage;
    if (gguf_) {
        for (const auto& [name, t] : gguf_view_.tensors) {
            if (!asked_.contains(name)) continue;
            usage.bytes += t.tensor->bytes;
            usage.elements += static_cast<uint64_t>(t.tensor->ne[0] * t.tensor->rows());
        }
        return usage;
    }
    if (!checkpoint_) return usage;
    for (const std::string& name : checkpoint_->names()) {
        if (!asked_.contains(name)) continue;
        const auto entry = checkpoint_->find(name.c_str());
        if (!entry) continue;
        usage.bytes += entry->info->end - entry->info->begin;
        uint64_t elements = 1;
        for (int64_t dim : entry->info->shape) elements *= static_cast<uint64_t>(dim);
        // A packed word holds 32 / bits weights; zeros, scales and g_idx are not parameters.
        if (quantization_ && name.ends_with(".qweight")) elements *= static_cast<uint64_t>(32 / quantization_->bits);
        if (quantization_ && (name.ends_with(".qzeros") || name.ends_with(".scales") || name.ends_with(".g_idx") ||
                              name.ends_with("_scale_inv"))) {
            elements = 0;
        }
        usage.elements += elements;
    }
    return usage;
}

const std::string* WeightStore::merged_name(const char* name) const {
    if (merged_.empty() || name == nullptr) return nullptr;
    const auto entry = checkpoint_->find(name);  // an alias (a tied tensor) names the stored one
    if (!entry) return nullptr;
    const auto it = merged_.find(entry->info->name);
    return it == merged_.end() ? nullptr : &it->first;
}

tfx_tensor WeightStore::merged_view(const char* name) {
    find(name);  // counted as used
    const Materialized& m = merged_.find(*merged_name(name))->second;
    return host_view(m.bytes.data(), m.dtype, m.shape);
}

void WeightStore::release_packed_merges() {
    std::erase_if(merged_, [&](const auto& entry) { return !viewed_merges_.contains(entry.first); });
}

std::optional<std::vector<int64_t>> WeightStore::stored_shape(const std::string& name) const {
    if (gguf_) {
        const auto it = gguf_view_.tensors.find(name);
        if (it == gguf_view_.tensors.end()) return std::nullopt;
        return it->second.shape;
    }
    if (!checkpoint_) return std::nullopt;
    const auto entry = checkpoint_->find(name);
    if (entry) return entry->info->shape;
    // A GPTQ / AWQ linear "X.weight" stored as X.qweight, X.scales, ...: its [out, in].
    if (quantization_ && find_packed(name.c_str())) {
        const quantized_checkpoint::Unpacked unpacked = unpack_gptq_awq(name.c_str());
        return std::vector<int64_t>{unpacked.out, unpacked.in};
    }
    return std::nullopt;
}

void WeightStore::merge_lora(std::span<const lora::Adapter> adapters) {
    if (gguf_ || quantization_ || !checkpoint_) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, source_ +
                                                  ": LoRA adapters apply to unquantized safetensors checkpoints "
                                                  "(f32, bf16 or f16 weights), not to a GGUF or quantized one");
    }
    // By the stored tensor: tied weights are one tensor, and merging into it changes both names,
    // as merging into PEFT's shared parameter does.
    std::map<std::string, std::vector<float>> values;  // accumulated in f32, narrowed once
    for (const lora::Adapter& adapter : adapters) {
        for (const lora::Replacement& r : adapter.replaced) {
            values.insert_or_assign(require(r.weight.c_str()).info->name, r.values);
        }
        for (const lora::Module& m : adapter.modules) {
            const auto entry = require(m.weight.c_str());
            auto it = values.find(entry.info->name);
            if (it == values.end()) {
                const size_t n = static_cast<size_t>(m.in * m.out);
                it = values
                         .emplace(entry.info->name, safetensors::widened(entry.file->data(*entry.info),
                                                                         entry.info->dtype, n, m.weight.c_str()))
                         .first;
            }
            lora::merge_into(m, adapter.scaling, it->second);
        }
    }
    for (auto& [name, merged] : values) {
        const auto entry = require(name.c_str());
        Materialized m{{}, safetensors::to_abi(entry.info->dtype), entry.info->shape};
        m.bytes = safetensors::narrowed(merged, entry.info->dtype);
        merged_.insert_or_assign(name, std::move(m));
    }
}

safetensors::Checkpoint::Entry WeightStore::require(const char* name) const {
    auto entry = find(name);
    if (!entry) {
        throw sdk::Error(TFX_ERR_NOT_FOUND, source_ + ": tensor '" + std::string(name ? name : "") + "' not found");
    }
    return *entry;
}

tfx_tensor WeightStore::get(const char* name) {
    if (gguf_) return get_gguf(name);
    if (const std::string* merged = merged_name(name)) {
        viewed_merges_.insert(*merged);  // the model may keep this view: it stays
        return merged_view(name);
    }
    // A GPTQ / AWQ / fp8 linear, decoded to f32.
    if (quantization_ && (!find(name) || find_fp8(name))) return get_f32(name);
    const auto entry = require(name);
    auto& shape = shapes_[name];
    shape = entry.info->shape;
    return host_view(entry.file->data(*entry.info), safetensors::to_abi(entry.info->dtype), shape);
}

WeightStore::F32Copy WeightStore::widened_copy(const tfx_tensor& t, const char* name) {
    F32Copy copy{{}, std::vector<int64_t>(t.shape, t.shape + t.ndim)};
    size_t n = 1;
    for (int64_t d : copy.shape) n *= static_cast<size_t>(d);
    const auto dtype = t.dtype.bits == 32                 ? safetensors::DType::F32
                       : t.dtype.code == TFX_DTYPE_BFLOAT ? safetensors::DType::BF16
                                                          : safetensors::DType::F16;
    copy.data = safetensors::widened(static_cast<const uint8_t*>(t.data), dtype, n, name);
    return copy;
}

tfx_tensor WeightStore::get_f32(const char* name) {
    auto it = f32_copies_.find(name != nullptr ? name : "");
    if (it == f32_copies_.end() && gguf_) {
        const tfx_tensor t = get_gguf(name);
        if (t.dtype.code == TFX_DTYPE_FLOAT && t.dtype.bits == 32) return t;
        it = f32_copies_.emplace(name, widened_copy(t, name)).first;
    }
    if (it == f32_copies_.end() && find_fp8(name)) {
        F32Copy copy{decode_fp8(name), find(name)->info->shape};
        it = f32_copies_.emplace(name, std::move(copy)).first;
    }
    if (it == f32_copies_.end() && find_packed(name)) {
        const quantized_checkpoint::Unpacked unpacked = unpack_gptq_awq(name);
        F32Copy copy{quantized_checkpoint::dequantize(unpacked), {unpacked.out, unpacked.in}};
        it = f32_copies_.emplace(name, std::move(copy)).first;
    }
    if (it == f32_copies_.end() && merged_name(name) != nullptr) {
        it = f32_copies_.emplace(name, widened_copy(merged_view(name), name)).first;
    }
    if (it == f32_copies_.end()) {
        const auto entry = require(name);
        const auto dtype = entry.info->dtype;
        F32Copy copy{{}, entry.info->shape};
        const auto n = (entry.info->end - entry.info->begin) / safetensors::dtype_size(dtype);
        copy.data = safetensors::widened(entry.file->data(*entry.info), dtype, n, name);
        it = f32_copies_.emplace(name, std::move(copy)).first;
    }
    return host_view(it->second.data.data(), kF32, it->second.shape);
}

}  // namespace tfx
