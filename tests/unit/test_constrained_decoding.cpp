// Constrained decoding's parts: the byte regex automaton, JSON Schema -> regex (texts valid
// against the schema match, invalid ones do not), and the token mask over a small vocabulary.
#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "core/json_schema_regex.h"
#include "core/regex_automaton.h"
#include "core/token_constraint.h"
#include "error_of.h"
#include "tfx/sdk/error.hpp"

namespace {

using tfx::test::error_of;

bool matches(tfx::RegexAutomaton& a, std::string_view text) {
    int32_t s = a.start();
    for (char c : text) {
        s = a.next(s, static_cast<uint8_t>(c));
        if (s == tfx::RegexAutomaton::kDead) return false;
    }
    return a.accepting(s);
}

bool schema_matches(const char* schema, std::string_view text) {
    tfx::RegexAutomaton a(tfx::json_schema_regex(nlohmann::ordered_json::parse(schema)));
    return matches(a, text);
}

}  // namespace

TEST(RegexAutomaton, MatchesTheWholeTextWithClassesQuantifiersAndAlternation) {
    tfx::RegexAutomaton a(R"((?:ab|c)+[0-9]{2,3}x?\.[^a-z\n]\d*)");
    EXPECT_TRUE(matches(a, "abc12.Z"));
    EXPECT_TRUE(matches(a, "cab123x.#4567"));
    EXPECT_FALSE(matches(a, "abc1.Z")) << "{2,3} needs two digits";
    EXPECT_FALSE(matches(a, "abc1234.Z")) << "{2,3} allows three";
    EXPECT_FALSE(matches(a, "abc12.z")) << "negated class";
    EXPECT_FALSE(matches(a, "abc12.Z ")) << "the whole text";
    tfx::RegexAutomaton bytes(R"(\u00e9[\x80-\xbf]*)");
    EXPECT_TRUE(matches(bytes, "\xc3\xa9\x80\x81"));
    tfx::RegexAutomaton empty("a{0}b");
    EXPECT_TRUE(matches(empty, "b"));
}

TEST(RegexAutomaton, SyntaxErrorsNameTheirOffset) {
    EXPECT_NE(error_of([] { tfx::RegexAutomaton("ab(c"); }).find("expected ')' at offset 4"), std::string::npos);
    EXPECT_NE(error_of([] { tfx::RegexAutomaton("a{3,1}"); }).find("m < n"), std::string::npos);
    EXPECT_NE(error_of([] { tfx::RegexAutomaton("[z-a]"); }).find("range"), std::string::npos);
    EXPECT_NE(error_of([] { tfx::RegexAutomaton("a**"); }).find("quantifier after a quantifier"), std::string::npos);
    EXPECT_NE(error_of([] { tfx::RegexAutomaton("(a{1000}){1000}"); }).find("too large"), std::string::npos);
    EXPECT_NE(error_of([] { tfx::RegexAutomaton(std::string(100000, '(')); }).find("nested more than"),
              std::string::npos);
    // Exponentially many DFA states: refused once they pass the cap, never unbounded memory.
    tfx::RegexAutomaton blowup("(?:a|b)*a(?:a|b){40}");
    EXPECT_NE(error_of([&] {
                  std::mt19937 rng(1);
                  int32_t s = blowup.start();
                  for (int i = 0; i < 1000000 && s != tfx::RegexAutomaton::kDead; ++i)
                      s = blowup.next(s, "ab"[rng() % 2]);
              }).find("grew past"),
              std::string::npos);
}

