#include "jinja/renderer.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "jinja/builtins.h"
#include "jinja/objects.h"
#include "jinja/pyrepr.h"
#include "jinja/runtime.h"
#include "jinja/strftime.h"

namespace tfx::jinja {
namespace {

using namespace ast;

// One variable scope. Lookups fall through to the parent.
struct Frame : std::enable_shared_from_this<Frame> {
    std::shared_ptr<Frame> parent;
    std::vector<std::pair<std::string, Value>> vars;

    const Value* find(std::string_view name) const {
        for (const auto& [k, v] : vars) {
            if (k == name) return &v;
        }
        return nullptr;
    }
    void set(const std::string& name, Value value) {
        for (auto& [k, v] : vars) {
            if (k == name) {
                v = std::move(value);
                return;
            }
        }
        vars.emplace_back(name, std::move(value));
    }
};
using FramePtr = std::shared_ptr<Frame>;

FramePtr child_of(const FramePtr& parent) {
    auto frame = std::make_shared<Frame>();
    frame->parent = parent;
    return frame;
}

enum class Flow { normal, break_loop, continue_loop };

// Thrown when an expression evaluated as a compile-time constant turns out to need a variable.
struct NotConstant {};

// Adds the template position to an error raised while evaluating a node.
[[noreturn]] void rethrow_located(const Error& e, Position pos) {
    if (e.line() != 0 || pos.line == 0) throw e;
    if (e.kind() == ErrorKind::raised) throw Error(e.kind(), e.what(), pos.line, pos.column);
    throw Error(
        e.kind(),
        std::string(e.what()) + " (line " + std::to_string(pos.line) + ", column " + std::to_string(pos.column) + ")",
        pos.line, pos.column);
}

class Renderer {
  public:
    explicit Renderer(const RenderOptions& options) : options_(options) {}

    ~Renderer() {
        // Namespaces can hold themselves (ns.me = ns); empty them so no reference cycle outlives
        // the render.
        for (const auto& ns : namespaces_) ns->clear();
    }
    Renderer(const Renderer&) = delete;
    Renderer& operator=(const Renderer&) = delete;

    std::string render(const ast::Template& tmpl, const nlohmann::ordered_json& context) {
        const WorkBudget budget(options_.max_work_bytes);
        auto globals = std::make_shared<Frame>();
        install_globals(*globals);
        auto input = child_of(globals);
        if (!context.is_null()) {
            if (!context.is_object()) throw_runtime("the render context must be a JSON object");
            for (const auto& [key, value] : context.items()) input->set(key, Value::from_json(value));
        }
        auto root = child_of(input);
        std::string out;
        exec_body(tmpl.body, root, out);
        return out;
    }

  private:
    // ---- globals ----------------------------------------------------------------------------
    void install_globals(Frame& globals) {
        globals.set("range", make_function("range", [](CallArgs& args) { return make_range(args); }));
        globals.set("dict", make_function("dict", [](CallArgs& args) { return make_dict(args); }));
        globals.set("namespace", make_function("namespace", [this](CallArgs& args) {
                        Value ns = make_namespace(args);
                        namespaces_.push_back(std::static_pointer_cast<Namespace>(ns.obj().shared_from_this()));
                        return ns;
                    }));
        globals.set("cycler", make_function("cycler", [](CallArgs& args) { return make_cycler(args); }));
        globals.set("joiner", make_function("joiner", [](CallArgs& args) { return make_joiner(args); }));
        globals.set("lipsum", make_function("lipsum", [](CallArgs&) -> Value {
                        throw_runtime("lipsum() is not supported (its output is random)");
                    }));
        globals.set("raise_exception", make_function("raise_exception", [](CallArgs& args) -> Value {
                        BoundArgs a("raise_exception", args, {"message"});
                        throw Error(ErrorKind::raised, py_str(a.get(0)));
                    }));
        globals.set("strftime_now", make_function("strftime_now", [this](CallArgs& args) {
                        BoundArgs a("strftime_now", args, {"format"});
                        const Value& fmt = a.get(0);
                        if (!fmt.is_string())
                            throw_runtime("strftime() argument 1 must be str, not " + fmt.type_name());
                        return Value::string(strftime(options_.now ? *options_.now : DateTime::now_local(), fmt.str()));
                    }));
    }

