// Safetensors: every real file in the shared data loads; each malformed file has its own error.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <future>

#include <gtest/gtest.h>

#include "core/safetensors.h"
#include "test_data.h"

namespace fs = std::filesystem;
namespace st = tfx::safetensors;

namespace {

std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes) {
    std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
    uint64_t len = header.size();
    for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(len >> (8 * i));
    std::memcpy(out.data() + 8, header.data(), header.size());
    return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
    try {
        st::parse_header(bytes, "crafted.safetensors");
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

fs::path scratch_dir(const std::string& name) {
    fs::path dir = fs::temp_directory_path() / (name + "-" + std::to_string(getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir;
}

}  // namespace

TEST(Safetensors, EverySharedFileLoadsWithConsistentShapes) {
    TFX_TEST_DATA_OR_SKIP(root, "");
    int files = 0;
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        if (entry.path().extension() != ".safetensors") continue;
        ++files;
        st::File file(entry.path());
        ASSERT_FALSE(file.header().tensors.empty()) << entry.path();
        for (const auto& t : file.header().tensors) {
            uint64_t elements = 1;
            for (int64_t d : t.shape) elements *= static_cast<uint64_t>(d);
            EXPECT_EQ(elements * st::dtype_size(t.dtype), t.end - t.begin) << entry.path() << " " << t.name;
        }
        // Model checkpoints open as a folder; other files (PEFT adapters, ...) stand alone.
        if (entry.path().filename().string().starts_with("model")) {
            EXPECT_NO_THROW(st::Checkpoint::open(entry.path().parent_path())) << entry.path();
        }
    }
    EXPECT_GT(files, 0) << "no .safetensors files under " << root;
}

TEST(Safetensors, TiedEmbeddingAliasFromMetadata) {
    TFX_TEST_DATA_OR_SKIP(dir, "models/tinystories-656k");
    auto ckpt = st::Checkpoint::open(dir);
    auto embed = ckpt.find("model.embed_tokens.weight");
    auto head = ckpt.find("lm_head.weight");
    ASSERT_TRUE(embed && head);
    EXPECT_EQ(embed->info, head->info);
    EXPECT_EQ(head->info->shape, (std::vector<int64_t>{2048, 128}));
    EXPECT_FALSE(ckpt.find("model.no_such.weight"));
}

TEST(Safetensors, MalformedHeadersEachGetTheirOwnError) {
    struct Case {
        std::vector<uint8_t> bytes;
        std::string expected;
    };
    std::vector<uint8_t> huge(8, 0xff);
    std::vector<uint8_t> past_end = make_file("{}", 0);
    past_end[0] = 200;
    std::vector<Case> cases = {
        {{1, 2, 3}, "too short"},
        {huge, "exceeds the limit"},
        {past_end, "exceeds the file size"},
        {make_file("[1,2]", 0), "not a JSON object"},
        {make_file("{\"a\": ", 0), "not valid JSON"},
        {make_file(R"({"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}})", 4), "unknown dtype 'F33'"},
        {make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4),
         "need 8 bytes but data_offsets span 4"},
        {make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 2), "outside the data section"},
        {make_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4), "non-negative"},
        {make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", 4), "outside the data section"},
        {make_file(R"({"w":{"dtype":"F32","shape":[1]}})", 4), "'data_offsets' must be [begin, end]"},
        {make_file(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}})", 0), "too large"},
        {make_file(
             R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
             12),
         "overlap"},
        {make_file(R"({"__metadata__":{"format":1}})", 0), "__metadata__ 'format' is not a string"},
    };
    for (const auto& c : cases) {
        std::string error = parse_error(c.bytes);
        EXPECT_NE(error.find("crafted.safetensors"), std::string::npos) << error;
        EXPECT_NE(error.find(c.expected), std::string::npos) << "expected '" << c.expected << "', got: " << error;
    }
}