TEST(JsonSchemaRegex, ValidTextsMatchAndInvalidOnesDoNot) {
    const char* person = R"({"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 5}, "age": {"type": "integer"},
        "pet": {"enum": ["dog", null]}, "tags": {"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2},
        "born": {"type": "string", "format": "date"}, "score": {"anyOf": [{"type": "number"}, {"$ref": "#/$defs/none"}]}},
        "$defs": {"none": {"type": "null"}}})";
    EXPECT_TRUE(schema_matches(
        person,
        R"({"name": "Ann", "age": -3, "pet": "dog", "tags": [true, false], "born": "2020-02-29", "score": 1.5e3})"));
    EXPECT_TRUE(
        schema_matches(person, R"({"name":"é\"","age":0,"pet":null,"tags":[false],"born":"1999-12-31","score":null})"));
    EXPECT_FALSE(schema_matches(
        person, R"({"name":"Annabel","age":0,"pet":null,"tags":[false],"born":"1999-12-31","score":null})"))
        << "maxLength";
    EXPECT_FALSE(
        schema_matches(person, R"({"name":"A","age":1.5,"pet":null,"tags":[false],"born":"1999-12-31","score":null})"))
        << "integer";
    EXPECT_FALSE(
        schema_matches(person, R"({"name":"A","age":1,"pet":"cat","tags":[false],"born":"1999-12-31","score":null})"))
        << "enum";
    EXPECT_FALSE(
        schema_matches(person, R"({"name":"A","age":1,"pet":null,"tags":[],"born":"1999-12-31","score":null})"))
        << "minItems";
    EXPECT_FALSE(
        schema_matches(person, R"({"name":"A","age":1,"pet":null,"tags":[true],"born":"1999-13-01","score":null})"))
        << "format date";
    EXPECT_FALSE(
        schema_matches(person, R"({"name":"A","age":1,"pet":null,"tags":[true],"born":"2023-02-29","score":null})"))
        << "February 29th outside a leap year";
    EXPECT_FALSE(
        schema_matches(person, R"({"name":"A","age":1,"pet":null,"tags":[true],"born":"2023-11-31","score":null})"))
        << "November 31st";
    EXPECT_FALSE(schema_matches(person,
                                "{\"name\":\"A\x01\",\"age\":1,\"pet\":null,\"tags\":[true],\"born\":\"1999-12-"
                                "01\",\"score\":null}"))
        << "a raw control character";
    tfx::RegexAutomaton object(tfx::json_object_regex());
    EXPECT_TRUE(matches(object, R"({"a": [1, {"b": null}], "c": "d"})"));
    EXPECT_FALSE(matches(object, R"([1])"));
}

TEST(JsonSchemaRegex, KeywordsItCannotHonourAreRefusedByPointer) {
    EXPECT_NE(error_of([] {
                  tfx::json_schema_regex(
                      nlohmann::ordered_json::parse(R"({"properties": {"n": {"type": "integer", "minimum": 3}}})"));
              }).find("#/properties/n/minimum is not supported"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  tfx::json_schema_regex(nlohmann::ordered_json::parse(R"({"$ref": "#/$defs/x"})"));
              }).find("names nothing"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  tfx::json_schema_regex(
                      nlohmann::ordered_json::parse(R"({"$defs": {"x": {"$ref": "#/$defs/x"}}, "$ref": "#/$defs/x"})"));
              }).find("recursive"),
              std::string::npos);
}

TEST(TokenConstraint, AllowsTokensThatKeepAMatchAndEosOnlyAtAWholeMatch) {
    // Vocabulary: 0 EOS (not text), 1 "a", 2 "ab", 3 "b", 4 "c", 5 "bc".
    auto vocab = std::make_shared<const tfx::TokenBytes>(tfx::TokenBytes{std::nullopt, "a", "ab", "b", "c", "bc"});
    auto automaton = std::make_shared<tfx::ConstraintAutomaton>("ab?c", vocab, std::vector<int32_t>{0});
    tfx::TokenConstraint c(automaton);
    auto allowed = [&] {
        std::vector<float> scores(6, 1.0f);
        c.mask(scores);
        std::vector<int32_t> ids;
        for (size_t i = 0; i < scores.size(); ++i) {
            if (std::isfinite(scores[i])) ids.push_back(static_cast<int32_t>(i));
        }
        return ids;
    };
    EXPECT_EQ(allowed(), (std::vector<int32_t>{1, 2}));
    c.advance(1);  // "a"
    EXPECT_EQ(allowed(), (std::vector<int32_t>{3, 4, 5}));
    c.advance(5);  // "abc": whole, and nothing may follow
    EXPECT_TRUE(c.complete());
    EXPECT_EQ(allowed(), (std::vector<int32_t>{0}));
}