    // ---- statements ---------------------------------------------------------------------------
    void emit(std::string& out, std::string_view text) {
        if (out.size() + text.size() > options_.max_output_bytes) {
            throw_runtime("output exceeds " + std::to_string(options_.max_output_bytes) + " bytes");
        }
        out += text;
    }

    void count_iteration() {
        if (++iterations_ > options_.max_loop_iterations) {
            throw_runtime("more than " + std::to_string(options_.max_loop_iterations) + " loop iterations");
        }
    }

    struct CallDepthGuard {
        explicit CallDepthGuard(Renderer& r) : renderer(r) {
            if (++renderer.call_depth_ > renderer.options_.max_call_depth) {
                --renderer.call_depth_;
                throw_runtime("maximum recursion depth exceeded (" + std::to_string(renderer.options_.max_call_depth) +
                              " nested calls)");
            }
        }
        ~CallDepthGuard() { --renderer.call_depth_; }
        CallDepthGuard(const CallDepthGuard&) = delete;
        CallDepthGuard& operator=(const CallDepthGuard&) = delete;
        Renderer& renderer;
    };

    Flow exec_body(const Body& body, const FramePtr& frame, std::string& out) {
        for (const StmtPtr& stmt : body) {
            const Flow flow = exec(*stmt, frame, out);
            if (flow != Flow::normal) return flow;
        }
        return Flow::normal;
    }

    Flow exec(const Stmt& stmt, const FramePtr& frame, std::string& out) {
        try {
            return exec_statement(stmt, frame, out);
        } catch (const Error& e) {
            rethrow_located(e, stmt.pos);
        }
    }

    Flow exec_statement(const Stmt& stmt, const FramePtr& frame, std::string& out) {
        switch (stmt.kind) {
            case StmtKind::text:
                emit(out, static_cast<const Text&>(stmt).text);
                return Flow::normal;
            case StmtKind::print:
                emit(out, py_str(eval_output(*static_cast<const Print&>(stmt).expr, frame)));
                return Flow::normal;
            case StmtKind::if_: {
                const auto& s = static_cast<const If&>(stmt);
                for (const auto& [test, body] : s.branches) {
                    if (eval(*test, frame).truthy()) return exec_body(body, frame, out);
                }
                return exec_body(s.otherwise, frame, out);
            }
            case StmtKind::for_:
                return exec_for(static_cast<const For&>(stmt), frame, out);
            case StmtKind::set: {
                const auto& s = static_cast<const Set&>(stmt);
                assign(s.target, eval(*s.value, frame), frame);
                return Flow::normal;
            }
            case StmtKind::set_block: {
                const auto& s = static_cast<const SetBlock&>(stmt);
                std::string captured;
                // A loop control inside the block leaves the loop before the assignment, as in Jinja.
                if (const Flow flow = exec_body(s.body, child_of(frame), captured); flow != Flow::normal) return flow;
                Value value = Value::string(std::move(captured));
                if (s.filter) value = eval_filter(static_cast<const FilterOrTest&>(*s.filter), frame, &value);
                assign(s.target, value, frame);
                return Flow::normal;
            }
            case StmtKind::macro: {
                const auto& s = static_cast<const Macro&>(stmt);
                frame->set(s.def.name, make_macro(s.def, frame));
                return Flow::normal;
            }
            case StmtKind::call_block:
                return exec_call_block(static_cast<const CallBlock&>(stmt), frame, out);
            case StmtKind::filter_block: {
                const auto& s = static_cast<const FilterBlock&>(stmt);
                std::string captured;
                if (const Flow flow = exec_body(s.body, child_of(frame), captured); flow != Flow::normal) return flow;
                const Value text = Value::string(std::move(captured));
                emit(out, py_str(eval_filter(static_cast<const FilterOrTest&>(*s.filter), frame, &text)));
                return Flow::normal;
            }
            case StmtKind::with: {
                const auto& s = static_cast<const With&>(stmt);
                std::vector<Value> values;
                for (const auto& v : s.values) values.push_back(eval(*v, frame));
                auto inner = child_of(frame);
                for (std::size_t i = 0; i < s.targets.size(); ++i) assign(s.targets[i], values[i], inner);
                return exec_body(s.body, inner, out);
            }
            case StmtKind::scope:
                return exec_body(static_cast<const Scope&>(stmt).body, child_of(frame), out);
            case StmtKind::loop_break:
                return Flow::break_loop;
            case StmtKind::loop_continue:
                return Flow::continue_loop;
            case StmtKind::unsupported:
                throw_runtime("the '" + static_cast<const Unsupported&>(stmt).tag +
                              "' tag needs a template loader, and chat templates have none");
        }
        return Flow::normal;
    }

