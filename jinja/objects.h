// What templates build with the builtin globals namespace(), dict(), range(), cycler() and
// joiner(), and the `loop` variable of for loops.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace tfx::jinja {

// namespace(): the one mutable container, assigned with {% set ns.attr = value %}.
class Namespace : public Object {
  public:
    explicit Namespace(std::vector<std::pair<std::string, Value>> attributes) : attributes_(std::move(attributes)) {}
    std::string type_name() const override { return "Namespace"; }
    std::string repr() const override;
    Value get_attr(std::string_view name) const override;
    void set_attr(const std::string& name, Value value);
    void clear() { attributes_.clear(); }

  private:
    std::vector<std::pair<std::string, Value>> attributes_;
};

// The `loop` variable of a for loop.
class LoopContext : public Object {
  public:
    using Recurse = std::function<Value(const Value& iterable)>;  // empty unless `recursive`
    LoopContext(std::vector<Value> items, int depth, Recurse recurse);

    std::string type_name() const override { return "LoopContext"; }
    std::string repr() const override;
    Value get_attr(std::string_view name) const override;
    bool is_callable() const override { return true; }
    Value call(CallArgs& args) override;
    int value_depth() const override { return value_depth_; }

    const std::vector<Value>& items() const { return items_; }
    void set_index(std::size_t index) { index_ = index; }

  private:
    std::vector<Value> items_;
    std::size_t index_ = 0;
    int depth_;  // loop.depth of a recursive loop
    int value_depth_;
    Recurse recurse_;
    std::optional<Value> last_changed_;  // arguments of the previous loop.changed() call
};

Value make_namespace(const CallArgs& args);
Value make_dict(const CallArgs& args);
Value make_range(const CallArgs& args);  // limited to 100000 items, as Jinja's sandbox does
Value make_cycler(const CallArgs& args);
Value make_joiner(const CallArgs& args);

}  // namespace tfx::jinja
