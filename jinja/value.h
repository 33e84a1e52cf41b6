// The engine's data model: Python values as a Jinja2 template sees them.
//
// Containers are immutable once built and shared by pointer, so copying a Value is cheap. The only
// mutable things are objects (namespaces, generators' read position), as in Jinja's immutable
// sandbox.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tfx::jinja {

class Value;
struct Sequence;
struct Dict;
class Object;

// Python's sequence-like types differ in how they print, compare and can be used.
enum class SeqKind {
    list,
    tuple,
    range,
    generator,  // single pass: iterating consumes it; has no len() and is always true
    dict_keys,
    dict_values,
    dict_items,
};

struct Undefined {
    std::shared_ptr<const std::string> hint;  // why it is undefined, for error messages
};
struct None {};

struct CallArgs {
    std::vector<Value> positional;
    std::vector<std::pair<std::string, Value>> keyword;
};

class Value {
  public:
    enum class Kind { undefined, none, boolean, integer, floating, string, sequence, dict, object };

    Value() : data_(Undefined{}) {}
    static Value undefined(std::string hint);
    static Value none() { return Value(None{}); }
    static Value boolean(bool b) { return Value(b); }
    static Value integer(std::int64_t i) { return Value(i); }
    static Value floating(double d) { return Value(d); }
    static Value string(std::string s);
    static Value sequence(SeqKind kind, std::vector<Value> items);
    static Value list(std::vector<Value> items) { return sequence(SeqKind::list, std::move(items)); }
    static Value tuple(std::vector<Value> items) { return sequence(SeqKind::tuple, std::move(items)); }
    static Value range(std::int64_t start, std::int64_t stop, std::int64_t step);
    static Value dict(std::vector<std::pair<Value, Value>> entries);  // keys must be unique
    static Value object(std::shared_ptr<Object> object);
    static Value from_json(const nlohmann::ordered_json& json);

    Kind kind() const { return static_cast<Kind>(data_.index()); }
    bool is_undefined() const { return kind() == Kind::undefined; }
    bool is_none() const { return kind() == Kind::none; }
    bool is_bool() const { return kind() == Kind::boolean; }
    bool is_int() const { return kind() == Kind::integer; }
    bool is_float() const { return kind() == Kind::floating; }
    bool is_number() const { return is_bool() || is_int() || is_float(); }  // Python: bool is an int
    bool is_integral() const { return is_bool() || is_int(); }
    bool is_string() const { return kind() == Kind::string; }
    bool is_sequence() const { return kind() == Kind::sequence; }
    bool is_dict() const { return kind() == Kind::dict; }
    bool is_object() const { return kind() == Kind::object; }
    bool is_seq(SeqKind k) const;
    bool is_list_or_tuple() const;

    bool as_bool() const { return std::get<bool>(data_); }
    std::int64_t as_int() const;  // bool or int
    double as_double() const;     // any number
    const std::string& str() const { return *std::get<std::shared_ptr<const std::string>>(data_); }
    const Sequence& seq() const { return *std::get<std::shared_ptr<const Sequence>>(data_); }
    const Dict& dict() const { return *std::get<std::shared_ptr<const Dict>>(data_); }
    Object& obj() const { return *std::get<std::shared_ptr<Object>>(data_); }
    const std::string& undefined_hint() const;

    // Nesting depth of containers and of objects holding values (a scalar is 0); bounded so
    // that printing, comparing and destroying values cannot exhaust the stack.
    int depth() const;

    bool truthy() const;
    std::string type_name() const;               // Python's type(x).__name__, for error messages
    bool same_object(const Value& other) const;  // Python `is`

  private:
    template <class T>
    explicit Value(T v) : data_(std::move(v)) {}

    std::variant<Undefined, None, bool, std::int64_t, double, std::shared_ptr<const std::string>,
                 std::shared_ptr<const Sequence>, std::shared_ptr<const Dict>, std::shared_ptr<Object>>
        data_;
};

