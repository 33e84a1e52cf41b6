#include "jinja/objects.h"

#include <algorithm>
#include <cmath>

#include "jinja/pyrepr.h"
#include "jinja/runtime.h"

namespace tfx::jinja {
namespace {

int items_depth(const std::vector<Value>& items) {
    int depth = 0;
    for (const Value& v : items) depth = std::max(depth, v.depth());
    check_value_depth(depth + 1);
    return depth + 1;
}

class Cycler : public Object {
  public:
    explicit Cycler(std::vector<Value> items) : items_(std::move(items)), depth_(items_depth(items_)) {}
    std::string type_name() const override { return "Cycler"; }
    int value_depth() const override { return depth_; }
    Value get_attr(std::string_view name) const override {
        // Bound methods keep the cycler alive (they may outlive the expression that made it).
        auto self = std::static_pointer_cast<Cycler>(std::const_pointer_cast<Object>(shared_from_this()));
        if (name == "current") return items_[position_];
        const Value receiver = Value::object(self);
        if (name == "next") {
            return make_bound_method("Cycler.next", receiver, [self](CallArgs& args) {
                BoundArgs("next", args, {});
                Value v = self->items_[self->position_];
                self->position_ = (self->position_ + 1) % self->items_.size();
                return v;
            });
        }
        if (name == "reset") {
            return make_bound_method("Cycler.reset", receiver, [self](CallArgs& args) {
                BoundArgs("reset", args, {});
                self->position_ = 0;
                return Value::none();
            });
        }
        return Object::get_attr(name);
    }

  private:
    std::vector<Value> items_;
    int depth_;
    std::size_t position_ = 0;
};

class Joiner : public Object {
  public:
    explicit Joiner(std::string sep) : sep_(std::move(sep)) {}
    std::string type_name() const override { return "Joiner"; }
    bool is_callable() const override { return true; }
    Value call(CallArgs& args) override {
        BoundArgs("joiner", args, {});
        if (!used_) {
            used_ = true;
            return Value::string("");
        }
        return Value::string(sep_);
    }