    Flow exec_for(const For& loop, const FramePtr& frame, std::string& out) {
        run_loop(loop, frame, eval(*loop.iterable, frame), 1, out);
        return Flow::normal;
    }

    void run_loop(const For& loop, const FramePtr& frame, const Value& iterable, int depth, std::string& out) {
        std::vector<Value> items = iterate(iterable);
        if (loop.condition) {  // a filtered loop numbers only the kept items
            std::vector<Value> kept;
            for (Value& item : items) {
                count_iteration();
                auto scope = child_of(frame);
                assign(loop.target, item, scope);
                if (eval(*loop.condition, scope).truthy()) kept.push_back(std::move(item));
            }
            items = std::move(kept);
        }
        if (items.empty()) {
            exec_body(loop.otherwise, child_of(frame), out);
            return;
        }
        LoopContext::Recurse recurse;
        if (loop.recursive) {
            recurse = [this, &loop, frame, depth](const Value& inner) {
                CallDepthGuard guard(*this);
                std::string text;
                run_loop(loop, frame, inner, depth + 1, text);
                return Value::string(std::move(text));
            };
        }
        auto context = std::make_shared<LoopContext>(std::move(items), depth, std::move(recurse));
        const Value loop_value = Value::object(context);
        for (std::size_t i = 0; i < context->items().size(); ++i) {
            count_iteration();
            context->set_index(i);
            auto scope = child_of(frame);  // each iteration starts from a fresh scope
            assign(loop.target, context->items()[i], scope);
            scope->set("loop", loop_value);
            if (exec_body(loop.body, scope, out) == Flow::break_loop) break;
        }
    }

    Flow exec_call_block(const CallBlock& block, const FramePtr& frame, std::string& out) {
        const auto& call = static_cast<const Call&>(*block.call);
        const Value callee = eval(*call.callee, frame);
        CallArgs args = eval_args(call.args, frame);
        args.keyword.emplace_back("caller", make_macro(block.caller, frame));
        emit(out, py_str(invoke(callee, args)));
        return Flow::normal;
    }

    void assign(const Target& target, const Value& value, const FramePtr& frame) {
        switch (target.kind) {
            case Target::Kind::name:
                frame->set(target.name, value);
                return;
            case Target::Kind::tuple: {
                const std::vector<Value> items = iterate(value);
                const std::size_t expected = target.items.size();
                if (items.size() > expected)
                    throw_runtime("too many values to unpack (expected " + std::to_string(expected) + ")");
                if (items.size() < expected) {
                    throw_runtime("not enough values to unpack (expected " + std::to_string(expected) + ", got " +
                                  std::to_string(items.size()) + ")");
                }
                for (std::size_t i = 0; i < expected; ++i) assign(target.items[i], items[i], frame);
                return;
            }
            case Target::Kind::namespace_attr: {
                const Value ns = lookup(target.name, frame);
                auto* object = ns.is_object() ? dynamic_cast<Namespace*>(&ns.obj()) : nullptr;
                if (object == nullptr) throw_runtime("cannot assign attribute on non-namespace object");
                object->set_attr(target.attribute, value);
                return;
            }
        }
    }

