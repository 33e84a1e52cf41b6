// Attribute and item access with the rules of Jinja2's sandboxed environment: `a.b` tries the
// Python attribute (a method) first and then the key; `a['b']` tries the key first. Failed
// lookups give an undefined value instead of an error, except on an undefined object.
#include <algorithm>
#include <limits>

#include "jinja/methods.h"
#include "jinja/pyrepr.h"
#include "jinja/runtime.h"
#include "jinja/unicode.h"

namespace tfx::jinja {
namespace {

// dict methods that exist in Python but that the immutable sandbox refuses to hand out.
constexpr std::string_view kRefusedDictMethods[] = {"pop", "popitem", "setdefault", "update", "clear", "fromkeys"};

// Jinja2's wording for undefined results of failed lookups.
std::string object_type_repr(const Value& object) {
    return object.is_none() ? "None" : object.type_name() + " object";
}

Value missing_attribute(const Value& object, std::string_view name) {
    return Value::undefined(string_repr(object_type_repr(object)) + " has no attribute " + string_repr(name));
}

Value missing_item(const Value& object, const Value& key) {
    if (key.is_string()) return missing_attribute(object, key.str());
    return Value::undefined(object_type_repr(object) + " has no element " + py_repr(key));
}

// Python's slice index normalisation (PySlice_AdjustIndices) for a sequence of `length`.
struct SliceRange {
    std::int64_t start, stop, step;
};

SliceRange adjust(std::int64_t length, const std::optional<std::int64_t>& start_arg,
                  const std::optional<std::int64_t>& stop_arg, const std::optional<std::int64_t>& step_arg) {
    const std::int64_t step = step_arg.value_or(1);
    if (step == 0) throw_runtime("slice step cannot be zero");
    auto clamp = [&](std::int64_t i) {
        if (i < 0) {
            i += length;
            if (i < 0) i = step < 0 ? -1 : 0;
        } else if (i >= length) {
            i = step < 0 ? length - 1 : length;
        }
        return i;
    };
    const std::int64_t start = start_arg ? clamp(*start_arg) : (step < 0 ? length - 1 : 0);
    const std::int64_t stop = stop_arg ? clamp(*stop_arg) : (step < 0 ? -1 : length);
    return {start, stop, step};
}

template <class Fn>
void for_each_index(const SliceRange& r, Fn fn) {
    for (std::int64_t i = r.start; r.step > 0 ? i < r.stop : i > r.stop; i += r.step) {
        fn(static_cast<std::size_t>(i));
        if ((r.step > 0 && i > std::numeric_limits<std::int64_t>::max() - r.step) ||
            (r.step < 0 && i < std::numeric_limits<std::int64_t>::min() - r.step)) {
            break;
        }
    }
}

Value index_sequence(const Value& object, std::int64_t index) {
    if (object.is_string()) {
        const std::u32string cps = unicode::decode(object.str());
        const auto n = static_cast<std::int64_t>(cps.size());
        if (index < 0) index += n;
        if (index < 0 || index >= n) return Value::undefined("string index out of range");
        std::string out;
        unicode::append_utf8(out, cps[static_cast<std::size_t>(index)]);
        return Value::string(std::move(out));
    }
    const auto& items = object.seq().items;
    const auto n = static_cast<std::int64_t>(items.size());
    if (index < 0) index += n;
    if (index < 0 || index >= n) return Value::undefined(object.type_name() + " index out of range");
    return items[static_cast<std::size_t>(index)];
}

}  // namespace

Value get_attr(const Value& object, std::string_view name) {
    switch (object.kind()) {
        case Value::Kind::undefined:
            throw_undefined(object);
        case Value::Kind::object:
            return object.obj().get_attr(name);
        case Value::Kind::dict: {
            if (auto method = find_method(object, name)) return *method;
            if (std::find(std::begin(kRefusedDictMethods), std::end(kRefusedDictMethods), name) !=
                std::end(kRefusedDictMethods)) {
                return Value::undefined("access to attribute '" + std::string(name) + "' of 'dict' object is unsafe.");
            }
            if (const Value* v = object.dict().find(name)) return *v;
            return missing_attribute(object, name);
        }
        default:
            if (auto method = find_method(object, name)) return *method;
            return missing_attribute(object, name);
    }
}

Value get_item(const Value& object, const Value& key) {
    if (object.is_undefined()) throw_undefined(object);
    if (object.is_dict()) {
        if (is_hashable(key)) {
            if (const Value* v = object.dict().find(key)) return *v;
        }
    } else if (object.is_string() || (object.is_sequence() && object.seq().subscriptable())) {
        if (key.is_integral()) return index_sequence(object, key.as_int());
    } else if (object.is_object() && key.is_string()) {
        return object.obj().get_attr(key.str());
    }
    // Jinja falls back to the attribute of that name (so d['items'] can be the dict method).
    if (key.is_string()) {
        if (auto method = find_method(object, key.str())) return *method;
    }
    return missing_item(object, key);
}

Value slice(const Value& object, const std::optional<std::int64_t>& start, const std::optional<std::int64_t>& stop,
            const std::optional<std::int64_t>& step) {
    if (object.is_undefined()) throw_undefined(object);
    if (object.is_string()) {
        const std::u32string cps = unicode::decode(object.str());
        const SliceRange r = adjust(static_cast<std::int64_t>(cps.size()), start, stop, step);
        std::u32string out;
        for_each_index(r, [&](std::size_t i) { out += cps[i]; });
        return Value::string(unicode::encode(out));
    }
    if (object.is_seq(SeqKind::range)) {  // a slice of a range is a range
        const Sequence& s = object.seq();
        const SliceRange r = adjust(static_cast<std::int64_t>(s.items.size()), start, stop, step);
        return Value::range(s.range_start + r.start * s.range_step, s.range_start + r.stop * s.range_step,
                            s.range_step * r.step);
    }
    if (object.is_sequence() && object.seq().subscriptable()) {
        const auto& items = object.seq().items;
        const SliceRange r = adjust(static_cast<std::int64_t>(items.size()), start, stop, step);
        std::vector<Value> out;
        for_each_index(r, [&](std::size_t i) { out.push_back(items[i]); });
        return Value::sequence(object.seq().kind == SeqKind::tuple ? SeqKind::tuple : SeqKind::list, std::move(out));
    }
    // Jinja compiles slices to a plain Python subscript, so failures raise instead of giving undefined.
    if (object.is_dict()) throw_runtime("unhashable type: 'slice'");
    throw_runtime("'" + object.type_name() + "' object is not subscriptable");
}

}  // namespace tfx::jinja
