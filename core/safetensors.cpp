#include "core/safetensors.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tfx/sdk/config.hpp"
#include "tfx/sdk/error.hpp"
#include "tfx/sdk/half.hpp"

namespace tfx::safetensors {
namespace {

struct DTypeRow {
    DType dtype;
    std::string_view name;
    std::size_t size;
    tfx_dtype abi;
};

constexpr std::array<DTypeRow, 15> kDTypes{{
    {DType::F64, "F64", 8, {TFX_DTYPE_FLOAT, 64, 1}},
    {DType::F32, "F32", 4, {TFX_DTYPE_FLOAT, 32, 1}},
    {DType::F16, "F16", 2, {TFX_DTYPE_FLOAT, 16, 1}},
    {DType::BF16, "BF16", 2, {TFX_DTYPE_BFLOAT, 16, 1}},
    {DType::I64, "I64", 8, {TFX_DTYPE_INT, 64, 1}},
    {DType::I32, "I32", 4, {TFX_DTYPE_INT, 32, 1}},
    {DType::I16, "I16", 2, {TFX_DTYPE_INT, 16, 1}},
    {DType::I8, "I8", 1, {TFX_DTYPE_INT, 8, 1}},
    {DType::U64, "U64", 8, {TFX_DTYPE_UINT, 64, 1}},
    {DType::U32, "U32", 4, {TFX_DTYPE_UINT, 32, 1}},
    {DType::U16, "U16", 2, {TFX_DTYPE_UINT, 16, 1}},
    {DType::U8, "U8", 1, {TFX_DTYPE_UINT, 8, 1}},
    {DType::BOOL, "BOOL", 1, {TFX_DTYPE_BOOL, 8, 1}},
    {DType::F8_E4M3, "F8_E4M3", 1, {TFX_DTYPE_FLOAT8_E4M3FN, 8, 1}},
    {DType::F8_E5M2, "F8_E5M2", 1, {TFX_DTYPE_FLOAT8_E5M2, 8, 1}},
}};

const DTypeRow& row(DType dtype) {
    return kDTypes[static_cast<std::size_t>(dtype)];
}

[[noreturn]] void fail(std::string_view file, const std::string& what) {
    throw sdk::Error(TFX_ERR_FORMAT, std::string(file) + ": " + what);
}

std::string known_dtypes() {
    std::string s;
    for (const auto& r : kDTypes) s += (s.empty() ? "" : ", ") + std::string(r.name);
    return s;
}

TensorInfo parse_tensor(const std::string& name, const nlohmann::json& entry, uint64_t data_size,
                        std::string_view file) {
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) fail(file, where + ": expected an object");
    auto dtype_it = entry.find("dtype");
    auto shape_it = entry.find("shape");
    auto offsets_it = entry.find("data_offsets");
    if (dtype_it == entry.end() || !dtype_it->is_string()) fail(file, where + ": missing string 'dtype'");
    if (shape_it == entry.end() || !shape_it->is_array()) fail(file, where + ": missing array 'shape'");
    if (offsets_it == entry.end() || !offsets_it->is_array() || offsets_it->size() != 2) {
        fail(file, where + ": 'data_offsets' must be [begin, end]");
    }
    auto dtype = parse_dtype(dtype_it->get<std::string>());
    if (!dtype) {
        fail(file,
             where + ": unknown dtype '" + dtype_it->get<std::string>() + "' (expected one of " + known_dtypes() + ")");
    }
    TensorInfo info{name, *dtype, {}, 0, 0};
    uint64_t bytes = dtype_size(*dtype);
    for (const auto& d : *shape_it) {
        if (!d.is_number_unsigned()) fail(file, where + ": shape entries must be non-negative integers");
        uint64_t extent = d.get<uint64_t>();
        if (extent > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(bytes, extent, &bytes)) {
            fail(file, where + ": shape is too large");
        }
        info.shape.push_back(static_cast<int64_t>(extent));
    }
    for (const auto& o : *offsets_it) {
        if (!o.is_number_unsigned()) fail(file, where + ": data_offsets must be non-negative integers");
    }
    info.begin = (*offsets_it)[0].get<uint64_t>();
    info.end = (*offsets_it)[1].get<uint64_t>();
    if (info.begin > info.end || info.end > data_size) {
        fail(file, where + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                       "] lie outside the data section of " + std::to_string(data_size) + " bytes");
    }
    if (info.end - info.begin != bytes) {
        fail(file, where + ": shape and dtype " + std::string(dtype_name(*dtype)) + " need " + std::to_string(bytes) +
                       " bytes but data_offsets span " + std::to_string(info.end - info.begin));
    }
    return info;
}

}  // namespace

