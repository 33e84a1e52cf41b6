// Syntax tree of a parsed template. Expressions and statements carry their source position for
// error messages; the renderer walks the tree directly.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "jinja/value.h"

namespace tfx::jinja::ast {

struct Position {
    int line = 0;
    int column = 0;
};

// ---- expressions ---------------------------------------------------------------------------

enum class ExprKind {
    literal,
    name,
    list,
    tuple,
    dict,
    getattr,
    getitem,
    slice,
    call,
    filter,
    test,
    unary,
    binary,
    concat,
    compare,
    conditional,
};

struct Expr {
    explicit Expr(ExprKind k) : kind(k) {}
    virtual ~Expr() = default;
    ExprKind kind;
    Position pos;
    int depth = 1;  // height of the subtree, bounded by the parser
};
using ExprPtr = std::unique_ptr<Expr>;

struct Arguments {
    std::vector<ExprPtr> positional;
    std::vector<std::pair<std::string, ExprPtr>> keyword;
    ExprPtr star_args;    // *args
    ExprPtr star_kwargs;  // **kwargs
};

struct Literal : Expr {
    Literal() : Expr(ExprKind::literal) {}
    Value value;
};

struct Name : Expr {
    Name() : Expr(ExprKind::name) {}
    std::string name;
};

struct ListExpr : Expr {  // list and tuple displays (kind is list or tuple)
    ListExpr() : Expr(ExprKind::list) {}
    std::vector<ExprPtr> items;
};

struct DictExpr : Expr {
    DictExpr() : Expr(ExprKind::dict) {}
    std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

struct Getattr : Expr {
    Getattr() : Expr(ExprKind::getattr) {}
    ExprPtr object;
    std::string attribute;
};

struct Getitem : Expr {
    Getitem() : Expr(ExprKind::getitem) {}
    ExprPtr object;
    ExprPtr index;  // may be a Slice
};

struct Slice : Expr {
    Slice() : Expr(ExprKind::slice) {}
    ExprPtr start, stop, step;  // each may be null
};

struct Call : Expr {
    Call() : Expr(ExprKind::call) {}
    ExprPtr callee;
    Arguments args;
};

// `x | name(args)` and `x is name(args)`; operand is null for a filter block's chain head.
struct FilterOrTest : Expr {  // kind is filter or test
    FilterOrTest() : Expr(ExprKind::filter) {}
    ExprPtr operand;
    std::string name;
    Arguments args;
};

enum class UnaryOp { logical_not, negate, plus };
struct Unary : Expr {
    Unary() : Expr(ExprKind::unary) {}
    UnaryOp op = UnaryOp::logical_not;
    ExprPtr operand;
};

enum class BinaryOp { add, sub, mul, div, floordiv, mod, pow, logical_and, logical_or };
struct Binary : Expr {
    Binary() : Expr(ExprKind::binary) {}
    BinaryOp op = BinaryOp::add;
    ExprPtr left, right;
};

struct Concat : Expr {  // a ~ b ~ c
    Concat() : Expr(ExprKind::concat) {}
    std::vector<ExprPtr> items;
};

enum class CompareOp { eq, ne, lt, le, gt, ge, in, not_in };
struct Compare : Expr {  // chained: a < b < c
    Compare() : Expr(ExprKind::compare) {}
    ExprPtr first;
    std::vector<std::pair<CompareOp, ExprPtr>> rest;
};

struct Conditional : Expr {  // then if test else otherwise
    Conditional() : Expr(ExprKind::conditional) {}
    ExprPtr test, then, otherwise;  // otherwise may be null (yields undefined)
};

// ---- assignment targets -----------------------------------------------------------------------

struct Target {
    enum class Kind { name, tuple, namespace_attr } kind = Kind::name;
    std::string name;           // variable (or namespace variable)
    std::string attribute;      // for namespace_attr
    std::vector<Target> items;  // for tuple
    Position pos;
};

// ---- statements --------------------------------------------------------------------------------

enum class StmtKind {
    text,
    print,
    if_,
    for_,
    set,
    set_block,
    macro,
    call_block,
    filter_block,
    with,
    scope,
    loop_break,
    loop_continue,
    unsupported,
};

struct Stmt {
    explicit Stmt(StmtKind k) : kind(k) {}
    virtual ~Stmt() = default;
    StmtKind kind;
    Position pos;
};
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Text : Stmt {
    Text() : Stmt(StmtKind::text) {}
    std::string text;
};

struct Print : Stmt {
    Print() : Stmt(StmtKind::print) {}
    ExprPtr expr;
};

struct If : Stmt {
    If() : Stmt(StmtKind::if_) {}
    std::vector<std::pair<ExprPtr, Body>> branches;  // if, elif...
    Body otherwise;
};

struct For : Stmt {
    For() : Stmt(StmtKind::for_) {}
    Target target;
    ExprPtr iterable;
    ExprPtr condition;  // `for x in xs if cond`; may be null
    bool recursive = false;
    Body body;
    Body otherwise;  // rendered when no item was iterated
};

struct Set : Stmt {
    Set() : Stmt(StmtKind::set) {}
    Target target;
    ExprPtr value;
};

struct SetBlock : Stmt {
    SetBlock() : Stmt(StmtKind::set_block) {}
    Target target;
    ExprPtr filter;  // filter chain applied to the body; may be null
    Body body;
};

// Shared by macros and call blocks' `caller`.
struct MacroDef {
    std::string name;
    std::vector<std::string> params;
    std::vector<ExprPtr> defaults;  // for the last defaults.size() params
    bool uses_caller = false, uses_varargs = false, uses_kwargs = false;
    Body body;
};

struct Macro : Stmt {
    Macro() : Stmt(StmtKind::macro) {}
    MacroDef def;
};

struct CallBlock : Stmt {
    CallBlock() : Stmt(StmtKind::call_block) {}
    MacroDef caller;  // parameters and body of the `caller` macro
    ExprPtr call;
};

struct FilterBlock : Stmt {
    FilterBlock() : Stmt(StmtKind::filter_block) {}
    ExprPtr filter;  // chain whose innermost operand is null
    Body body;
};

struct With : Stmt {
    With() : Stmt(StmtKind::with) {}
    std::vector<Target> targets;
    std::vector<ExprPtr> values;
    Body body;
};

// A body rendered in its own variable scope: {% block %}, {% generation %}, {% autoescape %}.
struct Scope : Stmt {
    Scope() : Stmt(StmtKind::scope) {}
    Body body;
};

struct LoopControl : Stmt {
    explicit LoopControl(StmtKind k) : Stmt(k) {}
};

// Tags that need a template loader (include, import, extends): fail when executed, as Jinja2
// does without a loader.
struct Unsupported : Stmt {
    Unsupported() : Stmt(StmtKind::unsupported) {}
    std::string tag;
};

struct Template {
    Body body;
};

}  // namespace tfx::jinja::ast
