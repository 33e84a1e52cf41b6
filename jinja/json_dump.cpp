#include "jinja/json_dump.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "jinja/error.h"
#include "jinja/pyrepr.h"
#include "jinja/unicode.h"

namespace tfx::jinja {
namespace {

[[noreturn]] void not_serializable(const Value& v) {
    throw Error(ErrorKind::runtime, "Object of type " + v.type_name() + " is not JSON serializable");
}

void append_u_escape(std::string& out, char32_t unit) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(unit));
    out += buf;
}

void append_json_string(std::string& out, std::string_view s, bool ensure_ascii) {
    out += '"';
    for (char32_t c : unicode::decode(s)) {
        switch (c) {
            case U'"':
                out += "\\\"";
                continue;
            case U'\\':
                out += "\\\\";
                continue;
            case U'\n':
                out += "\\n";
                continue;
            case U'\r':
                out += "\\r";
                continue;
            case U'\t':
                out += "\\t";
                continue;
            case U'\b':
                out += "\\b";
                continue;
            case U'\f':
                out += "\\f";
                continue;
            default:
                break;
        }
        if (c < 0x20 || (ensure_ascii && c > 0x7E)) {
            if (c > 0xFFFF) {  // a UTF-16 surrogate pair, as Python writes it
                const char32_t v = c - 0x10000;
                append_u_escape(out, 0xD800 + (v >> 10));
                append_u_escape(out, 0xDC00 + (v & 0x3FF));
            } else {
                append_u_escape(out, c);
            }
        } else {
            unicode::append_utf8(out, c);
        }
    }
    out += '"';
}

std::string float_json(double d) {
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d < 0 ? "-Infinity" : "Infinity";
    return float_repr(d);
}

class Writer {
  public:
    explicit Writer(const JsonOptions& options) : options_(options) {
        if (options.separators) {
            item_sep_ = options.separators->first;
            key_sep_ = options.separators->second;
        } else {
            item_sep_ = options.indent ? "," : ", ";
            key_sep_ = ": ";
        }
    }

    void write(const Value& v, int level) {
        switch (v.kind()) {
            case Value::Kind::none:
                out_ += "null";
                return;
            case Value::Kind::boolean:
                out_ += v.as_bool() ? "true" : "false";
                return;
            case Value::Kind::integer:
                out_ += std::to_string(v.as_int());
                return;
            case Value::Kind::floating:
                out_ += float_json(v.as_double());
                return;
            case Value::Kind::string:
                append_json_string(out_, v.str(), options_.ensure_ascii);
                return;
            case Value::Kind::sequence:
                if (!v.is_list_or_tuple()) not_serializable(v);
                write_array(v.seq().items, level);
                return;
            case Value::Kind::dict:
                write_object(v.dict(), level);
                return;
            case Value::Kind::undefined:
            case Value::Kind::object:
                not_serializable(v);
        }
    }

    std::string take() { return std::move(out_); }

  private:
    void newline(int level) {
        if (!options_.indent) return;
        out_ += '\n';
        check_string_size(out_.size() + options_.indent->size() * static_cast<std::size_t>(level));
        for (int i = 0; i < level; ++i) out_ += *options_.indent;
    }

    void write_array(const std::vector<Value>& items, int level) {
        if (items.empty()) {
            out_ += "[]";
            return;
        }
        out_ += '[';
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (i > 0) out_ += item_sep_;
            newline(level + 1);
            write(items[i], level + 1);
        }
        newline(level);
        out_ += ']';
    }

    // Python converts keys to strings: str as is; True -> "true"; None -> "null"; numbers by repr.
    std::string key_string(const Value& key) {
        switch (key.kind()) {
            case Value::Kind::string:
                return key.str();
            case Value::Kind::boolean:
                return key.as_bool() ? "true" : "false";
            case Value::Kind::none:
                return "null";
            case Value::Kind::integer:
                return std::to_string(key.as_int());
            case Value::Kind::floating:
                return float_json(key.as_double());
            default:
                throw Error(ErrorKind::runtime, "keys must be str, int, float, bool or None, not " + key.type_name());
        }
    }

    void write_object(const Dict& dict, int level) {
        if (dict.entries.empty()) {
            out_ += "{}";
            return;
        }
        std::vector<const std::pair<Value, Value>*> entries;
        for (const auto& entry : dict.entries) entries.push_back(&entry);
        if (options_.sort_keys) {
            for (const auto* entry : entries) {
                if (!entry->first.is_string()) {
                    throw Error(ErrorKind::runtime, "'<' not supported between dict keys of different types");
                }
            }
            std::stable_sort(entries.begin(), entries.end(),
                             [](const auto* a, const auto* b) { return a->first.str() < b->first.str(); });
        }
        out_ += '{';
        bool first = true;
        for (const auto* entry : entries) {
            if (!first) out_ += item_sep_;
            first = false;
            newline(level + 1);
            append_json_string(out_, key_string(entry->first), options_.ensure_ascii);
            out_ += key_sep_;
            write(entry->second, level + 1);
        }
        newline(level);
        out_ += '}';
    }

    const JsonOptions& options_;
    std::string item_sep_;
    std::string key_sep_;
    std::string out_;
};

}  // namespace

std::string to_json(const Value& value, const JsonOptions& options) {
    Writer writer(options);
    writer.write(value, 0);
    return writer.take();
}

}  // namespace tfx::jinja
