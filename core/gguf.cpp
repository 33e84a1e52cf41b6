#include "core/gguf.h"

#include <array>
#include <cstring>
#include <fstream>
#include <set>

#include "tfx/sdk/error.hpp"

namespace tfx::gguf {
namespace {

constexpr std::array<uint8_t, 4> kMagic = {'G', 'G', 'U', 'F'};

// Metadata value types as stored.
enum : uint32_t {
    kU8 = 0,
    kI8 = 1,
    kU16 = 2,
    kI16 = 3,
    kU32 = 4,
    kI32 = 5,
    kF32 = 6,
    kBool = 7,
    kString = 8,
    kArray = 9,
    kU64 = 10,
    kI64 = 11,
    kF64 = 12,
};

// Reads little-endian values front to back, never past the end: every read checks first.
class Reader {
  public:
    Reader(std::span<const uint8_t> bytes, std::string_view file) : bytes_(bytes), file_(file) {}

    [[noreturn]] void fail(const std::string& what) const {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, std::string(file_) + ": not a valid GGUF file: " + what);
    }
    uint64_t at() const { return pos_; }
    uint64_t left() const { return bytes_.size() - pos_; }

    template <class T>
    T read(const char* what) {
        if (left() < sizeof(T)) fail(std::string("the file ends inside ") + what);
        T value;
        std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return value;
    }
    std::string string(const char* what) {
        const auto length = read<uint64_t>(what);
        if (length > left()) {
            fail(std::string(what) + " claims " + std::to_string(length) + " bytes, but only " +
                 std::to_string(left()) + " remain");
        }
        std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(length));
        pos_ += length;
        return s;
    }

  private:
    std::span<const uint8_t> bytes_;
    std::string_view file_;
    uint64_t pos_ = 0;
};

// Bytes one value of a fixed-size type takes (0 for strings and arrays).
uint64_t fixed_size(uint32_t type) {
    switch (type) {
        case kU8:
        case kI8:
        case kBool:
            return 1;
        case kU16:
        case kI16:
            return 2;
        case kU32:
        case kI32:
        case kF32:
            return 4;
        case kU64:
        case kI64:
        case kF64:
            return 8;
        default:
            return 0;
    }
}

nlohmann::json value(Reader& r, uint32_t type, const std::string& key, int depth) {
    switch (type) {
        case kU8:
            return r.read<uint8_t>(key.c_str());
        case kI8:
            return r.read<int8_t>(key.c_str());
        case kU16:
            return r.read<uint16_t>(key.c_str());
        case kI16:
            return r.read<int16_t>(key.c_str());
        case kU32:
            return r.read<uint32_t>(key.c_str());
        case kI32:
            return r.read<int32_t>(key.c_str());
        case kF32:
            return r.read<float>(key.c_str());
        case kU64:
            return r.read<uint64_t>(key.c_str());
        case kI64:
            return r.read<int64_t>(key.c_str());
        case kF64:
            return r.read<double>(key.c_str());
        case kBool: {
            const auto b = r.read<uint8_t>(key.c_str());
            if (b > 1) r.fail("metadata '" + key + "': a bool must be 0 or 1, got " + std::to_string(b));
            return b == 1;
        }
        case kString:
            return r.string(("metadata '" + key + "'").c_str());
        case kArray: {
            if (depth > 0) r.fail("metadata '" + key + "': arrays nest at most one level deep");
            const auto element = r.read<uint32_t>(key.c_str());
            const auto count = r.read<uint64_t>(key.c_str());
            // Each element takes at least one byte (strings eight), so a count past what is left
            // is a lie: refuse it before reserving anything.
            const uint64_t least = element == kString ? 8 : element == kArray ? 12 : fixed_size(element);
            if (least == 0) {
                r.fail("metadata '" + key + "': unknown array element type " + std::to_string(element));
            }
            if (count > r.left() / least) {
                r.fail("metadata '" + key + "': an array of " + std::to_string(count) + " values does not fit in the " +
                       std::to_string(r.left()) + " bytes left");
            }
            nlohmann::json out = nlohmann::json::array();
            out.get_ref<nlohmann::json::array_t&>().reserve(static_cast<size_t>(count));
            for (uint64_t i = 0; i < count; ++i) out.push_back(value(r, element, key, depth + 1));
            return out;
        }
        default:
            r.fail("metadata '" + key + "': unknown value type " + std::to_string(type));
    }
}

