// `--lora DIR[=NAME][:SCALE]`: the parts, paths that hold '=' or ':', and malformed forms named.
#include <gtest/gtest.h>

#include "core/lora_adapter.h"
#include "error_of.h"

namespace {

using tfx::lora::parse_spec;

TEST(LoraSpec, FolderNameAndScale) {
    const auto full = parse_spec("adapters/a1=chat:0.5", "--lora");
    EXPECT_EQ(full.dir, "adapters/a1");
    EXPECT_EQ(full.name, "chat");
    EXPECT_FLOAT_EQ(full.scale, 0.5f);
    const auto plain = parse_spec("adapters/a1/", "--lora");
    EXPECT_EQ(plain.dir, "adapters/a1/");
    EXPECT_EQ(plain.name, "");
    EXPECT_FLOAT_EQ(plain.scale, 1.0f);
    EXPECT_EQ(tfx::lora::load_name(plain), "a1");
    EXPECT_FLOAT_EQ(parse_spec("a1:-1", "--lora").scale, -1.0f);
}

TEST(LoraSpec, PathsMayHoldEqualsAndColons) {
    EXPECT_EQ(parse_spec("runs/lr=1e-4/adapter", "--lora").dir, "runs/lr=1e-4/adapter");
    const auto colon = parse_spec("runs/a:b/adapter", "--lora");  // not a number after ':'
    EXPECT_EQ(colon.dir, "runs/a:b/adapter");
    EXPECT_FLOAT_EQ(colon.scale, 1.0f);
}

TEST(LoraSpec, MalformedFormsAreNamed) {
    EXPECT_NE(tfx::test::error_of([] { parse_spec("", "--lora"); }).find("--lora"), std::string::npos);
    EXPECT_NE(tfx::test::error_of([] { parse_spec("a1=", "--lora"); }).find("NAME"), std::string::npos);
    EXPECT_NE(tfx::test::error_of([] { parse_spec("=x:2", "--lora"); }).find("DIR"), std::string::npos);
    EXPECT_NE(tfx::test::error_of([] { parse_spec("a1:inf", "--lora"); }).find("finite"), std::string::npos);
}

}  // namespace