std::optional<DType> parse_dtype(std::string_view name) {
    for (const auto& r : kDTypes) {
        if (r.name == name) return r.dtype;
    }
    return std::nullopt;
}
std::string_view dtype_name(DType dtype) {
    return row(dtype).name;
}
std::size_t dtype_size(DType dtype) {
    return row(dtype).size;
}
tfx_dtype to_abi(DType dtype) {
    return row(dtype).abi;
}

Header parse_header(std::span<const uint8_t> file, std::string_view file_name) {
    if (file.size() < 8)
        fail(file_name, "too short for a safetensors file (" + std::to_string(file.size()) + " bytes)");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | file[static_cast<std::size_t>(i)];
    if (header_len > kMaxHeaderBytes) {
        fail(file_name, "header length " + std::to_string(header_len) + " exceeds the limit of " +
                            std::to_string(kMaxHeaderBytes) + " bytes");
    }
    if (header_len > file.size() - 8) {
        fail(file_name,
             "header length " + std::to_string(header_len) + " exceeds the file size " + std::to_string(file.size()));
    }
    std::string_view text(reinterpret_cast<const char*>(file.data() + 8), header_len);
    if (text.empty() || text.front() != '{') fail(file_name, "header is not a JSON object");
    nlohmann::json json = nlohmann::json::parse(text, nullptr, false);
    if (json.is_discarded() || !json.is_object()) fail(file_name, "header is not valid JSON");

    Header header;
    header.data_offset = 8 + header_len;
    const uint64_t data_size = file.size() - header.data_offset;
    for (const auto& [key, value] : json.items()) {
        if (key == "__metadata__") {
            if (!value.is_object()) fail(file_name, "__metadata__ must be an object of strings");
            for (const auto& [mkey, mvalue] : value.items()) {
                if (!mvalue.is_string()) fail(file_name, "__metadata__ '" + mkey + "' is not a string");
                header.metadata[mkey] = mvalue.get<std::string>();
            }
            continue;
        }
        header.tensors.push_back(parse_tensor(key, value, data_size, file_name));
    }
    std::vector<const TensorInfo*> by_offset;
    for (const auto& t : header.tensors) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
    for (std::size_t i = 1; i < by_offset.size(); ++i) {
        if (by_offset[i]->begin < by_offset[i - 1]->end) {
            fail(file_name, "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
        }
    }
    return header;
}

File::File(const std::filesystem::path& path) : map_(path), header_(parse_header(map_.bytes(), path.string())) {
    for (std::size_t i = 0; i < header_.tensors.size(); ++i) index_[header_.tensors[i].name] = i;
}

const TensorInfo* File::find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

Checkpoint Checkpoint::open(const std::filesystem::path& dir) {
    namespace fs = std::filesystem;
    Checkpoint ckpt;
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    if (fs::exists(single)) {
        ckpt.files_.push_back(std::make_unique<File>(single));
    } else if (fs::exists(index)) {
        std::ifstream in(index, std::ios::binary);
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        auto config = sdk::Config::parse(text, index.string());
        auto weight_map = config.json().find("weight_map");
        if (weight_map == config.json().end() || !weight_map->is_object()) {
            config.fail("weight_map", "expected an object of tensor name -> shard file");
        }
        std::map<std::string, std::size_t> shard_of_file;
        for (const auto& [name, shard] : weight_map->items()) {
            if (!shard.is_string()) config.fail("weight_map", "'" + name + "' must name a file");
            const std::string file = shard.get<std::string>();
            if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..") {
                config.fail("weight_map",
                            "'" + name + "': shard '" + file + "' must be a file name in the model folder");
            }
            if (!shard_of_file.contains(file)) {
                shard_of_file[file] = ckpt.files_.size();
                ckpt.files_.push_back(std::make_unique<File>(dir / file));
            }
            const File* f = ckpt.files_[shard_of_file[file]].get();
            if (f->find(name) == nullptr) {
                config.fail("weight_map", "tensor '" + name + "' is not in shard " + file);
            }
        }
    } else if (fs::exists(dir / "pytorch_model.bin") || fs::exists(dir / "pytorch_model.bin.index.json")) {
        throw sdk::Error(TFX_ERR_UNSUPPORTED, (dir / "pytorch_model.bin").string() +
                                                  ": a pickle checkpoint; tfx never executes pickle. Convert it once "
                                                  "with Python: AutoModel.from_pretrained(DIR).save_pretrained(DIR, "
                                                  "safe_serialization=True), then load the model.safetensors");
    } else {
        throw sdk::Error(TFX_ERR_NOT_FOUND, dir.string() + ": no model.safetensors or model.safetensors.index.json");
    }

    for (const auto& file : ckpt.files_) {
        for (const auto& info : file->header().tensors) {
            if (!ckpt.tensors_.emplace(info.name, Entry{file.get(), &info}).second) {
                throw sdk::Error(TFX_ERR_FORMAT,
                                 file->path().string() + ": tensor '" + info.name + "' also appears in another shard");
            }
        }
        for (const auto& [k, v] : file->header().metadata) ckpt.metadata_[k] = v;
    }
    for (const auto& [removed, kept] : ckpt.metadata_) {
        if (!ckpt.tensors_.contains(removed) && ckpt.tensors_.contains(kept)) ckpt.aliases_[removed] = kept;
    }
    return ckpt;
}