struct Sequence {
    SeqKind kind = SeqKind::list;
    std::vector<Value> items;
    std::int64_t range_start = 0, range_stop = 0, range_step = 1;  // only for SeqKind::range
    int depth = 1;
    mutable std::size_t consumed = 0;  // items a generator has already handed out

    bool has_len() const { return kind != SeqKind::generator; }
    bool subscriptable() const { return kind == SeqKind::list || kind == SeqKind::tuple || kind == SeqKind::range; }
};

struct Dict {
    std::vector<std::pair<Value, Value>> entries;  // insertion order, as Python dicts keep it
    int depth = 1;

    const Value* find(const Value& key) const;  // nullptr when absent
    const Value* find(std::string_view key) const;
};

inline bool Value::is_seq(SeqKind k) const {
    return is_sequence() && seq().kind == k;
}
inline bool Value::is_list_or_tuple() const {
    return is_seq(SeqKind::list) || is_seq(SeqKind::tuple);
}

// Values with behaviour: callables, namespaces, loop contexts, cyclers.
class Object : public std::enable_shared_from_this<Object> {
  public:
    virtual ~Object() = default;
    virtual std::string type_name() const = 0;
    virtual std::string repr() const;
    virtual Value get_attr(std::string_view name) const;  // undefined unless overridden
    virtual bool is_callable() const { return false; }
    virtual Value call(CallArgs& args);
    // Nesting depth of the values the object owns (see Value::depth). Namespaces report 0: they
    // are emptied when the render ends, which ends any chain or cycle through them.
    virtual int value_depth() const { return 0; }
};

// A builtin or bound method; macros are functions too.
class Function : public Object {
  public:
    using Body = std::function<Value(CallArgs&)>;
    // depth: nesting depth of the values the body captured (a bound method's receiver).
    Function(std::string name, Body body, std::string repr = {}, int depth = 0)
        : name_(std::move(name)), body_(std::move(body)), repr_(std::move(repr)), depth_(depth) {}
    std::string type_name() const override { return "function"; }
    std::string repr() const override { return repr_.empty() ? "<function " + name_ + ">" : repr_; }
    bool is_callable() const override { return true; }
    Value call(CallArgs& args) override { return body_(args); }
    int value_depth() const override { return depth_; }
    const std::string& name() const { return name_; }

  private:
    std::string name_;
    Body body_;
    std::string repr_;
    int depth_;
};

Value make_function(std::string name, Function::Body body, std::string repr = {});
// A method bound to `receiver`, which the body captured.
Value make_bound_method(std::string name, const Value& receiver, Function::Body body);

// Throws when a value would nest deeper than kMaxValueDepth.
void check_value_depth(int depth);

// Python hashing equality for dict keys and `in`: 1 == 1.0 == True; containers by value.
bool py_equal(const Value& a, const Value& b);
// Keys Python can hash (not list, dict, ...).
bool is_hashable(const Value& v);

// Limits that keep hostile templates from exhausting the stack or memory.
inline constexpr int kMaxValueDepth = 256;
inline constexpr std::size_t kMaxStringBytes = std::size_t{64} << 20;

// Throws a runtime Error when a string about to be built would exceed kMaxStringBytes.
void check_string_size(std::size_t bytes);

// A render's work budget: bytes of strings and containers built or scanned. Every value
// constructor and UTF-8 scan charges it, so no template can run away in time or memory
// between the coarser limits (loop iterations, output size). Installed for the current thread
// for the lifetime of the object; without one nothing is counted.
class WorkBudget {
  public:
    explicit WorkBudget(std::size_t bytes);
    ~WorkBudget();
    WorkBudget(const WorkBudget&) = delete;
    WorkBudget& operator=(const WorkBudget&) = delete;

  private:
    std::size_t remaining_;
    WorkBudget* previous_;
    friend void charge_work(std::size_t bytes);
};

// Throws a runtime Error when the current budget is exhausted.
void charge_work(std::size_t bytes);

}  // namespace tfx::jinja
