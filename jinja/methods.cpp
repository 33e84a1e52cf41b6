#include "jinja/methods.h"

#include <algorithm>

#include "jinja/format.h"
#include "jinja/pyrepr.h"
#include "jinja/pystr.h"
#include "jinja/runtime.h"
#include "jinja/unicode.h"

namespace tfx::jinja {
namespace {

using Method = Value (*)(const Value& self, const CallArgs& args);

std::optional<std::string> optional_chars(const BoundArgs& a, std::size_t i, std::string_view method) {
    if (!a.has(i) || a.get(i).is_none()) return std::nullopt;
    if (!a.get(i).is_string()) {
        throw_runtime(std::string(method) + " arg must be None or str");
    }
    return a.get(i).str();
}

const std::string& string_arg(const BoundArgs& a, std::size_t i, std::string_view method) {
    const Value& v = a.get(i);
    if (!v.is_string()) throw_runtime(std::string(method) + "() argument must be str, not " + v.type_name());
    return v.str();
}

pystr::Bounds bounds(const BoundArgs& a, std::size_t first) {
    return {a.int_or_none(first), a.int_or_none(first + 1)};
}

Value string_list(std::vector<std::string> parts) {
    std::vector<Value> items;
    items.reserve(parts.size());
    for (auto& p : parts) items.push_back(Value::string(std::move(p)));
    return Value::list(std::move(items));
}

char32_t fill_char(const BoundArgs& a, std::size_t i) {
    if (!a.has(i)) return U' ';
    const Value& v = a.get(i);
    const std::u32string cps = v.is_string() ? unicode::decode(v.str()) : std::u32string();
    if (cps.size() != 1) throw_runtime("The fill character must be exactly one character long");
    return cps[0];
}

Value strip_method(const Value& self, const CallArgs& args, std::string_view name, pystr::StripSide side) {
    BoundArgs a(name, args, {"chars"});
    return Value::string(pystr::strip(self.str(), optional_chars(a, 0, name), side));
}

template <bool Ends>
Value affix_test(const Value& self, const CallArgs& args) {
    const char* name = Ends ? "endswith" : "startswith";
    BoundArgs a(name, args, {"prefix", "start", "end"});
    const Value& affix = a.get(0);
    const pystr::Bounds b = bounds(a, 1);
    auto test = [&](const Value& v) {
        if (!v.is_string())
            throw_runtime(std::string(name) + " first arg must be str or a tuple of str, not " + v.type_name());
        return Ends ? pystr::endswith(self.str(), v.str(), b) : pystr::startswith(self.str(), v.str(), b);
    };
    if (affix.is_seq(SeqKind::tuple)) {
        return Value::boolean(std::any_of(affix.seq().items.begin(), affix.seq().items.end(), test));
    }
    return Value::boolean(test(affix));
}

template <bool Reverse, bool Raise>
Value find_method_impl(const Value& self, const CallArgs& args) {
    BoundArgs a(Raise ? (Reverse ? "rindex" : "index") : (Reverse ? "rfind" : "find"), args, {"sub", "start", "end"});
    const std::string& sub = string_arg(a, 0, "find");
    const std::int64_t at =
        Reverse ? pystr::rfind(self.str(), sub, bounds(a, 1)) : pystr::find(self.str(), sub, bounds(a, 1));
    if (Raise && at < 0) throw_runtime("substring not found");
    return Value::integer(at);
}

Value partition(const Value& self, const CallArgs& args, bool reverse) {
    BoundArgs a(reverse ? "rpartition" : "partition", args, {"sep"});
    const std::string& sep = string_arg(a, 0, "partition");
    if (sep.empty()) throw_runtime("empty separator");
    const std::string& s = self.str();
    const std::size_t at = reverse ? s.rfind(sep) : s.find(sep);
    if (at == std::string::npos) {
        return reverse ? Value::tuple({Value::string(""), Value::string(""), self})
                       : Value::tuple({self, Value::string(""), Value::string("")});
    }
    return Value::tuple({Value::string(s.substr(0, at)), Value::string(sep), Value::string(s.substr(at + sep.size()))});
}

Value join_strings(const Value& self, const CallArgs& args) {
    BoundArgs a("join", args, {"iterable"});
    std::string out;
    std::size_t index = 0;
    for (const Value& item : iterate(require_defined(a.get(0)))) {
        if (!item.is_string()) {
            throw_runtime("sequence item " + std::to_string(index) + ": expected str instance, " + item.type_name() +
                          " found");
        }
        if (index++ > 0) out += self.str();
        out += item.str();
        check_string_size(out.size());
    }
    return Value::string(std::move(out));
}

Value call_str_method(std::string_view name, const Value& self, const CallArgs& args) {
    using pystr::StripSide;
    const std::string& s = self.str();
    auto no_args = [&](std::string_view n) { BoundArgs(n, args, {}); };
    if (name == "strip") return strip_method(self, args, name, StripSide::both);
    if (name == "lstrip") return strip_method(self, args, name, StripSide::left);
    if (name == "rstrip") return strip_method(self, args, name, StripSide::right);
    if (name == "split" || name == "rsplit") {
        BoundArgs a(name, args, {"sep", "maxsplit"});
        const auto sep = optional_chars(a, 0, name);
        const std::int64_t maxsplit = a.integer(1, -1);
        return string_list(name == "split" ? pystr::split(s, sep, maxsplit) : pystr::rsplit(s, sep, maxsplit));
    }
    if (name == "splitlines") {
        BoundArgs a(name, args, {"keepends"});
        return string_list(pystr::splitlines(s, a.boolean(0, false)));
    }
    if (name == "startswith") return affix_test<false>(self, args);
    if (name == "endswith") return affix_test<true>(self, args);
    if (name == "find") return find_method_impl<false, false>(self, args);
    if (name == "rfind") return find_method_impl<true, false>(self, args);
    if (name == "index") return find_method_impl<false, true>(self, args);
    if (name == "rindex") return find_method_impl<true, true>(self, args);
    if (name == "count") {
        BoundArgs a(name, args, {"sub", "start", "end"});
        return Value::integer(pystr::count(s, string_arg(a, 0, name), bounds(a, 1)));
    }
    if (name == "replace") {
        BoundArgs a(name, args, {"old", "new", "count"});
        return Value::string(pystr::replace(s, string_arg(a, 0, name), string_arg(a, 1, name), a.integer(2, -1)));
    }
    if (name == "upper") return no_args(name), Value::string(pystr::upper(s));
    if (name == "lower") return no_args(name), Value::string(pystr::lower(s));
    if (name == "casefold") return no_args(name), Value::string(pystr::casefold(s));
    if (name == "title") return no_args(name), Value::string(pystr::title(s));
    if (name == "capitalize") return no_args(name), Value::string(pystr::capitalize(s));
    if (name == "swapcase") return no_args(name), Value::string(pystr::swapcase(s));
    if (name == "isalpha") return no_args(name), Value::boolean(pystr::isalpha(s));
    if (name == "isdecimal") return no_args(name), Value::boolean(pystr::isdecimal(s));
    if (name == "isdigit") return no_args(name), Value::boolean(pystr::isdigit(s));
    if (name == "isnumeric") return no_args(name), Value::boolean(pystr::isnumeric(s));
    if (name == "isalnum") return no_args(name), Value::boolean(pystr::isalnum(s));
    if (name == "isspace") return no_args(name), Value::boolean(pystr::isspace(s));
    if (name == "isupper") return no_args(name), Value::boolean(pystr::isupper(s));
    if (name == "islower") return no_args(name), Value::boolean(pystr::islower(s));
    if (name == "istitle") return no_args(name), Value::boolean(pystr::istitle(s));
    if (name == "center" || name == "ljust" || name == "rjust") {
        BoundArgs a(name, args, {"width", "fillchar"});
        const std::int64_t width = require_int(a.get(0), "width");
        const char32_t fill = fill_char(a, 1);
        return Value::string(name == "center"  ? pystr::center(s, width, fill)
                             : name == "ljust" ? pystr::ljust(s, width, fill)
                                               : pystr::rjust(s, width, fill));
    }
    if (name == "zfill") {
        BoundArgs a(name, args, {"width"});
        return Value::string(pystr::zfill(s, require_int(a.get(0), "width")));
    }
    if (name == "partition") return partition(self, args, false);
    if (name == "rpartition") return partition(self, args, true);
    if (name == "removeprefix" || name == "removesuffix") {
        BoundArgs a(name, args, {"affix"});
        const std::string& affix = string_arg(a, 0, name);
        const bool prefix = name == "removeprefix";
        const bool has =
            s.size() >= affix.size() && (prefix ? s.compare(0, affix.size(), affix) == 0
                                                : s.compare(s.size() - affix.size(), affix.size(), affix) == 0);
        if (!has) return self;
        return Value::string(prefix ? s.substr(affix.size()) : s.substr(0, s.size() - affix.size()));
    }
    if (name == "join") return join_strings(self, args);
    if (name == "format") return Value::string(str_format(s, args));
    throw_runtime("no method " + std::string(name));
}

constexpr std::string_view kStrMethods[] = {
    "strip",    "lstrip",    "rstrip",     "split",        "rsplit",       "splitlines", "startswith", "endswith",
    "find",     "rfind",     "index",      "rindex",       "count",        "replace",    "upper",      "lower",
    "casefold", "title",     "capitalize", "swapcase",     "isalpha",      "isdigit",    "isdecimal",  "isnumeric",
    "isalnum",  "isspace",   "isupper",    "islower",      "istitle",      "center",     "ljust",      "rjust",
    "zfill",    "partition", "rpartition", "removeprefix", "removesuffix", "join",       "format"};

Value dict_view(const Value& self, SeqKind kind) {
    std::vector<Value> items;
    for (const auto& [k, v] : self.dict().entries) {
        items.push_back(kind == SeqKind::dict_keys ? k : kind == SeqKind::dict_values ? v : Value::tuple({k, v}));
    }
    return Value::sequence(kind, std::move(items));
}

Value call_dict_method(std::string_view name, const Value& self, const CallArgs& args) {
    if (name == "items") return BoundArgs(name, args, {}), dict_view(self, SeqKind::dict_items);
    if (name == "keys") return BoundArgs(name, args, {}), dict_view(self, SeqKind::dict_keys);
    if (name == "values") return BoundArgs(name, args, {}), dict_view(self, SeqKind::dict_values);
    if (name == "copy") return BoundArgs(name, args, {}), self;
    BoundArgs a("get", args, {"key", "default"});
    const Value& key = a.get(0);
    if (!is_hashable(key)) throw_runtime("unhashable type: '" + key.type_name() + "'");
    const Value* found = self.dict().find(key);
    return found ? *found : a.get_or(1, Value::none());
}

Value call_sequence_method(std::string_view name, const Value& self, const CallArgs& args) {
    const auto& items = self.seq().items;
    if (name == "copy") return BoundArgs(name, args, {}), Value::list(items);
    BoundArgs a(name, args, {"value"});
    const Value& needle = a.get(0);
    if (name == "count") {
        return Value::integer(
            std::count_if(items.begin(), items.end(), [&](const Value& v) { return py_equal(v, needle); }));
    }
    const auto it = std::find_if(items.begin(), items.end(), [&](const Value& v) { return py_equal(v, needle); });
    if (it == items.end()) throw_runtime(py_repr(needle) + " is not in " + self.type_name());
    return Value::integer(it - items.begin());
}

template <class Fn>
Value bind(const Value& self, std::string_view name, Fn fn) {
    std::string method(name);
    return make_bound_method(self.type_name() + "." + method, self,
                             [self, method, fn](CallArgs& args) { return fn(method, self, args); });
}

}  // namespace

std::optional<Value> find_method(const Value& receiver, std::string_view name) {
    if (receiver.is_string()) {
        if (std::find(std::begin(kStrMethods), std::end(kStrMethods), name) == std::end(kStrMethods))
            return std::nullopt;
        return bind(receiver, name, call_str_method);
    }
    if (receiver.is_dict()) {
        if (name != "items" && name != "keys" && name != "values" && name != "get" && name != "copy")
            return std::nullopt;
        return bind(receiver, name, call_dict_method);
    }
    if (receiver.is_list_or_tuple()) {
        const bool ok = name == "count" || name == "index" || (name == "copy" && receiver.is_seq(SeqKind::list));
        if (!ok) return std::nullopt;
        return bind(receiver, name, call_sequence_method);
    }
    return std::nullopt;
}

}  // namespace tfx::jinja
