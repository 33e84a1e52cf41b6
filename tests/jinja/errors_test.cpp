// Failures must be clean: positioned syntax errors, the template's own raise_exception message,
// and bounded work for hostile input (never a crash or a hang).
#include <string>

#include "jinja_test_support.h"

namespace tfx::jinja::test {
namespace {

Error error_of(const std::string& source, const std::string& context = "{}",
               const RenderOptions& options = reference_options()) {
    try {
        render(source, context, options);
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "no error for: " << source.substr(0, 80);
    return Error(ErrorKind::runtime, "none");
}

TEST(JinjaErrors, SyntaxErrorHasLineAndColumn) {
    const Error e = error_of("line one\n{% if true %}\n  {{ 1 + }}\n{% endif %}");
    EXPECT_EQ(e.kind(), ErrorKind::syntax);
    EXPECT_EQ(e.line(), 3);
    EXPECT_EQ(e.column(), 10);  // the `}}` where an operand was expected
    EXPECT_NE(std::string(e.what()).find("line 3, column 10"), std::string::npos) << e.what();
}

TEST(JinjaErrors, ColumnsCountCharactersNotBytes) {
    const Error e = error_of("é😀 {{ ) }}");
    EXPECT_EQ(e.kind(), ErrorKind::syntax);
    EXPECT_EQ(e.line(), 1);
    EXPECT_EQ(e.column(), 7);
}

TEST(JinjaErrors, UnclosedBlocksAndStrayTagsAreSyntaxErrors) {
    for (const char* source : {"{% for x in y %}", "{% endif %}", "{% if %}", "{{ 'open }}", "{# open", "{% foo %}",
                               "{{ a b }}", "{% macro m(a=1, b) %}{% endmacro %}", "{% set 1 = 2 %}", "{{ x|nosuch }}",
                               "{% break %}", "{{ (1 ]] }}", "{{ 99999999999999999999 }}"}) {
        SCOPED_TRACE(source);
        EXPECT_EQ(error_of(source).kind(), ErrorKind::syntax);
    }
}

TEST(JinjaErrors, UnknownFilterInsideIfFailsOnlyWhenRun) {
    EXPECT_EQ(render("{% if false %}{{ x|nosuch }}{% endif %}ok"), "ok");
    EXPECT_EQ(error_of("{% if true %}{{ x|nosuch }}{% endif %}").kind(), ErrorKind::runtime);
}

TEST(JinjaErrors, RaiseExceptionKeepsTheTemplatesMessage) {
    const Error e =
        error_of("\n\n{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}");
    EXPECT_EQ(e.kind(), ErrorKind::raised);
    EXPECT_STREQ(e.what(), "Conversation roles must alternate user/assistant/user/assistant/...");
    EXPECT_EQ(e.line(), 3);
}

TEST(JinjaErrors, RuntimeErrorsNameTheProblem) {
    const Error undefined = error_of("{{ u.x }}");
    EXPECT_EQ(undefined.kind(), ErrorKind::runtime);
    EXPECT_NE(std::string(undefined.what()).find("'u' is undefined"), std::string::npos) << undefined.what();
    EXPECT_EQ(undefined.line(), 1);

    const Error concat = error_of("{{ 'a' + x }}", R"({"x": null})");
    EXPECT_NE(std::string(concat.what()).find("can only concatenate str (not \"NoneType\") to str"), std::string::npos);
}

TEST(JinjaErrors, DeepExpressionNestingIsRejected) {
    const int depth = 100000;
    EXPECT_EQ(error_of("{{ " + std::string(depth, '(') + "1" + std::string(depth, ')') + " }}").kind(),
              ErrorKind::syntax);
    EXPECT_EQ(error_of("{{ " + std::string(depth, '[') + std::string(depth, ']') + " }}").kind(), ErrorKind::syntax);
    std::string nots;
    for (int i = 0; i < depth; ++i) nots += "not ";
    EXPECT_EQ(error_of("{{ " + nots + "x }}").kind(), ErrorKind::syntax);
    std::string chain = "{{ 1";
    for (int i = 0; i < depth; ++i) chain += " + 1";
    EXPECT_EQ(error_of(chain + " }}").kind(), ErrorKind::syntax);
}

TEST(JinjaErrors, DeepBlockNestingIsRejected) {
    std::string source;
    for (int i = 0; i < 10000; ++i) source += "{% if true %}";
    EXPECT_EQ(error_of(source).kind(), ErrorKind::syntax);
}

TEST(JinjaErrors, RecursionIsBounded) {
    const Error e = error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    EXPECT_EQ(e.kind(), ErrorKind::runtime);
    EXPECT_NE(std::string(e.what()).find("recursion"), std::string::npos) << e.what();
    EXPECT_EQ(error_of("{% for x in [[]] recursive %}{{ loop([x]) }}{% endfor %}").kind(), ErrorKind::runtime);
}

TEST(JinjaErrors, LoopIterationsAreBounded) {
    RenderOptions options = reference_options();
    options.max_loop_iterations = 1000;
    EXPECT_EQ(render("{% for i in range(1000) %}{% endfor %}ok", "{}", options), "ok");
    EXPECT_EQ(
        error_of("{% for i in range(30) %}{% for j in range(40) %}{% endfor %}{% endfor %}", "{}", options).kind(),
        ErrorKind::runtime);
}

TEST(JinjaErrors, OutputSizeIsBounded) {
    RenderOptions options = reference_options();
    options.max_output_bytes = 1000;
    EXPECT_EQ(error_of("{% for i in range(100) %}{{ 'x' * 20 }}{% endfor %}", "{}", options).kind(),
              ErrorKind::runtime);
    EXPECT_EQ(error_of("{{ 'x' * 1000000000 }}").kind(), ErrorKind::runtime);  // beyond the string size limit
}

TEST(JinjaErrors, WorkIsBounded) {
    RenderOptions options = reference_options();
    options.max_work_bytes = 8 << 20;
    // Each index decodes the whole 1 MB string: fine a hundred times with the default budget,
    // refused with a small one.
    const std::string source = "{% set s = 'x' * 1000000 %}{% for i in range(100) %}{{ s[i] }}{% endfor %}";
    EXPECT_EQ(render(source), std::string(100, 'x'));
    const Error e = error_of(source, "{}", options);
    EXPECT_EQ(e.kind(), ErrorKind::runtime);
    EXPECT_NE(std::string(e.what()).find("work budget"), std::string::npos) << e.what();
}

TEST(JinjaErrors, ValueNestingIsBounded) {
    const Error e = error_of(
        "{% set ns = namespace(x=[]) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}");
    EXPECT_EQ(e.kind(), ErrorKind::runtime);
    std::string deep_json(1000, '[');
    deep_json += std::string(1000, ']');
    EXPECT_EQ(error_of("{{ x }}", "{\"x\": " + deep_json + "}").kind(), ErrorKind::runtime);
}

TEST(JinjaErrors, SandboxRefusesMutationAndHugeRanges) {
    EXPECT_EQ(error_of("{% set x = [] %}{{ x.append(1) }}").kind(), ErrorKind::runtime);
    EXPECT_EQ(error_of("{{ range(100001)|length }}").kind(), ErrorKind::runtime);
    EXPECT_EQ(render("{{ range(100000)|length }}"), "100000");
}

}  // namespace
}  // namespace tfx::jinja::test
