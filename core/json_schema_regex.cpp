#include "core/json_schema_regex.h"

#include <set>

#include "tfx/sdk/error.hpp"

namespace tfx {
namespace {

const std::string kSpace = "[ ]?";
// One character of a JSON string: printable ASCII but '"' and '\', a simple escape, or a UTF-8
// sequence of 2-4 bytes (so the text always decodes).
const std::string kChar =
    R"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\/bfnrt]|[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}))";
const std::string kInteger = "-?(?:0|[1-9][0-9]{0,15})";
const std::string kNumber = kInteger + R"((?:\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,3})?)";

// Keywords that only annotate, or that the regex satisfies by construction.
const std::set<std::string, std::less<>> kAnnotations = {"title",
                                                         "description",
                                                         "$schema",
                                                         "$id",
                                                         "$comment",
                                                         "examples",
                                                         "default",
                                                         "deprecated",
                                                         "readOnly",
                                                         "writeOnly",
                                                         "additionalProperties",
                                                         "required",
                                                         "strict",
                                                         "$defs",
                                                         "definitions",
                                                         "name"};

std::string escape_literal(const std::string& text) {
    std::string out;
    for (unsigned char c : text) {
        if (std::string_view("\\.^$|?*+()[]{}").find(static_cast<char>(c)) != std::string_view::npos) {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c >= 0x7f) {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string quantified(const std::string& atom, int64_t lo, int64_t hi) {
    if (hi < 0) return lo == 0 ? atom + "*" : (lo == 1 ? atom + "+" : atom + "{" + std::to_string(lo) + ",}");
    if (lo == hi) return atom + "{" + std::to_string(lo) + "}";
    return atom + "{" + std::to_string(lo) + "," + std::to_string(hi) + "}";
}

class Compiler {
  public:
    explicit Compiler(const nlohmann::ordered_json& root) : root_(root) {}

    std::string value(const nlohmann::ordered_json& s, const std::string& path, int depth) {
        if (depth > 16) fail(path, "nests too deep (a recursive $ref?)");
        if (s.is_boolean()) {
            if (!s.get<bool>()) fail(path, "is false: no value is valid");
            return any(3);
        }
        if (!s.is_object()) fail(path, "expected a schema object");
        for (const auto& [key, v] : s.items()) {
            static const std::set<std::string, std::less<>> handled = {
                "type",      "enum",      "const",   "properties", "items", "prefixItems", "minItems", "maxItems",
                "minLength", "maxLength", "pattern", "format",     "anyOf", "oneOf",       "$ref"};
            if (!handled.contains(key) && !kAnnotations.contains(key))
                fail(path + "/" + key, "is not supported in constrained decoding");
        }
        if (s.contains("$ref")) return value(resolve(s.at("$ref"), path), path + "/$ref", depth + 1);
        if (s.contains("const")) return escape_literal(s.at("const").dump());
        if (s.contains("enum")) {
            if (!s.at("enum").is_array() || s.at("enum").empty()) fail(path + "/enum", "expected a non-empty list");
            std::string alt;
            for (const auto& v : s.at("enum")) alt += (alt.empty() ? "" : "|") + escape_literal(v.dump());
            return "(?:" + alt + ")";
        }
        for (const char* key : {"anyOf", "oneOf"}) {
            if (!s.contains(key)) continue;
            if (!s.at(key).is_array() || s.at(key).empty()) fail(path + "/" + key, "expected a non-empty list");
            std::string alt;
            for (size_t i = 0; i < s.at(key).size(); ++i)
                alt += (alt.empty() ? "" : "|") +
                       value(s.at(key)[i], path + "/" + key + "/" + std::to_string(i), depth + 1);
            return "(?:" + alt + ")";
        }
        if (!s.contains("type")) {
            if (s.contains("properties")) return object(s, path, depth);
            if (s.contains("items") || s.contains("prefixItems")) return array(s, path, depth);
            return any(3);
        }
        const auto& type = s.at("type");
        if (type.is_array()) {
            std::string alt;
            for (const auto& t : type) alt += (alt.empty() ? "" : "|") + typed(s, t, path, depth);
            return "(?:" + alt + ")";
        }
        return typed(s, type, path, depth);
    }

  private:
    [[noreturn]] static void fail(const std::string& path, const std::string& what) {
        throw sdk::Error(TFX_ERR_INVALID_ARGUMENT, "JSON schema #" + path + " " + what);
    }

    const nlohmann::ordered_json& resolve(const nlohmann::ordered_json& ref, const std::string& path) const {
        if (!ref.is_string()) fail(path + "/$ref", "expected a string");
        const std::string r = ref.get<std::string>();
        if (r.rfind("#", 0) != 0) fail(path + "/$ref", "'" + r + "' is not a reference into this schema");
        try {
            return root_.at(nlohmann::ordered_json::json_pointer(r.substr(1)));
        } catch (const nlohmann::ordered_json::exception&) {
            fail(path + "/$ref", "'" + r + "' names nothing in the schema");
        }
    }

    static int64_t count(const nlohmann::ordered_json& s, const char* key, int64_t fallback, const std::string& path) {
        if (!s.contains(key)) return fallback;
        const auto& v = s.at(key);
        if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 1000)
            fail(path + "/" + key, "expected an integer from 0 to 1000");
        return v.get<int64_t>();
    }

    std::string typed(const nlohmann::ordered_json& s, const nlohmann::ordered_json& type, const std::string& path,
                      int depth) {
        if (!type.is_string()) fail(path + "/type", "expected a type name");
        const std::string t = type.get<std::string>();
        if (t == "string") return string(s, path);
        if (t == "integer") return kInteger;
        if (t == "number") return kNumber;
        if (t == "boolean") return "(?:true|false)";
        if (t == "null") return "null";
        if (t == "object") return s.contains("properties") ? object(s, path, depth) : any_object(3);
        if (t == "array") return array(s, path, depth);
        fail(path + "/type", "'" + t + "' is not a JSON Schema type");
    }

    static std::string string(const nlohmann::ordered_json& s, const std::string& path) {
        if (s.contains("pattern")) {
            std::string p = s.at("pattern").get<std::string>();
            if (!p.empty() && p.front() == '^') p.erase(0, 1);
            if (!p.empty() && p.back() == '$') p.pop_back();
            return "\"(?:" + p + ")\"";
        }
        if (s.contains("format")) {
            const std::string f = s.at("format").get<std::string>();
            // Calendar dates: 30-day months, February's 28 days, and the 29th in leap years.
            const std::string year = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)";
            const std::string leap =
                "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)";
            const std::string date =
                "(?:" + year +
                "-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|"
                "02-(?:0[1-9]|1[0-9]|2[0-8]))|" +
                leap + "-02-29)";
            const std::string time =
                R"((?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?(?:Z|[+-][0-9]{2}:[0-9]{2})?)";
            if (f == "date") return "\"" + date + "\"";
            if (f == "time") return "\"" + time + "\"";
            if (f == "date-time") return "\"" + date + "T" + time + "\"";
            if (f == "uuid") return R"("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")";
            // Other formats only annotate (JSON Schema's default): any string.
        }
        const int64_t lo = count(s, "minLength", 0, path), hi = count(s, "maxLength", -1, path);
        if (hi >= 0 && hi < lo) fail(path + "/maxLength", "is below minLength");
        return "\"" + quantified(kChar, lo, hi) + "\"";
    }

    std::string object(const nlohmann::ordered_json& s, const std::string& path, int depth) {
        const auto& props = s.at("properties");
        if (!props.is_object()) fail(path + "/properties", "expected an object");
        if (props.empty()) return R"(\{)" + kSpace + R"(\})";
        std::string out = R"(\{)" + kSpace;
        bool first = true;
        for (const auto& [name, sub] : props.items()) {
            if (!first) out += kSpace + "," + kSpace;
            first = false;
            out += escape_literal(nlohmann::ordered_json(name).dump()) + kSpace + ":" + kSpace +
                   value(sub, path + "/properties/" + name, depth + 1);
        }
        return out + kSpace + R"(\})";
    }

    std::string array(const nlohmann::ordered_json& s, const std::string& path, int depth) {
        const int64_t lo = count(s, "minItems", 0, path), hi = count(s, "maxItems", -1, path);
        if (hi >= 0 && hi < lo) fail(path + "/maxItems", "is below minItems");
        const std::string open = R"(\[)" + kSpace, close = kSpace + R"(\])", sep = kSpace + "," + kSpace;
        if (s.contains("prefixItems")) {  // a tuple: exactly these items
            std::string out = open;
            for (size_t i = 0; i < s.at("prefixItems").size(); ++i)
                out += (i ? sep : "") +
                       value(s.at("prefixItems")[i], path + "/prefixItems/" + std::to_string(i), depth + 1);
            return out + close;
        }
        const std::string item = s.contains("items") ? value(s.at("items"), path + "/items", depth + 1) : any(2);
        const std::string more = "(?:" + sep + item + ")";
        if (hi == 0) return open + close;
        const std::string items = item + quantified(more, std::max<int64_t>(lo - 1, 0), hi < 0 ? -1 : hi - 1);
        return open + (lo == 0 ? "(?:" + items + ")?" : items) + close;
    }

    static std::string any_object(int depth) {
        const std::string member = R"("(?:)" + kChar + R"()*")" + kSpace + ":" + kSpace + any(depth - 1);
        return R"(\{)" + kSpace + "(?:" + member + "(?:" + kSpace + "," + kSpace + member + ")*)?" + kSpace + R"(\})";
    }

  public:
    // Any JSON value; objects and arrays nest at most `depth` deep.
    static std::string any(int depth) {
        std::string alt = R"("(?:)" + kChar + R"()*"|)" + kNumber + "|true|false|null";
        if (depth > 0) {
            const std::string element = any(depth - 1);
            alt += "|" + any_object(depth) + "|" + R"(\[)" + kSpace + "(?:" + element + "(?:" + kSpace + "," + kSpace +
                   element + ")*)?" + kSpace + R"(\])";
        }
        return "(?:" + alt + ")";
    }
    static std::string object_of_anything(int depth) { return any_object(depth); }

  private:
    const nlohmann::ordered_json& root_;
};

}  // namespace

std::string json_schema_regex(const nlohmann::ordered_json& schema) {
    return Compiler(schema).value(schema, "", 0);
}

std::string json_object_regex(int max_depth) {
    return Compiler::object_of_anything(max_depth);
}

}  // namespace tfx