// a * b, or nullopt when it overflows 63 bits.
std::optional<uint64_t> times(uint64_t a, uint64_t b) {
    if (a != 0 && b > (uint64_t{1} << 62) / a) return std::nullopt;
    return a * b;
}

}  // namespace

std::optional<TypeTraits> traits_of(uint32_t type) {
    switch (static_cast<Type>(type)) {
        case Type::F32:
            return TypeTraits{"F32", 1, 4};
        case Type::F16:
            return TypeTraits{"F16", 1, 2};
        case Type::BF16:
            return TypeTraits{"BF16", 1, 2};
        case Type::Q4_0:
            return TypeTraits{"Q4_0", 32, 18};
        case Type::Q4_1:
            return TypeTraits{"Q4_1", 32, 20};
        case Type::Q5_0:
            return TypeTraits{"Q5_0", 32, 22};
        case Type::Q5_1:
            return TypeTraits{"Q5_1", 32, 24};
        case Type::Q8_0:
            return TypeTraits{"Q8_0", 32, 34};
        case Type::Q8_1:
            return TypeTraits{"Q8_1", 32, 36};
        case Type::Q2_K:
            return TypeTraits{"Q2_K", 256, 84};
        case Type::Q3_K:
            return TypeTraits{"Q3_K", 256, 110};
        case Type::Q4_K:
            return TypeTraits{"Q4_K", 256, 144};
        case Type::Q5_K:
            return TypeTraits{"Q5_K", 256, 176};
        case Type::Q6_K:
            return TypeTraits{"Q6_K", 256, 210};
        case Type::Q8_K:
            return TypeTraits{"Q8_K", 256, 292};
        case Type::I8:
            return TypeTraits{"I8", 1, 1};
        case Type::I16:
            return TypeTraits{"I16", 1, 2};
        case Type::I32:
            return TypeTraits{"I32", 1, 4};
        case Type::I64:
            return TypeTraits{"I64", 1, 8};
        case Type::F64:
            return TypeTraits{"F64", 1, 8};
    }
    return std::nullopt;
}

int64_t Tensor::rows() const {
    int64_t n = 1;
    for (size_t i = 1; i < ne.size(); ++i) n *= ne[i];
    return n;
}

