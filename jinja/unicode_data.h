// Unicode property tables (generated; see unicode_data.cpp) used to give strings Python's
// str semantics.
#pragma once

#include <cstdint>
#include <span>

namespace tfx::jinja::unicode_data {

struct Range {
    std::uint32_t first;
    std::uint32_t last;
};

// Code points first, first + stride, ..., last all map to code point + delta.
struct CaseRun {
    std::uint32_t first;
    std::uint32_t last;
    std::int32_t delta;
    std::int32_t stride;
};

// A code point whose case mapping is several code points (e.g. U+00DF -> "SS").
struct SpecialCase {
    std::uint32_t code_point;
    const char32_t* mapping;
};

extern const std::span<const Range> kNonPrintable;
extern const std::span<const Range> kCased;
extern const std::span<const Range> kCaseIgnorable;
extern const std::span<const Range> kAlpha;
extern const std::span<const Range> kDecimal;
extern const std::span<const CaseRun> kUpperRuns;
extern const std::span<const SpecialCase> kUpperSpecial;
extern const std::span<const CaseRun> kLowerRuns;
extern const std::span<const SpecialCase> kLowerSpecial;
extern const std::span<const CaseRun> kTitleRuns;
extern const std::span<const SpecialCase> kTitleSpecial;

}  // namespace tfx::jinja::unicode_data
