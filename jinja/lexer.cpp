#include "jinja/lexer.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "jinja/error.h"
#include "jinja/unicode.h"

namespace tfx::jinja {

void throw_syntax_error(const std::string& message, int line, int column) {
    throw Error(ErrorKind::syntax,
                message + " (line " + std::to_string(line) + ", column " + std::to_string(column) + ")", line, column);
}

namespace {

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_name_start(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
    return is_name_start(c) || is_digit(c);
}
bool is_hex(char c) {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Jinja2 normalises every line break to "\n" and drops one trailing newline
// (keep_trailing_newline=False).
std::string normalize_source(std::string_view source) {
    std::string out;
    out.reserve(source.size());
    for (std::size_t i = 0; i < source.size(); ++i) {
        if (source[i] == '\r') {
            out += '\n';
            if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
        } else {
            out += source[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

const char* const kOperators[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[",
                                  "]",  "(",  ")",  "{",  "}",  ">",  "<", "=", ".", ":", "|", ",", ";"};

class Lexer {
  public:
    explicit Lexer(std::string_view source) : src_(normalize_source(source)) {}

    std::vector<Token> run() {
        bool line_starting = true;  // the previous token ended a line (Jinja's lstrip condition)
        while (pos_ < src_.size()) {
            const std::size_t tag = find_tag_start(pos_);
            if (tag == std::string::npos) {
                emit_data(src_.substr(pos_), pos_);
                pos_ = src_.size();
                break;
            }
            const char kind = src_[tag + 1];
            const char sign =
                tag + 2 < src_.size() && (src_[tag + 2] == '-' || src_[tag + 2] == '+') ? src_[tag + 2] : 0;
            std::string text = src_.substr(pos_, tag - pos_);
            apply_left_control(text, sign, kind != '{', line_starting);
            emit_data(std::move(text), pos_);
            std::size_t raw_end = 0;
            if (kind == '%' && match_raw_begin(tag, raw_end)) {
                pos_ = raw_end;
                line_starting = lex_raw_body();
            } else if (kind == '#') {
                line_starting = skip_comment(tag + 2 + (sign ? 1 : 0));
            } else {
                pos_ = tag + 2 + (sign ? 1 : 0);
                line_starting = lex_tag(kind == '%', tag);
            }
        }
        push(TokenType::eof, "", src_.size());
        return std::move(tokens_);
    }

  private:
    // ---- positions -------------------------------------------------------------------------
    void advance_lines_to(std::size_t offset) {
        for (; line_scan_ < offset && line_scan_ < src_.size(); ++line_scan_) {
            if (src_[line_scan_] == '\n') {
                ++line_;
                line_start_ = line_scan_ + 1;
            }
        }
    }

    // Line and column (in code points) of an offset; offsets arrive in increasing order, so the
    // column is counted on from the previous position of the same line.
    std::pair<int, int> position(std::size_t offset) {
        advance_lines_to(offset);
        if (column_offset_ < line_start_ || column_offset_ > offset) {
            column_offset_ = line_start_;
            column_ = 1;
        }
        for (; column_offset_ < offset && column_offset_ < src_.size(); ++column_offset_) {
            if ((static_cast<unsigned char>(src_[column_offset_]) & 0xC0) != 0x80) ++column_;
        }
        return {line_, column_};
    }

    [[noreturn]] void fail(const std::string& message, std::size_t offset) {
        const auto [line, column] = position(offset);
        throw_syntax_error(message, line, column);
    }

    Token& push(TokenType type, std::string text, std::size_t offset) {
        const auto [line, column] = position(offset);
        Token token;
        token.type = type;
        token.text = std::move(text);
        token.line = line;
        token.column = column;
        tokens_.push_back(std::move(token));
        return tokens_.back();
    }

    void emit_data(std::string text, std::size_t offset) {
        if (!text.empty()) push(TokenType::data, std::move(text), offset);
    }

    // ---- whitespace --------------------------------------------------------------------------
    // Length of the Unicode whitespace code point at i (0 if none): Python's \s.
    std::size_t space_at(std::size_t i) const {
        if (i >= src_.size()) return 0;
        const auto c = static_cast<unsigned char>(src_[i]);
        if (c < 0x80) return unicode::is_space(c) ? 1 : 0;
        std::size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
        if (i + len > src_.size()) return 0;
        const std::u32string cps = unicode::decode(std::string_view(src_).substr(i, len));
        return cps.size() == 1 && unicode::is_space(cps[0]) ? len : 0;
    }

    std::size_t skip_spaces(std::size_t i) const {
        for (std::size_t n = space_at(i); n > 0; n = space_at(i)) i += n;
        return i;
    }

    static bool all_space(std::string_view s) {
        for (char32_t c : unicode::decode(s)) {
            if (!unicode::is_space(c)) return false;
        }
        return true;
    }

    // `{%-` strips all whitespace before the tag; otherwise lstrip_blocks removes the indentation
    // of a block or comment tag that starts its line.
    static void apply_left_control(std::string& text, char sign, bool block_or_comment, bool line_starting) {
        if (sign == '-') {
            const std::u32string cps = unicode::decode(text);
            std::size_t end = cps.size();
            while (end > 0 && unicode::is_space(cps[end - 1])) --end;
            text = unicode::encode(std::u32string_view(cps).substr(0, end));
        } else if (sign != '+' && block_or_comment) {
            const std::size_t nl = text.rfind('\n');
            const std::size_t line_begin = nl == std::string::npos ? 0 : nl + 1;
            if ((line_begin > 0 || line_starting) && line_begin < text.size() &&
                all_space(std::string_view(text).substr(line_begin))) {
                text.resize(line_begin);
            }
        }
    }

    // Consumes a tag end's right-side whitespace control; returns whether it ended a line.
    bool finish_tag_end(std::size_t after_end, char sign, bool trim_newline) {
        pos_ = after_end;
        if (sign == '-') {
            pos_ = skip_spaces(pos_);
        } else if (sign != '+' && trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
            ++pos_;
        }
        return pos_ > 0 && src_[pos_ - 1] == '\n' && pos_ > after_end;
    }

    // ---- root state ------------------------------------------------------------------------
    std::size_t find_tag_start(std::size_t from) const {
        for (std::size_t i = src_.find('{', from); i != std::string::npos; i = src_.find('{', i + 1)) {
            if (i + 1 < src_.size() && (src_[i + 1] == '{' || src_[i + 1] == '%' || src_[i + 1] == '#')) return i;
        }
        return std::string::npos;
    }

    bool match_word(std::size_t& i, std::string_view word) const {
        if (src_.compare(i, word.size(), word) != 0) return false;
        i += word.size();
        return true;
    }

    // `{%(-|+|)\s*raw\s*(-%}\s*|%})`
    bool match_raw_begin(std::size_t tag, std::size_t& end) const {
        std::size_t i = tag + 2;
        if (i < src_.size() && (src_[i] == '-' || src_[i] == '+')) ++i;
        i = skip_spaces(i);
        if (!match_word(i, "raw")) return false;
        i = skip_spaces(i);
        if (match_word(i, "-%}")) {
            end = skip_spaces(i);
            return true;
        }
        if (match_word(i, "%}")) {
            end = i;
            return true;
        }
        return false;
    }

    // Body of {% raw %} up to `{%(-|+|)\s*endraw\s*(+%}|-%}\s*|%}\n?)`.
    bool lex_raw_body() {
        for (std::size_t tag = src_.find("{%", pos_); tag != std::string::npos; tag = src_.find("{%", tag + 1)) {
            std::size_t i = tag + 2;
            const char sign = i < src_.size() && (src_[i] == '-' || src_[i] == '+') ? src_[i] : 0;
            if (sign) ++i;
            i = skip_spaces(i);
            if (!match_word(i, "endraw")) continue;
            i = skip_spaces(i);
            const char end_sign = i < src_.size() && (src_[i] == '-' || src_[i] == '+') ? src_[i] : 0;
            std::size_t close = i + (end_sign ? 1 : 0);
            if (src_.compare(close, 2, "%}") != 0) continue;
            std::string text = src_.substr(pos_, tag - pos_);
            apply_left_control(text, sign, true, false);
            emit_data(std::move(text), pos_);
            return finish_tag_end(close + 2, end_sign, true);
        }
        fail("Missing end of raw directive", pos_);
    }

    bool skip_comment(std::size_t body) {
        if (body >= src_.size()) {  // `{#` as the last thing: Jinja2 stops without an error
            pos_ = src_.size();
            return false;
        }
        const std::size_t close = src_.find("#}", body);
        if (close == std::string::npos) fail("Missing end of comment tag", body);
        const char sign = close > body && (src_[close - 1] == '-' || src_[close - 1] == '+') ? src_[close - 1] : 0;
        return finish_tag_end(close + 2, sign, true);
    }

    // ---- inside {% %} and {{ }} ------------------------------------------------------------
    // Lexes one tag after its opening delimiter; returns whether its end consumed a newline.
    bool lex_tag(bool block, std::size_t tag_offset) {
        push(block ? TokenType::block_begin : TokenType::variable_begin, "", tag_offset);
        std::vector<char> balance;  // closing brackets expected
        const std::string_view close = block ? "%}" : "}}";
        while (true) {
            if (pos_ >= src_.size()) fail("unexpected end of template, expected '" + std::string(close) + "'", pos_);
            if (balance.empty()) {
                const char sign = src_[pos_] == '-' || (block && src_[pos_] == '+') ? src_[pos_] : 0;
                const std::size_t at = pos_ + (sign ? 1 : 0);
                if (src_.compare(at, 2, close) == 0) {
                    push(block ? TokenType::block_end : TokenType::variable_end, "", pos_);
                    return finish_tag_end(at + 2, sign, block);
                }
            }
            if (const std::size_t ws = space_at(pos_); ws > 0) {
                pos_ += ws;
                continue;
            }
            lex_expression_token(balance);
        }
    }

    // (\d+_)*\d+ starting at i; returns the end, or i when there is no digit.
    std::size_t match_digits(std::size_t i) const {
        if (i >= src_.size() || !is_digit(src_[i])) return i;
        while (i < src_.size()) {
            if (is_digit(src_[i])) {
                ++i;
            } else if (src_[i] == '_' && i + 1 < src_.size() && is_digit(src_[i + 1])) {
                i += 2;
            } else {
                break;
            }
        }
        return i;
    }

    std::size_t match_float(std::size_t i) const {
        if (i > 0 && src_[i - 1] == '.') return i;
        const std::size_t int_end = match_digits(i);
        if (int_end == i) return i;
        std::size_t end = int_end;
        bool fraction = false;
        if (end < src_.size() && src_[end] == '.') {
            const std::size_t frac_end = match_digits(end + 1);
            if (frac_end > end + 1) {
                end = frac_end;
                fraction = true;
            }
        }
        if (end < src_.size() && (src_[end] == 'e' || src_[end] == 'E')) {
            std::size_t e = end + 1;
            if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
            const std::size_t exp_end = match_digits(e);
            if (exp_end > e) return exp_end;
        }
        return fraction ? end : i;
    }

    // 0b.. / 0o.. / 0x.. / [1-9](_?\d)* / 0(_?0)*; sets base.
    std::size_t match_integer(std::size_t i, int& base) const {
        auto run = [&](std::size_t j, auto is_valid) {
            std::size_t end = j;
            while (true) {
                std::size_t k = end;
                if (k < src_.size() && src_[k] == '_') ++k;
                if (k < src_.size() && is_valid(src_[k])) {
                    end = k + 1;
                } else {
                    return end;
                }
            }
        };
        if (src_[i] == '0' && i + 1 < src_.size()) {
            const char p = static_cast<char>(src_[i + 1] | 0x20);
            int prefix_base = p == 'b' ? 2 : p == 'o' ? 8 : p == 'x' ? 16 : 0;
            if (prefix_base != 0) {
                const std::size_t end = run(i + 2, [prefix_base](char c) {
                    return prefix_base == 2   ? (c == '0' || c == '1')
                           : prefix_base == 8 ? (c >= '0' && c <= '7')
                                              : is_hex(c);
                });
                if (end > i + 2) {
                    base = prefix_base;
                    return end;
                }
            }
        }
        base = 10;
        if (src_[i] >= '1' && src_[i] <= '9') return run(i + 1, is_digit);
        if (src_[i] == '0') return run(i + 1, [](char c) { return c == '0'; });
        return i;
    }

    void lex_expression_token(std::vector<char>& balance) {
        const std::size_t start = pos_;
        const char c = src_[pos_];
        if (const std::size_t end = match_float(pos_); end > pos_) {
            std::string digits;
            for (std::size_t i = pos_; i < end; ++i) {
                if (src_[i] != '_') digits += src_[i];
            }
            push(TokenType::floating, digits, start).float_value = std::strtod(digits.c_str(), nullptr);
            pos_ = end;
            return;
        }
        if (is_digit(c)) {
            int base = 10;
            const std::size_t end = match_integer(pos_, base);
            std::string digits;
            for (std::size_t i = pos_ + (base == 10 ? 0 : 2); i < end; ++i) {
                if (src_[i] != '_') digits += src_[i];
            }
            errno = 0;
            const unsigned long long v = std::strtoull(digits.c_str(), nullptr, base);
            if (errno == ERANGE || v > static_cast<unsigned long long>(std::numeric_limits<std::int64_t>::max())) {
                fail("integer literal too large", start);
            }
            push(TokenType::integer, src_.substr(pos_, end - pos_), start).int_value = static_cast<std::int64_t>(v);
            pos_ = end;
            return;
        }
        if (is_name_start(c)) {
            std::size_t end = pos_;
            while (end < src_.size() && is_name_char(src_[end])) ++end;
            push(TokenType::name, src_.substr(pos_, end - pos_), start);
            pos_ = end;
            return;
        }
        if (c == '\'' || c == '"') {
            lex_string();
            return;
        }
        for (const char* op : kOperators) {
            const std::string_view sv(op);
            if (src_.compare(pos_, sv.size(), sv) != 0) continue;
            track_balance(balance, sv, start);
            push(TokenType::op, std::string(sv), start);
            pos_ += sv.size();
            return;
        }
        std::string shown;
        unicode::append_utf8(shown, unicode::decode(std::string_view(src_).substr(pos_, 4))[0]);
        fail("unexpected char '" + shown + "'", start);
    }

    void track_balance(std::vector<char>& balance, std::string_view op, std::size_t offset) {
        if (op == "{") balance.push_back('}');
        if (op == "(") balance.push_back(')');
        if (op == "[") balance.push_back(']');
        if (op == "}" || op == ")" || op == "]") {
            if (balance.empty()) fail("unexpected '" + std::string(op) + "'", offset);
            if (balance.back() != op[0]) {
                fail("unexpected '" + std::string(op) + "', expected '" + std::string(1, balance.back()) + "'", offset);
            }
            balance.pop_back();
        }
    }

    // A quoted literal; escapes as Python's "unicode-escape" codec reads them.
    void lex_string() {
        const std::size_t start = pos_;
        const char quote = src_[pos_];
        std::size_t end = pos_ + 1;
        while (end < src_.size() && src_[end] != quote) end += src_[end] == '\\' ? 2 : 1;
        if (end >= src_.size()) fail("unterminated string literal", start);
        push(TokenType::string, unescape(std::string_view(src_).substr(pos_ + 1, end - pos_ - 1), start), start);
        pos_ = end + 1;
    }

    std::string unescape(std::string_view body, std::size_t offset) {
        std::string out;
        for (std::size_t i = 0; i < body.size(); ++i) {
            if (body[i] != '\\') {
                out += body[i];
                continue;
            }
            const char e = body[++i];  // the lexer guarantees a character after a backslash
            switch (e) {
                case '\n':
                    break;  // line continuation
                case '\\':
                    out += '\\';
                    break;
                case '\'':
                    out += '\'';
                    break;
                case '"':
                    out += '"';
                    break;
                case 'a':
                    out += '\a';
                    break;
                case 'b':
                    out += '\b';
                    break;
                case 'f':
                    out += '\f';
                    break;
                case 'n':
                    out += '\n';
                    break;
                case 'r':
                    out += '\r';
                    break;
                case 't':
                    out += '\t';
                    break;
                case 'v':
                    out += '\v';
                    break;
                case 'x':
                    append_hex_escape(out, body, i, 2, "truncated \\xXX escape", offset);
                    break;
                case 'u':
                    append_hex_escape(out, body, i, 4, "truncated \\uXXXX escape", offset);
                    break;
                case 'U':
                    append_hex_escape(out, body, i, 8, "truncated \\UXXXXXXXX escape", offset);
                    break;
                case 'N':
                    fail("\\N{...} escapes are not supported", offset);
                default:
                    if (e >= '0' && e <= '7') {
                        unsigned value = static_cast<unsigned>(e - '0');
                        for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k) {
                            value = value * 8 + static_cast<unsigned>(body[++i] - '0');
                        }
                        unicode::append_utf8(out, value);
                    } else if (static_cast<unsigned char>(e) >= 0x80) {
                        // Jinja backslash-escapes non-ASCII text before decoding, so "\é" reads as
                        // a backslash followed by the letters of the escape ("\xe9").
                        const std::size_t len = std::min<std::size_t>(body.size() - i, 4);
                        const std::u32string cps = unicode::decode(body.substr(i, len));
                        const char32_t cp = cps[0];
                        std::string utf8;
                        unicode::append_utf8(utf8, cp);
                        char buf[16];
                        std::snprintf(buf, sizeof buf,
                                      cp <= 0xFF     ? "\\x%02x"
                                      : cp <= 0xFFFF ? "\\u%04x"
                                                     : "\\U%08x",
                                      static_cast<unsigned>(cp));
                        out += buf;
                        i += utf8.size() - 1;
                    } else {
                        out += '\\';  // unknown escapes stay as written
                        out += e;
                    }
            }
        }
        return out;
    }

    void append_hex_escape(std::string& out, std::string_view body, std::size_t& i, int digits, const char* error,
                           std::size_t offset) {
        std::uint32_t value = 0;
        for (int k = 0; k < digits; ++k) {
            if (i + 1 >= body.size() || !is_hex(body[i + 1])) fail(error, offset);
            const char h = body[++i];
            value = value * 16 + static_cast<std::uint32_t>(is_digit(h) ? h - '0' : (h | 0x20) - 'a' + 10);
        }
        if (value > 0x10FFFF) fail("illegal Unicode character", offset);
        unicode::append_utf8(out, value);
    }

    std::string src_;
    std::size_t pos_ = 0;
    std::vector<Token> tokens_;
    std::size_t line_scan_ = 0;
    std::size_t line_start_ = 0;
    int line_ = 1;
    std::size_t column_offset_ = 0;
    int column_ = 1;
};

}  // namespace

std::vector<Token> tokenize(std::string_view source) {
    return Lexer(source).run();
}

}  // namespace tfx::jinja