Header parse(std::span<const uint8_t> file, std::string_view file_name) {
    Reader r(file, file_name);
    Header h;
    std::array<uint8_t, 4> magic{};
    for (auto& b : magic) b = r.read<uint8_t>("the magic number");
    if (magic != kMagic) r.fail("it does not start with the magic 'GGUF'");
    h.version = r.read<uint32_t>("the version");
    if (h.version != 2 && h.version != 3) {
        r.fail("version " + std::to_string(h.version) + " is not supported (2 and 3 are)");
    }
    const auto tensor_count = r.read<uint64_t>("the tensor count");
    const auto metadata_count = r.read<uint64_t>("the metadata count");
    if (tensor_count > kMaxTensors) r.fail("the tensor count " + std::to_string(tensor_count) + " is implausible");
    if (metadata_count > kMaxMetadata) {
        r.fail("the metadata count " + std::to_string(metadata_count) + " is implausible");
    }

    for (uint64_t i = 0; i < metadata_count; ++i) {
        std::string key = r.string("a metadata key");
        const auto type = r.read<uint32_t>(("the type of metadata '" + key + "'").c_str());
        nlohmann::json v = value(r, type, key, 0);
        if (!h.metadata.emplace(key, std::move(v)).second) r.fail("metadata key '" + key + "' appears twice");
    }
    if (auto it = h.metadata.find("general.alignment"); it != h.metadata.end()) {
        if (!it->second.is_number_unsigned() || it->second.get<uint64_t>() == 0 ||
            (it->second.get<uint64_t>() & (it->second.get<uint64_t>() - 1)) != 0 ||
            it->second.get<uint64_t>() > 1024 * 1024) {
            r.fail("general.alignment must be a power of two up to 1 MiB, got " + it->second.dump());
        }
        h.alignment = it->second.get<uint64_t>();
    }

    std::set<std::string, std::less<>> names;
    h.tensors.reserve(static_cast<size_t>(std::min<uint64_t>(tensor_count, r.left() / 24)));
    for (uint64_t i = 0; i < tensor_count; ++i) {
        Tensor t;
        t.name = r.string("a tensor name");
        const std::string what = "tensor '" + t.name + "'";
        if (!names.insert(t.name).second) r.fail(what + " appears twice");
        const auto dims = r.read<uint32_t>(what.c_str());
        if (dims == 0 || dims > kMaxDims) {
            r.fail(what + " has " + std::to_string(dims) + " dimensions (1 to " + std::to_string(kMaxDims) + ")");
        }
        uint64_t elements = 1;
        for (uint32_t d = 0; d < dims; ++d) {
            const auto n = r.read<uint64_t>(what.c_str());
            const auto product = times(elements, n);
            if (n == 0 || !product) r.fail(what + " has dimension " + std::to_string(n) + " (or too many elements)");
            elements = *product;
            t.ne.push_back(static_cast<int64_t>(n));
        }
        const auto type = r.read<uint32_t>(what.c_str());
        const auto traits = traits_of(type);
        if (!traits) r.fail(what + " has unknown ggml type " + std::to_string(type));
        t.type = static_cast<Type>(type);
        if (t.ne[0] % traits->block != 0) {
            r.fail(what + " (" + std::string(traits->name) + ") has rows of " + std::to_string(t.ne[0]) +
                   " values, not a whole number of " + std::to_string(traits->block) + "-value blocks");
        }
        const auto bytes =
            times(elements / static_cast<uint64_t>(traits->block), static_cast<uint64_t>(traits->block_bytes));
        if (!bytes) r.fail(what + " is too large");
        t.bytes = *bytes;
        t.offset = r.read<uint64_t>(what.c_str());
        if (t.offset % h.alignment != 0) {
            r.fail(what + " starts at offset " + std::to_string(t.offset) + ", not a multiple of the alignment " +
                   std::to_string(h.alignment));
        }
        h.tensors.push_back(std::move(t));
    }

    h.data_offset = (r.at() + h.alignment - 1) / h.alignment * h.alignment;
    if (h.data_offset > file.size() && !h.tensors.empty()) r.fail("the data section starts past the end of the file");
    const uint64_t data_bytes = file.size() - std::min<uint64_t>(h.data_offset, file.size());
    for (const Tensor& t : h.tensors) {
        if (t.offset > data_bytes || t.bytes > data_bytes - t.offset) {
            r.fail("tensor '" + t.name + "' (" + std::to_string(t.bytes) + " bytes at offset " +
                   std::to_string(t.offset) + ") runs past the end of the file's " + std::to_string(data_bytes) +
                   " data bytes");
        }
    }
    return h;
}

File::File(const std::filesystem::path& path) : map_(path), header_(parse(map_.bytes(), path.string())) {
    for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

const Tensor* File::find(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

const nlohmann::json* File::meta(std::string_view key) const {
    auto it = header_.metadata.find(key);
    return it == header_.metadata.end() ? nullptr : &it->second;
}

bool is_gguf(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::array<char, 4> magic{};
    return in.read(magic.data(), 4) && std::memcmp(magic.data(), kMagic.data(), 4) == 0;
}

}  // namespace tfx::gguf