  private:
    std::string sep_;
    bool used_ = false;
};

}  // namespace

std::string Namespace::repr() const {
    const ReprScope scope(&attributes_);
    if (scope.cycle()) return "<Namespace {...}>";
    std::string out = "<Namespace {";
    for (std::size_t i = 0; i < attributes_.size(); ++i) {
        if (i > 0) out += ", ";
        out += string_repr(attributes_[i].first) + ": " + py_repr(attributes_[i].second);
    }
    return out + "}>";
}

Value Namespace::get_attr(std::string_view name) const {
    for (const auto& [k, v] : attributes_) {
        if (k == name) return v;
    }
    return Object::get_attr(name);
}

void Namespace::set_attr(const std::string& name, Value value) {
    for (auto& [k, v] : attributes_) {
        if (k == name) {
            v = std::move(value);
            return;
        }
    }
    attributes_.emplace_back(name, std::move(value));
}

LoopContext::LoopContext(std::vector<Value> items, int depth, Recurse recurse)
    : items_(std::move(items)), depth_(depth), value_depth_(items_depth(items_)), recurse_(std::move(recurse)) {}

std::string LoopContext::repr() const {
    return "<LoopContext " + std::to_string(index_ + 1) + "/" + std::to_string(items_.size()) + ">";
}

Value LoopContext::get_attr(std::string_view name) const {
    const auto n = static_cast<std::int64_t>(items_.size());
    const auto i = static_cast<std::int64_t>(index_);
    if (name == "index0") return Value::integer(i);
    if (name == "index") return Value::integer(i + 1);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth0") return Value::integer(depth_ - 1);
    if (name == "depth") return Value::integer(depth_);
    if (name == "previtem") return i > 0 ? items_[index_ - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem") return i + 1 < n ? items_[index_ + 1] : Value::undefined("there is no next item");
    if (name == "cycle") {
        const std::int64_t index = i;
        return make_function("LoopContext.cycle", [index](CallArgs& args) {
            if (args.positional.empty()) throw_runtime("no items for cycling given");
            return args.positional[static_cast<std::size_t>(index) % args.positional.size()];
        });
    }
    if (name == "changed") {
        // Weak: the arguments it remembers may hold this very method (a reference cycle).
        std::weak_ptr<LoopContext> weak =
            std::static_pointer_cast<LoopContext>(std::const_pointer_cast<Object>(shared_from_this()));
        return make_function("LoopContext.changed", [weak](CallArgs& args) {
            const auto self = weak.lock();
            if (!self) throw_runtime("the loop has ended");
            Value current = Value::tuple(args.positional);
            if (self->last_changed_ && py_equal(*self->last_changed_, current)) return Value::boolean(false);
            self->last_changed_ = std::move(current);
            return Value::boolean(true);
        });
    }
    return Object::get_attr(name);
}

Value LoopContext::call(CallArgs& args) {
    if (!recurse_) throw_runtime("Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.");
    BoundArgs a("loop", args, {"iterable"});
    return recurse_(a.get(0));
}

Value make_range(const CallArgs& args) {
    if (!args.keyword.empty()) throw_runtime("range() takes no keyword arguments");
    const auto& p = args.positional;
    if (p.empty() || p.size() > 3) throw_runtime("range expected 1 to 3 arguments, got " + std::to_string(p.size()));
    const std::int64_t start = p.size() == 1 ? 0 : require_int(p[0], "range");
    const std::int64_t stop = require_int(p.size() == 1 ? p[0] : p[1], "range");
    const std::int64_t step = p.size() == 3 ? require_int(p[2], "range") : 1;
    if (step == 0) throw_runtime("range() arg 3 must not be zero");
    const long double span = step > 0 ? static_cast<long double>(stop) - start : static_cast<long double>(start) - stop;
    const long double count =
        span <= 0 ? 0
                  : (span + std::abs(static_cast<long double>(step)) - 1) / std::abs(static_cast<long double>(step));
    if (count > 100000) throw_runtime("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    return Value::range(start, stop, step);
}

Value make_dict(const CallArgs& args) {
    std::vector<std::pair<Value, Value>> entries;
    auto put = [&](const Value& key, const Value& value) {
        if (!is_hashable(key)) throw_runtime("unhashable type: '" + key.type_name() + "'");
        for (auto& entry : entries) {
            if (py_equal(entry.first, key)) {
                entry.second = value;
                return;
            }
        }
        entries.emplace_back(key, value);
    };
    if (args.positional.size() > 1)
        throw_runtime("dict expected at most 1 argument, got " + std::to_string(args.positional.size()));
    if (!args.positional.empty()) {
        const Value& source = require_defined(args.positional.front());
        if (source.is_dict()) {
            for (const auto& [k, v] : source.dict().entries) put(k, v);
        } else {
            for (const Value& pair : iterate(source)) {
                const std::vector<Value> kv = iterate(pair);
                if (kv.size() != 2)
                    throw_runtime("dictionary update sequence element has length " + std::to_string(kv.size()) +
                                  "; 2 is required");
                put(kv[0], kv[1]);
            }
        }
    }
    for (const auto& [k, v] : args.keyword) put(Value::string(k), v);
    return Value::dict(std::move(entries));
}

// namespace(...) takes what dict(...) takes.
Value make_namespace(const CallArgs& args) {
    const Value dict = make_dict(args);
    std::vector<std::pair<std::string, Value>> attributes;
    for (const auto& [key, value] : dict.dict().entries) attributes.emplace_back(py_str(key), value);
    return Value::object(std::make_shared<Namespace>(std::move(attributes)));
}

Value make_cycler(const CallArgs& args) {
    if (!args.keyword.empty()) throw_runtime("cycler() takes no keyword arguments");
    if (args.positional.empty()) throw_runtime("at least one item has to be provided");
    return Value::object(std::make_shared<Cycler>(args.positional));
}

Value make_joiner(const CallArgs& args) {
    BoundArgs a("joiner", args, {"sep"});
    return Value::object(std::make_shared<Joiner>(a.string(0, ", ")));
}

}  // namespace tfx::jinja