TEST(Safetensors, WriterRoundTripsEveryDtypeAndMetadata) {
    fs::path dir = scratch_dir("tfx-st-write");
    const std::vector<st::DType> dtypes = {st::DType::F64, st::DType::F32,  st::DType::F16,     st::DType::BF16,
                                           st::DType::I64, st::DType::I32,  st::DType::I16,     st::DType::I8,
                                           st::DType::U8,  st::DType::BOOL, st::DType::F8_E4M3, st::DType::F8_E5M2};
    std::vector<std::vector<uint8_t>> storage;
    std::vector<st::TensorToWrite> tensors;
    for (size_t i = 0; i < dtypes.size(); ++i) {
        storage.emplace_back(st::dtype_size(dtypes[i]) * 6);
        for (size_t b = 0; b < storage.back().size(); ++b) storage.back()[b] = static_cast<uint8_t>(i * 31 + b);
    }
    for (size_t i = 0; i < dtypes.size(); ++i) {
        tensors.push_back({"t" + std::to_string(i), dtypes[i], {2, 3}, storage[i]});
    }
    st::write(dir / "model.safetensors", tensors, {{"format", "pt"}});
    auto ckpt = st::Checkpoint::open(dir);
    EXPECT_EQ(ckpt.metadata().at("format"), "pt");
    for (size_t i = 0; i < dtypes.size(); ++i) {
        auto entry = ckpt.find("t" + std::to_string(i));
        ASSERT_TRUE(entry);
        EXPECT_EQ(entry->info->dtype, dtypes[i]);
        EXPECT_EQ(0, std::memcmp(entry->file->data(*entry->info), storage[i].data(), storage[i].size()));
    }
    EXPECT_EQ((ckpt.files()[0]->header().data_offset - 8) % 8, 0u);
    fs::remove_all(dir);
}

TEST(Safetensors, ShardedCheckpointThroughIndex) {
    fs::path dir = scratch_dir("tfx-st-shards");
    std::vector<uint8_t> a(16, 1), b(8, 2);
    st::write(dir / "model-00001-of-00002.safetensors", {{"x.weight", st::DType::F32, {4}, a}});
    st::write(dir / "model-00002-of-00002.safetensors", {{"y.weight", st::DType::F32, {2}, b}});
    std::ofstream(dir / "model.safetensors.index.json")
        << R"({"metadata": {"total_size": 24}, "weight_map": {"x.weight": "model-00001-of-00002.safetensors", "y.weight": "model-00002-of-00002.safetensors"}})";
    auto ckpt = st::Checkpoint::open(dir);
    EXPECT_EQ(ckpt.files().size(), 2u);
    ASSERT_TRUE(ckpt.find("y.weight"));
    EXPECT_EQ(ckpt.find("y.weight")->info->shape, std::vector<int64_t>{2});

    std::ofstream(dir / "model.safetensors.index.json")
        << R"({"weight_map": {"x.weight": "../model-00001-of-00002.safetensors"}})";
    try {
        st::Checkpoint::open(dir);
        ADD_FAILURE() << "a shard path outside the folder was accepted";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("must be a file name in the model folder"), std::string::npos) << e.what();
    }
    std::ofstream(dir / "model.safetensors.index.json")
        << R"({"weight_map": {"z.weight": "model-00001-of-00002.safetensors"}})";
    try {
        st::Checkpoint::open(dir);
        ADD_FAILURE() << "a tensor missing from its shard was accepted";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("'z.weight' is not in shard"), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
}

TEST(Safetensors, PickleCheckpointIsRefusedNotExecuted) {
    fs::path dir = scratch_dir("tfx-st-pickle");
    std::ofstream(dir / "pytorch_model.bin") << "cos\nsystem\n(S'echo pwned'\ntR.";
    try {
        st::Checkpoint::open(dir);
        ADD_FAILURE() << "pickle accepted";
    } catch (const std::exception& e) {
        EXPECT_NE(std::string(e.what()).find("never executes pickle"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("safe_serialization=True"), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
}

TEST(Safetensors, AFifoIsRefusedWithoutWaitingForAWriter) {
    const fs::path dir = scratch_dir("tfx-fifo");
    const fs::path fifo = dir / "model.safetensors";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    auto opened = std::async(std::launch::async, [&]() -> std::string {
        try {
            st::Checkpoint::open(dir);
        } catch (const std::exception& e) {
            return e.what();
        }
        return "";
    });
    if (opened.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        ADD_FAILURE() << "opening a FIFO as model.safetensors hangs";
        // Release the blocked open(): a writer appears and goes, the reader sees the end.
        const int fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        if (fd >= 0) ::close(fd);
    }
    const std::string error = opened.get();
    EXPECT_NE(error.find(fifo.string() + ": not a regular file (a FIFO)"), std::string::npos) << error;

    fs::remove(fifo);
    fs::create_directory(fifo);
    std::string dir_error;
    try {
        st::Checkpoint::open(dir);
    } catch (const std::exception& e) {
        dir_error = e.what();
    }
    EXPECT_NE(dir_error.find(fifo.string() + ": not a regular file (a directory)"), std::string::npos) << dir_error;
    fs::remove_all(dir);
}
