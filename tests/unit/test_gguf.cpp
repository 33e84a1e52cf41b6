// The GGUF reader: llama.cpp's own files parse to what gguf-py saw in them
// (quant/gguf/tensor-types.json), and every malformed header is refused naming the problem.
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/gguf.h"
#include "gguf_builder.h"
#include "test_data.h"

namespace {

TEST(Gguf, LlamaCppFilesParseAsGgufPySawThem) {
    TFX_TEST_DATA_OR_SKIP(dir, "quant/gguf");
    std::ifstream types_file(dir / "tensor-types.json");
    const nlohmann::json types = nlohmann::json::parse(types_file);
    ASSERT_GE(types.size(), 8u);
    for (const auto& [name, want] : types.items()) {
        SCOPED_TRACE(name);
        const tfx::gguf::File file(dir / name);
        const auto& h = file.header();
        EXPECT_EQ(h.version, 3u);
        EXPECT_EQ(h.alignment, want.at("alignment").get<uint64_t>());
        EXPECT_EQ(h.data_offset, want.at("data_offset").get<uint64_t>());
        ASSERT_EQ(h.tensors.size(), want.at("tensors").size());
        for (const auto& t : want.at("tensors")) {
            const tfx::gguf::Tensor* got = file.find(t.at("name").get<std::string>());
            ASSERT_NE(got, nullptr) << t.at("name");
            EXPECT_EQ(tfx::gguf::traits_of(static_cast<uint32_t>(got->type))->name, t.at("type").get<std::string>());
            EXPECT_EQ(got->ne, t.at("ggml_shape_ne").get<std::vector<int64_t>>());
            EXPECT_EQ(got->bytes, t.at("n_bytes").get<uint64_t>());
            EXPECT_EQ(h.data_offset + got->offset, t.at("data_offset").get<uint64_t>());
        }
        for (const auto& [key, value] : want.at("kv").items()) {
            const nlohmann::json* got = file.meta(key);
            ASSERT_NE(got, nullptr) << key;
            if (value.is_string() && value.get<std::string>().starts_with("<array of ")) {
                EXPECT_EQ("<array of " + std::to_string(got->size()) + ">", value.get<std::string>()) << key;
            } else if (value.is_number_float()) {
                EXPECT_FLOAT_EQ(got->get<float>(), value.get<float>()) << key;
            } else {
                EXPECT_EQ(*got, value) << key;
            }
        }
        EXPECT_TRUE(tfx::gguf::is_gguf(dir / name));
    }
}

// A small valid file, built field by field so each test can break one field.
struct Fields {
    uint32_t version = 3;
    uint64_t tensor_count = 1, metadata_count = 2;
    uint64_t array_count = 3;
    std::string second_key = "general.alignment";
    uint32_t alignment = 32;
    uint32_t dims = 2;
    uint64_t ne0 = 64, ne1 = 2;
    uint32_t type = 2;  // Q4_0: 2 rows of 2 blocks, 72 bytes
    uint64_t offset = 0;
    size_t data_bytes = 72;
};

std::vector<uint8_t> build(const Fields& f) {
    tfx::test::GgufBuilder b;
    for (char c : std::string("GGUF")) b.put<uint8_t>(static_cast<uint8_t>(c));
    b.put<uint32_t>(f.version);
    b.put<uint64_t>(f.tensor_count);
    b.put<uint64_t>(f.metadata_count);
    b.str("tokenizer.ggml.tokens");
    b.put<uint32_t>(9);  // array
    b.put<uint32_t>(8);  // of strings
    b.put<uint64_t>(f.array_count);
    for (const char* token : {"a", "bc", "def"}) b.str(token);
    b.str(f.second_key);
    b.put<uint32_t>(4);  // u32
    b.put<uint32_t>(f.alignment);
    b.str("blk.0.ffn_up.weight");
    b.put<uint32_t>(f.dims);
    b.put<uint64_t>(f.ne0);
    if (f.dims > 1) b.put<uint64_t>(f.ne1);
    b.put<uint32_t>(f.type);
    b.put<uint64_t>(f.offset);
    while (b.bytes.size() % 32 != 0) b.bytes.push_back(0);
    b.bytes.resize(b.bytes.size() + f.data_bytes, 0x11);
    return b.bytes;
}

std::string error_of(const std::vector<uint8_t>& bytes) {
    try {
        tfx::gguf::parse(bytes, "m.gguf");
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

TEST(Gguf, ASmallValidFileParses) {
    const auto h = tfx::gguf::parse(build({}), "m.gguf");
    ASSERT_EQ(h.tensors.size(), 1u);
    EXPECT_EQ(h.tensors[0].bytes, 72u);
    EXPECT_EQ(h.tensors[0].rows(), 2);
    EXPECT_EQ(h.metadata.at("tokenizer.ggml.tokens"), (nlohmann::json{"a", "bc", "def"}));
}

TEST(Gguf, EveryTruncationIsAnErrorNamingTheFile) {
    const auto whole = build({});
    for (size_t n = 0; n + 1 < whole.size(); ++n) {
        const std::string e = error_of(std::vector<uint8_t>(whole.begin(), whole.begin() + static_cast<long>(n)));
        ASSERT_TRUE(e.starts_with("m.gguf: not a valid GGUF file: ")) << n << ": " << e;
    }
}

TEST(Gguf, MalformedFieldsAreNamed) {
    auto with = [](auto change) {
        Fields f;
        change(f);
        return error_of(build(f));
    };
    auto expect = [](const std::string& error, const std::string& part) {
        EXPECT_NE(error.find(part), std::string::npos) << error;
    };
    std::vector<uint8_t> bad_magic = build({});
    bad_magic[0] = 'X';
    expect(error_of(bad_magic), "does not start with the magic 'GGUF'");
    expect(with([](Fields& f) { f.version = 1; }), "version 1 is not supported");
    expect(with([](Fields& f) { f.tensor_count = uint64_t{1} << 40; }), "tensor count");
    expect(with([](Fields& f) { f.array_count = uint64_t{1} << 60; }), "does not fit");
    expect(with([](Fields& f) { f.second_key = "tokenizer.ggml.tokens"; }), "appears twice");
    expect(with([](Fields& f) { f.alignment = 48; }), "power of two");
    expect(with([](Fields& f) { f.dims = 5; }), "5 dimensions");
    expect(with([](Fields& f) { f.ne1 = 0; }), "dimension 0");
    expect(with([](Fields& f) { f.ne1 = uint64_t{1} << 62; }), "too many elements");
    expect(with([](Fields& f) { f.type = 77; }), "unknown ggml type 77");
    expect(with([](Fields& f) { f.ne0 = 48; }), "not a whole number of 32-value blocks");
    expect(with([](Fields& f) { f.offset = 8; }), "not a multiple of the alignment 32");
    expect(with([](Fields& f) { f.data_bytes = 71; }), "runs past the end");
    expect(with([](Fields& f) { f.offset = uint64_t{1} << 63; }), "runs past the end");
}

}  // namespace