std::optional<Checkpoint::Entry> Checkpoint::find(std::string_view name) const {
    if (auto it = tensors_.find(name); it != tensors_.end()) return it->second;
    if (auto alias = aliases_.find(name); alias != aliases_.end()) return tensors_.find(alias->second)->second;
    return std::nullopt;
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> out;
    for (const auto& [name, entry] : tensors_) out.push_back(name);
    return out;
}

void write(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
           const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        uint64_t expected = dtype_size(t.dtype);
        for (int64_t d : t.shape) expected *= static_cast<uint64_t>(d);
        if (expected != t.bytes.size()) {
            throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "safetensors write: tensor '" + t.name + "' has " +
                                                           std::to_string(t.bytes.size()) + " bytes, shape needs " +
                                                           std::to_string(expected));
        }
        header[t.name] = {
            {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + expected}}};
        offset += expected;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    const std::filesystem::path tmp = path.string() + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out) throw sdk::Error(TFX_ERR_IO, tmp.string() + ": cannot create");
        uint64_t len = text.size();
        unsigned char len_bytes[8];
        for (int i = 0; i < 8; ++i) len_bytes[i] = static_cast<unsigned char>(len >> (8 * i));
        out.write(reinterpret_cast<const char*>(len_bytes), 8);
        out.write(text.data(), static_cast<std::streamsize>(text.size()));
        for (const auto& t : tensors) {
            out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
        }
        if (!out.flush()) {
            std::filesystem::remove(tmp);
            throw sdk::Error(TFX_ERR_IO, path.string() + ": write failed");
        }
    }
    std::filesystem::rename(tmp, path);
}

std::vector<float> widened(const uint8_t* src, DType dtype, size_t n, const char* name) {
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) {
        uint16_t half;
        switch (dtype) {
            case DType::F32:
                std::memcpy(&out[i], src + 4 * i, 4);
                break;
            case DType::BF16:
                std::memcpy(&half, src + 2 * i, 2);
                out[i] = sdk::bf16_to_f32(half);
                break;
            case DType::F16:
                std::memcpy(&half, src + 2 * i, 2);
                out[i] = sdk::f16_to_f32(half);
                break;
            default:
                throw sdk::Error(TFX_ERR_UNSUPPORTED, "tensor '" + std::string(name) + "': dtype " +
                                                          std::string(dtype_name(dtype)) + " cannot be read as f32");
        }
    }
    return out;
}

std::vector<uint8_t> narrowed(std::span<const float> values, DType dtype) {
    std::vector<uint8_t> out(values.size() * dtype_size(dtype));
    switch (dtype) {
        case DType::F32:
            std::memcpy(out.data(), values.data(), out.size());
            break;
        case DType::BF16:
        case DType::F16:
            for (size_t i = 0; i < values.size(); ++i) {
                const uint16_t half = dtype == DType::BF16 ? sdk::f32_to_bf16(values[i]) : sdk::f32_to_f16(values[i]);
                std::memcpy(out.data() + 2 * i, &half, 2);
            }
            break;
        default:
            throw sdk::Error(TFX_ERR_UNSUPPORTED, "f32 values cannot be stored as " + std::string(dtype_name(dtype)));
    }
    return out;
}

}  // namespace tfx::safetensors
