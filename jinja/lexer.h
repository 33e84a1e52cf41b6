// Splits template source into tokens the way Jinja2's lexer does with trim_blocks=True and
// lstrip_blocks=True: template data, tag delimiters and the expression tokens inside tags.
// Whitespace control ({%- -%} {{- -}} {%+ +%}), comments and {% raw %} are resolved here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tfx::jinja {

enum class TokenType {
    data,
    variable_begin,
    variable_end,
    block_begin,
    block_end,
    name,
    string,
    integer,
    floating,
    op,  // operator or punctuation; text holds it ("==", "(", ...)
    eof,
};

struct Token {
    TokenType type = TokenType::eof;
    std::string text;  // data text, name, decoded string literal or operator
    std::int64_t int_value = 0;
    double float_value = 0.0;
    int line = 1;
    int column = 1;
};

// Throws Error(ErrorKind::syntax) on malformed input.
std::vector<Token> tokenize(std::string_view source);

// A syntax error at a position.
[[noreturn]] void throw_syntax_error(const std::string& message, int line, int column);

}  // namespace tfx::jinja
