#include "jinja/name_check.h"

#include "jinja/builtins.h"
#include "jinja/lexer.h"

namespace tfx::jinja {
namespace {

using namespace ast;

// `soft` mirrors Jinja2's soft frames: code under an if statement or an if-expression, up to the
// next construct that opens a scope of its own (loop body, macro, block, ...).
class NameChecker {
  public:
    void body(const Body& statements, bool soft) {
        for (const StmtPtr& s : statements) statement(*s, soft);
    }

  private:
    void statement(const Stmt& s, bool soft) {
        switch (s.kind) {
            case StmtKind::print:
                expr(static_cast<const Print&>(s).expr.get(), soft);
                break;
            case StmtKind::if_: {
                const auto& n = static_cast<const If&>(s);
                for (const auto& [test, branch] : n.branches) {
                    expr(test.get(), true);
                    body(branch, true);
                }
                body(n.otherwise, true);
                break;
            }
            case StmtKind::for_: {
                const auto& n = static_cast<const For&>(s);
                expr(n.iterable.get(), soft);
                expr(n.condition.get(), false);
                body(n.body, false);
                body(n.otherwise, false);
                break;
            }
            case StmtKind::set:
                expr(static_cast<const Set&>(s).value.get(), soft);
                break;
            case StmtKind::set_block: {
                const auto& n = static_cast<const SetBlock&>(s);
                expr(n.filter.get(), false);
                body(n.body, false);
                break;
            }
            case StmtKind::macro:
                macro(static_cast<const Macro&>(s).def);
                break;
            case StmtKind::call_block: {
                const auto& n = static_cast<const CallBlock&>(s);
                expr(n.call.get(), soft);
                macro(n.caller);
                break;
            }
            case StmtKind::filter_block: {
                const auto& n = static_cast<const FilterBlock&>(s);
                expr(n.filter.get(), false);
                body(n.body, false);
                break;
            }
            case StmtKind::with: {
                const auto& n = static_cast<const With&>(s);
                for (const auto& v : n.values) expr(v.get(), soft);
                body(n.body, false);
                break;
            }
            case StmtKind::scope:
                body(static_cast<const Scope&>(s).body, false);
                break;
            case StmtKind::text:
            case StmtKind::loop_break:
            case StmtKind::loop_continue:
            case StmtKind::unsupported:
                break;
        }
    }

    void macro(const MacroDef& def) {
        for (const auto& d : def.defaults) expr(d.get(), false);
        body(def.body, false);
    }

    void arguments(const Arguments& args, bool soft) {
        for (const auto& a : args.positional) expr(a.get(), soft);
        for (const auto& [k, a] : args.keyword) expr(a.get(), soft);
        expr(args.star_args.get(), soft);
        expr(args.star_kwargs.get(), soft);
    }

    void expr(const Expr* e, bool soft) {
        if (e == nullptr) return;
        switch (e->kind) {
            case ExprKind::literal:
            case ExprKind::name:
                break;
            case ExprKind::list:
            case ExprKind::tuple:
                for (const auto& item : static_cast<const ListExpr*>(e)->items) expr(item.get(), soft);
                break;
            case ExprKind::dict:
                for (const auto& [k, v] : static_cast<const DictExpr*>(e)->items) {
                    expr(k.get(), soft);
                    expr(v.get(), soft);
                }
                break;
            case ExprKind::getattr:
                expr(static_cast<const Getattr*>(e)->object.get(), soft);
                break;
            case ExprKind::getitem:
                expr(static_cast<const Getitem*>(e)->object.get(), soft);
                expr(static_cast<const Getitem*>(e)->index.get(), soft);
                break;
            case ExprKind::slice: {
                const auto* n = static_cast<const Slice*>(e);
                expr(n->start.get(), soft);
                expr(n->stop.get(), soft);
                expr(n->step.get(), soft);
                break;
            }
            case ExprKind::call:
                expr(static_cast<const Call*>(e)->callee.get(), soft);
                arguments(static_cast<const Call*>(e)->args, soft);
                break;
            case ExprKind::filter:
            case ExprKind::test: {
                const auto* n = static_cast<const FilterOrTest*>(e);
                const bool filter = e->kind == ExprKind::filter;
                const bool known = filter ? find_filter(n->name) != nullptr : find_test(n->name) != nullptr;
                if (!known && !soft) {
                    throw_syntax_error(std::string("No ") + (filter ? "filter" : "test") + " named '" + n->name + "'.",
                                       e->pos.line, e->pos.column);
                }
                expr(n->operand.get(), soft);
                arguments(n->args, soft);
                break;
            }
            case ExprKind::unary:
                expr(static_cast<const Unary*>(e)->operand.get(), soft);
                break;
            case ExprKind::binary:
                expr(static_cast<const Binary*>(e)->left.get(), soft);
                expr(static_cast<const Binary*>(e)->right.get(), soft);
                break;
            case ExprKind::concat:
                for (const auto& item : static_cast<const Concat*>(e)->items) expr(item.get(), soft);
                break;
            case ExprKind::compare: {
                const auto* n = static_cast<const Compare*>(e);
                expr(n->first.get(), soft);
                for (const auto& [op, right] : n->rest) expr(right.get(), soft);
                break;
            }
            case ExprKind::conditional: {
                const auto* n = static_cast<const Conditional*>(e);
                expr(n->test.get(), true);
                expr(n->then.get(), true);
                expr(n->otherwise.get(), true);
                break;
            }
        }
    }
};

}  // namespace

void check_filter_and_test_names(const ast::Template& tmpl) {
    NameChecker().body(tmpl.body, false);
}

}  // namespace tfx::jinja
