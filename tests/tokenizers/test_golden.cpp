// Golden parity with the Rust `tokenizers` crate: for every tokenizer and every corpus line,
// ids (with and without special tokens) and the decoded text must match exactly. Also
// checks streaming decode and offset sanity on the same data.
#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "test_util.h"
#include "tokenizer.h"
#include "utf8.h"

namespace tfx::tok {
namespace {

class Golden : public ::testing::TestWithParam<std::string> {
  protected:
    // Loading the large files once per tokenizer keeps the suite fast.
    static const Tokenizer& tokenizer(const std::filesystem::path& dir, const std::string& name) {
        static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
        auto& slot = cache[name];
        if (!slot) slot = std::make_unique<Tokenizer>(Tokenizer::from_file(dir / name / "tokenizer.json"));
        return *slot;
    }
};

TEST_P(Golden, MatchesRustTokenizers) {
    TFX_REQUIRE_TEST_DATA(dir);
    const auto& name = GetParam();
    const Tokenizer& tok = tokenizer(*dir, name);
    const auto rows = test::read_jsonl(*dir / name / "golden-dev.jsonl");
    ASSERT_EQ(rows.size(), 91u);
    size_t passed = 0;
    for (const auto& row : rows) {
        const auto text = row["text"].get<std::string>();
        const auto with_special = tok.encode(text, true);
        const auto without_special = tok.encode(text, false);
        const auto decoded = tok.decode(without_special.ids, false);
        const bool ok = with_special.ids == row["ids"].get<std::vector<int32_t>>() &&
                        without_special.ids == row["ids_no_special"].get<std::vector<int32_t>>() &&
                        decoded == row["decoded"].get<std::string>();
        EXPECT_TRUE(ok) << name << " differs on " << nlohmann::json(text).dump();
        passed += ok;
    }
    std::cout << "[ golden ] " << name << ": " << passed << "/" << rows.size() << " lines match\n";
    EXPECT_EQ(passed, rows.size());
}

TEST_P(Golden, StreamingDecodeEqualsFullDecode) {
    TFX_REQUIRE_TEST_DATA(dir);
    const auto& name = GetParam();
    const Tokenizer& tok = tokenizer(*dir, name);
    for (const auto& row : test::read_jsonl(*dir / name / "golden-dev.jsonl")) {
        const auto ids = row["ids_no_special"].get<std::vector<int32_t>>();
        auto stream = tok.decode_stream(false);
        std::string joined;
        for (const int32_t id : ids) {
            const std::string piece = stream.step(id);
            EXPECT_FALSE(utf8::find_invalid(piece).has_value())
                << name << ": a streamed piece splits a UTF-8 character";
            joined += piece;
        }
        joined += stream.flush();
        EXPECT_EQ(joined, tok.decode(ids, false)) << name << " on " << nlohmann::json(row["text"]).dump();
    }
}

TEST_P(Golden, OffsetsLieInTheInput) {
    TFX_REQUIRE_TEST_DATA(dir);
    const auto& name = GetParam();
    const Tokenizer& tok = tokenizer(*dir, name);
    for (const auto& row : test::read_jsonl(*dir / name / "golden-dev.jsonl")) {
        const auto text = row["text"].get<std::string>();
        const auto e = tok.encode(text, false);
        ASSERT_EQ(e.offsets.size(), e.ids.size());
        for (const auto& o : e.offsets) {
            EXPECT_LE(o.begin, o.end);
            EXPECT_LE(o.end, text.size());
        }
    }
}

INSTANTIATE_TEST_SUITE_P(AllTokenizers, Golden, ::testing::ValuesIn(test::all_tokenizer_names()),
                         [](const auto& param_info) {
                             std::string n = param_info.param;
                             for (char& c : n)
                                 if (c == '-') c = '_';
                             return n;
                         });

}  // namespace
}  // namespace tfx::tok