    // ---- macros -------------------------------------------------------------------------------
    Value make_macro(const MacroDef& def, const FramePtr& closure) {
        // The macro refers to its defining scope without owning it (a scope holding its own macro
        // would be a reference cycle); the renderer keeps that scope alive instead.
        pinned_frames_.push_back(closure);
        Frame* scope = closure.get();
        return make_function(
            def.name, [this, &def, scope](CallArgs& args) { return call_macro(def, *scope, args); },
            "<Macro " + string_repr(def.name) + ">");
    }

    Value call_macro(const MacroDef& def, Frame& closure, CallArgs& args) {
        CallDepthGuard guard(*this);
        auto frame = child_of(closure.shared_from_this());
        const std::size_t n = def.params.size();
        std::vector<bool> bound(n, false);
        std::vector<Value> varargs;
        std::vector<std::pair<Value, Value>> kwargs;
        for (std::size_t i = 0; i < args.positional.size(); ++i) {
            if (i < n) {
                frame->set(def.params[i], args.positional[i]);
                bound[i] = true;
            } else if (def.uses_varargs) {
                varargs.push_back(args.positional[i]);
            } else {
                throw_runtime("macro '" + def.name + "' takes not more than " + std::to_string(n) + " argument(s)");
            }
        }
        std::optional<Value> caller;
        for (auto& [key, value] : args.keyword) {
            const auto it = std::find(def.params.begin(), def.params.end(), key);
            if (it != def.params.end()) {
                const auto i = static_cast<std::size_t>(it - def.params.begin());
                if (bound[i]) throw_runtime("macro '" + def.name + "' got multiple values for argument '" + key + "'");
                frame->set(key, value);
                bound[i] = true;
            } else if (key == "caller" && def.uses_caller) {
                caller = value;
            } else if (def.uses_kwargs) {
                kwargs.emplace_back(Value::string(key), value);
            } else {
                throw_runtime("macro '" + def.name + "' takes no keyword argument '" + key + "'");
            }
        }
        const std::size_t first_default = n - def.defaults.size();
        for (std::size_t i = 0; i < n; ++i) {
            if (bound[i]) continue;
            frame->set(def.params[i], i >= first_default
                                          ? eval(*def.defaults[i - first_default], frame)
                                          : Value::undefined("parameter '" + def.params[i] + "' was not provided"));
        }
        if (def.uses_varargs) frame->set("varargs", Value::tuple(std::move(varargs)));
        if (def.uses_kwargs) frame->set("kwargs", Value::dict(std::move(kwargs)));
        if (def.uses_caller) frame->set("caller", caller ? *caller : Value::undefined("No caller defined"));
        std::string out;
        exec_body(def.body, frame, out);
        return Value::string(std::move(out));
    }

    // ---- expressions --------------------------------------------------------------------------
    Value lookup(const std::string& name, const FramePtr& frame) const {
        for (const Frame* f = frame.get(); f != nullptr; f = f->parent.get()) {
            if (const Value* v = f->find(name)) return *v;
        }
        return Value::undefined("'" + name + "' is undefined");
    }

    Value eval(const Expr& expr, const FramePtr& frame) {
        try {
            return eval_expression(expr, frame);
        } catch (const Error& e) {
            rethrow_located(e, expr.pos);
        }
    }

