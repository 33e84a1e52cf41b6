#include "jinja/value.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <nlohmann/json.hpp>

#include "jinja/error.h"

namespace tfx::jinja {
namespace {

thread_local WorkBudget* current_budget = nullptr;

// Rough heap cost of a value beyond its payload (control block, allocation).
constexpr std::size_t kValueOverhead = 64;

int depth_of_items(const std::vector<Value>& items) {
    int depth = 0;
    for (const Value& v : items) depth = std::max(depth, v.depth());
    return depth + 1;
}

void check_depth(int depth) {
    check_value_depth(depth);
}

Value from_json_at(const nlohmann::ordered_json& json, int depth) {
    check_depth(depth);
    switch (json.type()) {
        case nlohmann::ordered_json::value_t::null:
            return Value::none();
        case nlohmann::ordered_json::value_t::boolean:
            return Value::boolean(json.get<bool>());
        case nlohmann::ordered_json::value_t::number_integer:
            return Value::integer(json.get<std::int64_t>());
        case nlohmann::ordered_json::value_t::number_unsigned: {
            const auto u = json.get<std::uint64_t>();
            if (u <= static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
                return Value::integer(static_cast<std::int64_t>(u));
            }
            return Value::floating(static_cast<double>(u));  // beyond int64: keep the magnitude
        }
        case nlohmann::ordered_json::value_t::number_float:
            return Value::floating(json.get<double>());
        case nlohmann::ordered_json::value_t::string:
            return Value::string(json.get<std::string>());
        case nlohmann::ordered_json::value_t::array: {
            std::vector<Value> items;
            items.reserve(json.size());
            for (const auto& item : json) items.push_back(from_json_at(item, depth + 1));
            return Value::list(std::move(items));
        }
        case nlohmann::ordered_json::value_t::object: {
            std::vector<std::pair<Value, Value>> entries;
            entries.reserve(json.size());
            for (const auto& [key, item] : json.items()) {
                entries.emplace_back(Value::string(key), from_json_at(item, depth + 1));
            }
            return Value::dict(std::move(entries));
        }
        case nlohmann::ordered_json::value_t::binary:
        case nlohmann::ordered_json::value_t::discarded:
            break;
    }
    throw Error(ErrorKind::runtime, "unsupported JSON value");
}

bool set_like_equal(const Sequence& a, const Sequence& b) {
    if (a.items.size() != b.items.size()) return false;
    return std::all_of(a.items.begin(), a.items.end(), [&](const Value& x) {
        return std::any_of(b.items.begin(), b.items.end(), [&](const Value& y) { return py_equal(x, y); });
    });
}

}  // namespace

Value Value::undefined(std::string hint) {
    return Value(Undefined{std::make_shared<const std::string>(std::move(hint))});
}

Value Value::string(std::string s) {
    charge_work(s.size() + kValueOverhead);
    return Value(std::shared_ptr<const std::string>(std::make_shared<const std::string>(std::move(s))));
}

Value Value::sequence(SeqKind kind, std::vector<Value> items) {
    charge_work(items.size() * sizeof(Value) + kValueOverhead);
    auto seq = std::make_shared<Sequence>();
    seq->kind = kind;
    seq->depth = depth_of_items(items);
    check_depth(seq->depth);
    seq->items = std::move(items);
    return Value(std::shared_ptr<const Sequence>(std::move(seq)));
}

Value Value::range(std::int64_t start, std::int64_t stop, std::int64_t step) {
    std::vector<Value> items;
    for (std::int64_t i = start; step > 0 ? i < stop : i > stop; i += step) items.push_back(integer(i));
    charge_work(items.size() * sizeof(Value) + kValueOverhead);
    auto seq = std::make_shared<Sequence>();
    seq->kind = SeqKind::range;
    seq->items = std::move(items);
    seq->range_start = start;
    seq->range_stop = stop;
    seq->range_step = step;
    return Value(std::shared_ptr<const Sequence>(std::move(seq)));
}

Value Value::dict(std::vector<std::pair<Value, Value>> entries) {
    charge_work(entries.size() * 2 * sizeof(Value) + kValueOverhead);
    auto dict = std::make_shared<Dict>();
    int depth = 0;
    for (const auto& [key, value] : entries) depth = std::max({depth, key.depth(), value.depth()});
    dict->depth = depth + 1;
    check_depth(dict->depth);
    dict->entries = std::move(entries);
    return Value(std::shared_ptr<const Dict>(std::move(dict)));
}

Value Value::object(std::shared_ptr<Object> object) {
    return Value(std::move(object));
}

Value Value::from_json(const nlohmann::ordered_json& json) {
    return from_json_at(json, 0);
}

std::int64_t Value::as_int() const {
    return is_bool() ? (as_bool() ? 1 : 0) : std::get<std::int64_t>(data_);
}

double Value::as_double() const {
    return is_float() ? std::get<double>(data_) : static_cast<double>(as_int());
}

const std::string& Value::undefined_hint() const {
    return *std::get<Undefined>(data_).hint;
}

int Value::depth() const {
    if (is_sequence()) return seq().depth;
    if (is_dict()) return dict().depth;
    if (is_object()) return obj().value_depth();
    return 0;
}

bool Value::truthy() const {
    switch (kind()) {
        case Kind::undefined:
        case Kind::none:
            return false;
        case Kind::boolean:
            return as_bool();
        case Kind::integer:
            return as_int() != 0;
        case Kind::floating:
            return as_double() != 0.0;
        case Kind::string:
            return !str().empty();
        case Kind::sequence:
            return seq().kind == SeqKind::generator || !seq().items.empty();
        case Kind::dict:
            return !dict().entries.empty();
        case Kind::object:
            return true;
    }
    return false;
}

std::string Value::type_name() const {
    switch (kind()) {
        case Kind::undefined:
            return "Undefined";
        case Kind::none:
            return "NoneType";
        case Kind::boolean:
            return "bool";
        case Kind::integer:
            return "int";
        case Kind::floating:
            return "float";
        case Kind::string:
            return "str";
        case Kind::dict:
            return "dict";
        case Kind::object:
            return obj().type_name();
        case Kind::sequence:
            switch (seq().kind) {
                case SeqKind::list:
                    return "list";
                case SeqKind::tuple:
                    return "tuple";
                case SeqKind::range:
                    return "range";
                case SeqKind::generator:
                    return "generator";
                case SeqKind::dict_keys:
                    return "dict_keys";
                case SeqKind::dict_values:
                    return "dict_values";
                case SeqKind::dict_items:
                    return "dict_items";
            }
    }
    return "object";
}

bool Value::same_object(const Value& other) const {
    if (kind() != other.kind()) return false;
    switch (kind()) {
        case Kind::undefined:
            return false;  // every undefined lookup is a new object
        case Kind::none:
            return true;
        case Kind::boolean:
        case Kind::integer:
        case Kind::floating:
        case Kind::string:
            return py_equal(*this, other);  // small ints and interned strings in CPython
        case Kind::sequence:
            return &seq() == &other.seq();
        case Kind::dict:
            return &dict() == &other.dict();
        case Kind::object:
            return &obj() == &other.obj();
    }
    return false;
}

const Value* Dict::find(const Value& key) const {
    for (const auto& [k, v] : entries) {
        if (py_equal(k, key)) return &v;
    }
    return nullptr;
}

const Value* Dict::find(std::string_view key) const {
    for (const auto& [k, v] : entries) {
        if (k.is_string() && k.str() == key) return &v;
    }
    return nullptr;
}

std::string Object::repr() const {
    return "<" + type_name() + " object>";
}

Value Object::get_attr(std::string_view name) const {
    return Value::undefined("'" + type_name() + " object' has no attribute '" + std::string(name) + "'");
}

Value Object::call(CallArgs&) {
    throw Error(ErrorKind::runtime, "'" + type_name() + "' object is not callable");
}

Value make_function(std::string name, Function::Body body, std::string repr) {
    return Value::object(std::make_shared<Function>(std::move(name), std::move(body), std::move(repr)));
}

Value make_bound_method(std::string name, const Value& receiver, Function::Body body) {
    const int depth = receiver.depth() + 1;
    check_value_depth(depth);
    return Value::object(std::make_shared<Function>(std::move(name), std::move(body), std::string(), depth));
}

void check_value_depth(int depth) {
    if (depth > kMaxValueDepth) {
        throw Error(ErrorKind::runtime, "value nesting exceeds " + std::to_string(kMaxValueDepth) + " levels");
    }
}

bool py_equal(const Value& a, const Value& b) {
    using Kind = Value::Kind;
    if (a.is_number() && b.is_number()) {
        if (a.is_integral() && b.is_integral()) return a.as_int() == b.as_int();
        return a.as_double() == b.as_double();
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
        case Kind::undefined:
        case Kind::none:
            return true;
        case Kind::string:
            return a.str() == b.str();
        case Kind::sequence: {
            const Sequence& x = a.seq();
            const Sequence& y = b.seq();
            const bool ordered_kind = x.kind == SeqKind::list || x.kind == SeqKind::tuple || x.kind == SeqKind::range;
            if (x.kind != y.kind) return false;
            if (ordered_kind) {
                return std::equal(x.items.begin(), x.items.end(), y.items.begin(), y.items.end(), py_equal);
            }
            if (x.kind == SeqKind::dict_keys || x.kind == SeqKind::dict_items) return set_like_equal(x, y);
            return &x == &y;
        }
        case Kind::dict: {
            const Dict& x = a.dict();
            const Dict& y = b.dict();
            if (x.entries.size() != y.entries.size()) return false;
            return std::all_of(x.entries.begin(), x.entries.end(), [&](const auto& entry) {
                const Value* other = y.find(entry.first);
                return other != nullptr && py_equal(entry.second, *other);
            });
        }
        case Kind::object:
            return &a.obj() == &b.obj();
        case Kind::boolean:
        case Kind::integer:
        case Kind::floating:
            break;
    }
    return false;
}

void check_string_size(std::size_t bytes) {
    if (bytes > kMaxStringBytes) {
        throw Error(ErrorKind::runtime, "string exceeds " + std::to_string(kMaxStringBytes >> 20) + " MiB");
    }
}

WorkBudget::WorkBudget(std::size_t bytes) : remaining_(bytes), previous_(current_budget) {
    current_budget = this;
}

WorkBudget::~WorkBudget() {
    current_budget = previous_;
}

void charge_work(std::size_t bytes) {
    WorkBudget* budget = current_budget;
    if (budget == nullptr) return;
    if (bytes > budget->remaining_) {
        budget->remaining_ = 0;
        throw Error(ErrorKind::runtime, "the template exceeded its work budget (too much data built or scanned)");
    }
    budget->remaining_ -= bytes;
}

bool is_hashable(const Value& v) {
    if (v.is_dict()) return false;
    if (!v.is_sequence()) return true;
    const Sequence& s = v.seq();
    if (s.kind == SeqKind::range || s.kind == SeqKind::generator) return true;
    if (s.kind != SeqKind::tuple) return false;
    return std::all_of(s.items.begin(), s.items.end(), is_hashable);
}

}  // namespace tfx::jinja