    Value eval_expression(const Expr& expr, const FramePtr& frame) {
        switch (expr.kind) {
            case ExprKind::literal:
                return static_cast<const Literal&>(expr).value;
            case ExprKind::name:
                if (constant_output_) throw NotConstant{};
                return lookup(static_cast<const Name&>(expr).name, frame);
            case ExprKind::list:
            case ExprKind::tuple: {
                std::vector<Value> items;
                for (const auto& item : static_cast<const ListExpr&>(expr).items) items.push_back(eval(*item, frame));
                return expr.kind == ExprKind::list ? Value::list(std::move(items)) : Value::tuple(std::move(items));
            }
            case ExprKind::dict:
                return eval_dict(static_cast<const DictExpr&>(expr), frame);
            case ExprKind::getattr: {
                const auto& e = static_cast<const Getattr&>(expr);
                return get_attr(eval(*e.object, frame), e.attribute);
            }
            case ExprKind::getitem:
                return eval_getitem(static_cast<const Getitem&>(expr), frame);
            case ExprKind::slice:
                throw_runtime("slice outside of a subscript");
            case ExprKind::call: {
                if (constant_output_) throw NotConstant{};
                const auto& e = static_cast<const Call&>(expr);
                const Value callee = eval(*e.callee, frame);
                CallArgs args = eval_args(e.args, frame);
                return invoke(callee, args);
            }
            case ExprKind::filter:
                return eval_filter(static_cast<const FilterOrTest&>(expr), frame, nullptr);
            case ExprKind::test: {
                const auto& e = static_cast<const FilterOrTest&>(expr);
                const Value operand = eval(*e.operand, frame);
                return Value::boolean(call_test(e.name, operand, eval_args(e.args, frame)));
            }
            case ExprKind::unary: {
                const auto& e = static_cast<const Unary&>(expr);
                return unary_op(e.op, eval(*e.operand, frame));
            }
            case ExprKind::binary:
                return eval_binary(static_cast<const Binary&>(expr), frame);
            case ExprKind::concat: {
                std::string text;
                for (const auto& item : static_cast<const Concat&>(expr).items) {
                    text += py_str(eval(*item, frame));
                    check_string_size(text.size());
                }
                return Value::string(std::move(text));
            }
            case ExprKind::compare:
                return eval_compare(static_cast<const Compare&>(expr), frame);
            case ExprKind::conditional: {
                const auto& e = static_cast<const Conditional&>(expr);
                if (eval(*e.test, frame).truthy()) return eval(*e.then, frame);
                if (e.otherwise) return eval(*e.otherwise, frame);
                return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
            }
        }
        return Value();
    }

    Value eval_dict(const DictExpr& expr, const FramePtr& frame) {
        std::vector<std::pair<Value, Value>> entries;
        for (const auto& [key_expr, value_expr] : expr.items) {
            Value key = eval(*key_expr, frame);
            Value value = eval(*value_expr, frame);
            if (!is_hashable(key)) throw_runtime("unhashable type: '" + key.type_name() + "'");
            auto it =
                std::find_if(entries.begin(), entries.end(), [&](const auto& e) { return py_equal(e.first, key); });
            if (it != entries.end()) {
                it->second = std::move(value);
            } else {
                entries.emplace_back(std::move(key), std::move(value));
            }
        }
        return Value::dict(std::move(entries));
    }

    Value eval_getitem(const Getitem& expr, const FramePtr& frame) {
        const Value object = eval(*expr.object, frame);
        if (expr.index->kind != ExprKind::slice) return get_item(object, eval(*expr.index, frame));
        const auto& s = static_cast<const Slice&>(*expr.index);
        std::optional<std::int64_t> bounds[3];
        const ExprPtr* parts[3] = {&s.start, &s.stop, &s.step};
        bool type_error =
            !object.is_undefined() && !object.is_string() && !(object.is_sequence() && object.seq().subscriptable());
        for (int i = 0; i < 3; ++i) {
            if (!*parts[i]) continue;
            const Value v = eval(**parts[i], frame);
            if (v.is_none()) continue;
            if (v.is_integral()) {
                bounds[i] = v.as_int();
            } else {
                type_error = true;
            }
        }
        if (type_error) {
            if (constant_output_) return Value::undefined("the constant cannot be sliced");
            const bool sliceable = object.is_string() || (object.is_sequence() && object.seq().subscriptable());
            if (sliceable) throw_runtime("slice indices must be integers or None or have an __index__ method");
        }
        return slice(object, bounds[0], bounds[1], bounds[2]);  // raises for what cannot be sliced
    }

    // Jinja evaluates a `{{ }}` that needs no variable and no call (the parts short-circuits skip
    // aside) when it compiles the template; there, slicing what cannot be sliced gives undefined
    // instead of Python's TypeError. If that evaluation fails, the expression runs normally.
    Value eval_output(const Expr& expr, const FramePtr& frame) {
        constant_output_ = true;
        try {
            Value v = eval(expr, frame);
            constant_output_ = false;
            return v;
        } catch (const NotConstant&) {
        } catch (const Error&) {
        }
        constant_output_ = false;
        return eval(expr, frame);
    }

    CallArgs eval_args(const Arguments& args, const FramePtr& frame) {
        CallArgs out;
        for (const auto& a : args.positional) out.positional.push_back(eval(*a, frame));
        for (const auto& [key, a] : args.keyword) out.keyword.emplace_back(key, eval(*a, frame));
        if (args.star_args) {
            for (Value& v : iterate(eval(*args.star_args, frame))) out.positional.push_back(std::move(v));
        }
        if (args.star_kwargs) {
            const Value kwargs = eval(*args.star_kwargs, frame);
            if (!kwargs.is_dict()) throw_runtime("argument after ** must be a mapping, not " + kwargs.type_name());
            for (const auto& [k, v] : kwargs.dict().entries) {
                if (!k.is_string()) throw_runtime("keywords must be strings");
                out.keyword.emplace_back(k.str(), v);
            }
        }
        return out;
    }

    static Value invoke(const Value& callee, CallArgs& args) {
        if (callee.is_undefined()) throw_undefined(callee);
        if (!callee.is_object() || !callee.obj().is_callable()) {
            throw_runtime("'" + callee.type_name() + "' object is not callable");
        }
        return callee.obj().call(args);
    }

    // A filter, or a chain of them; `head` feeds the innermost one in filter blocks.
    Value eval_filter(const FilterOrTest& filter, const FramePtr& frame, const Value* head) {
        Value operand;
        if (!filter.operand) {
            operand = *head;
        } else if (head != nullptr && filter.operand->kind == ExprKind::filter) {
            operand = eval_filter(static_cast<const FilterOrTest&>(*filter.operand), frame, head);
        } else {
            operand = eval(*filter.operand, frame);
        }
        return call_filter(filter.name, operand, eval_args(filter.args, frame));
    }

    Value eval_binary(const Binary& expr, const FramePtr& frame) {
        Value left = eval(*expr.left, frame);
        if (expr.op == BinaryOp::logical_and) return left.truthy() ? eval(*expr.right, frame) : left;
        if (expr.op == BinaryOp::logical_or) return left.truthy() ? left : eval(*expr.right, frame);
        return binary_op(expr.op, left, eval(*expr.right, frame));
    }

    Value eval_compare(const Compare& expr, const FramePtr& frame) {
        Value left = eval(*expr.first, frame);
        for (const auto& [op, right_expr] : expr.rest) {
            Value right = eval(*right_expr, frame);
            if (!compare(op, left, right)) return Value::boolean(false);
            left = std::move(right);
        }
        return Value::boolean(true);
    }

    const RenderOptions& options_;
    bool constant_output_ = false;  // evaluating a constant `{{ }}` as Jinja's compiler does
    std::uint64_t iterations_ = 0;
    int call_depth_ = 0;
    std::vector<FramePtr> pinned_frames_;
    std::vector<std::shared_ptr<Namespace>> namespaces_;
};

}  // namespace

std::string render_template(const ast::Template& tmpl, const nlohmann::ordered_json& context,
                            const RenderOptions& options) {
    Renderer renderer(options);
    return renderer.render(tmpl, context);
}

}  // namespace tfx::jinja
