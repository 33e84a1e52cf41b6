#include "jinja/parser.h"

#include <algorithm>
#include <initializer_list>

#include "jinja/error.h"
#include "jinja/lexer.h"
#include "jinja/name_check.h"

namespace tfx::jinja {
namespace {

using namespace ast;

// Bounds on nesting, so that parsing, rendering and destroying a tree cannot exhaust the stack.
constexpr int kMaxNesting = 100;     // brackets, unary operators, nested blocks
constexpr int kMaxExprHeight = 256;  // height of an expression tree (long operator chains)

class Parser {
  public:
    explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

    Template parse() {
        Template tmpl;
        tmpl.body = subparse({});
        return tmpl;
    }

  private:
    // ---- token stream ------------------------------------------------------------------------
    const Token& current() const { return tokens_[index_]; }
    const Token& look() const { return tokens_[std::min(index_ + 1, tokens_.size() - 1)]; }
    const Token& next() {
        const Token& t = tokens_[index_];
        if (index_ + 1 < tokens_.size()) ++index_;
        return t;
    }

    bool is_op(std::string_view op) const { return current().type == TokenType::op && current().text == op; }
    bool is_name(std::string_view name) const { return current().type == TokenType::name && current().text == name; }
    bool skip_op(std::string_view op) {
        if (!is_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(std::string_view name) {
        if (!is_name(name)) return false;
        next();
        return true;
    }

    static std::string describe(const Token& t) {
        switch (t.type) {
            case TokenType::eof:
                return "end of template";
            case TokenType::block_end:
                return "end of statement block";
            case TokenType::variable_end:
                return "end of print statement";
            case TokenType::block_begin:
                return "begin of statement block";
            case TokenType::variable_begin:
                return "begin of print statement";
            case TokenType::data:
                return "template data";
            case TokenType::string:
                return "string";
            case TokenType::integer:
                return "integer";
            case TokenType::floating:
                return "float";
            case TokenType::name:
            case TokenType::op:
                return t.text;
        }
        return "token";
    }

    [[noreturn]] void fail(const std::string& message, const Token& at) const {
        throw_syntax_error(message, at.line, at.column);
    }
    [[noreturn]] void fail(const std::string& message) const { fail(message, current()); }

    const Token& expect_op(std::string_view op) {
        if (!is_op(op)) fail("expected token '" + std::string(op) + "', got '" + describe(current()) + "'");
        return next();
    }
    const Token& expect_name() {
        if (current().type != TokenType::name) fail("expected token 'name', got '" + describe(current()) + "'");
        return next();
    }
    void expect_type(TokenType type, const char* what) {
        if (current().type != type) {
            fail("expected token '" + std::string(what) + "', got '" + describe(current()) + "'");
        }
        next();
    }
    void expect_block_end() { expect_type(TokenType::block_end, "end of statement block"); }

    static Position pos_of(const Token& t) { return {t.line, t.column}; }

    // ---- nesting guards ----------------------------------------------------------------------
    struct NestingGuard {
        explicit NestingGuard(Parser& p) : parser(p) {
            if (++parser.nesting_ > kMaxNesting) parser.fail("template nested too deeply");
        }
        ~NestingGuard() { --parser.nesting_; }
        NestingGuard(const NestingGuard&) = delete;
        NestingGuard& operator=(const NestingGuard&) = delete;
        Parser& parser;
    };

    template <class T>
    std::unique_ptr<T> node(const Token& at) {
        auto n = std::make_unique<T>();
        n->pos = pos_of(at);
        return n;
    }
    template <class T>
    std::unique_ptr<T> node(Position pos) {
        auto n = std::make_unique<T>();
        n->pos = pos;
        return n;
    }

    // Records a child's height on its parent; rejects trees too tall to evaluate recursively.
    void grow(Expr& parent, const ExprPtr& child) {
        if (!child) return;
        parent.depth = std::max(parent.depth, child->depth + 1);
        if (parent.depth > kMaxExprHeight) {
            throw_syntax_error("expression too deeply nested", parent.pos.line, parent.pos.column);
        }
    }
    void grow_args(Expr& parent, const Arguments& args) {
        for (const auto& a : args.positional) grow(parent, a);
        for (const auto& [k, a] : args.keyword) grow(parent, a);
        grow(parent, args.star_args);
        grow(parent, args.star_kwargs);
    }

    // ---- template structure ------------------------------------------------------------------
    bool at_end_token(std::initializer_list<std::string_view> end_tokens) const {
        return current().type == TokenType::name &&
               std::find(end_tokens.begin(), end_tokens.end(), current().text) != end_tokens.end();
    }

    // Parses until a block tag whose name is one of end_tokens (left as the current token).
    Body subparse(std::initializer_list<std::string_view> end_tokens) {
        Body body;
        while (current().type != TokenType::eof) {
            const Token& t = current();
            if (t.type == TokenType::data) {
                auto text = node<Text>(t);
                text->text = t.text;
                body.push_back(std::move(text));
                next();
            } else if (t.type == TokenType::variable_begin) {
                next();
                auto print = node<Print>(t);
                print->expr = parse_tuple(false, true, {});
                expect_type(TokenType::variable_end, "end of print statement");
                body.push_back(std::move(print));
            } else if (t.type == TokenType::block_begin) {
                next();
                if (end_tokens.size() > 0 && at_end_token(end_tokens)) return body;
                parse_statement(body);
                expect_block_end();
            } else {
                fail("unexpected '" + describe(t) + "'");
            }
        }
        if (end_tokens.size() > 0) {
            std::string expected;
            for (auto e : end_tokens) expected += (expected.empty() ? "'" : " or '") + std::string(e) + "'";
            fail("Unexpected end of template. Jinja was looking for the following tags: " + expected + ".");
        }
        return body;
    }

    // `:`? `%}` body until one of end_tokens; drop_needle consumes that end tag's name.
    Body parse_statements(std::initializer_list<std::string_view> end_tokens, bool drop_needle) {
        NestingGuard guard(*this);
        skip_op(":");
        expect_block_end();
        Body body = subparse(end_tokens);
        if (drop_needle) next();
        return body;
    }

    void parse_statement(Body& body) {
        const Token& tag = current();
        if (tag.type != TokenType::name) fail("tag name expected");
        const std::string& name = tag.text;
        if (name == "for") return body.push_back(parse_for());
        if (name == "if") return body.push_back(parse_if());
        if (name == "set") return body.push_back(parse_set());
        if (name == "macro") return body.push_back(parse_macro());
        if (name == "call") return body.push_back(parse_call_block());
        if (name == "filter") return body.push_back(parse_filter_block());
        if (name == "with") return body.push_back(parse_with());
        if (name == "print") return parse_print(body);
        if (name == "break" || name == "continue") return body.push_back(parse_loop_control());
        if (name == "block" || name == "generation" || name == "autoescape") return body.push_back(parse_scope());
        if (name == "include" || name == "import" || name == "from" || name == "extends") {
            return body.push_back(parse_unsupported());
        }
        fail("Encountered unknown tag '" + name + "'.", tag);
    }

    StmtPtr parse_for() {
        auto stmt = node<For>(next());
        stmt->target = parse_target(true, {"in"}, false);
        if (!skip_name("in")) fail("expected token 'in', got '" + describe(current()) + "'");
        stmt->iterable = parse_tuple(false, false, {"recursive"});
        if (skip_name("if")) stmt->condition = parse_expression(true);
        stmt->recursive = skip_name("recursive");
        ++loop_depth_;
        stmt->body = parse_statements({"endfor", "else"}, false);
        --loop_depth_;
        if (next().text == "else") stmt->otherwise = parse_statements({"endfor"}, true);
        return stmt;
    }

    StmtPtr parse_if() {
        auto stmt = node<If>(next());
        while (true) {
            ExprPtr test = parse_tuple(false, false, {});
            Body branch = parse_statements({"elif", "else", "endif"}, false);
            stmt->branches.emplace_back(std::move(test), std::move(branch));
            const std::string& tag = next().text;
            if (tag == "elif") continue;
            if (tag == "else") stmt->otherwise = parse_statements({"endif"}, true);
            break;
        }
        return stmt;
    }

    StmtPtr parse_set() {
        const Token& tag = next();
        Target target = parse_target(true, {}, true);
        if (skip_op("=")) {
            auto stmt = node<Set>(tag);
            stmt->target = std::move(target);
            stmt->value = parse_tuple(false, true, {});
            return stmt;
        }
        auto stmt = node<SetBlock>(tag);
        stmt->target = std::move(target);
        if (is_op("|")) stmt->filter = parse_filter(nullptr, false);
        stmt->body = parse_statements({"endset"}, true);
        return stmt;
    }

    void parse_signature(MacroDef& def) {
        expect_op("(");
        while (!is_op(")")) {
            if (!def.params.empty()) expect_op(",");
            def.params.push_back(expect_name().text);
            if (skip_op("=")) {
                def.defaults.push_back(parse_expression(true));
            } else if (!def.defaults.empty()) {
                fail("non-default argument follows default argument");
            }
        }
        expect_op(")");
    }

    // Parses a macro-like body, noting which of the special names it uses.
    void parse_macro_body(MacroDef& def, std::string_view end_tag) {
        macro_stack_.push_back(&def);
        const int saved_loop_depth = loop_depth_;
        loop_depth_ = 0;  // a loop outside a macro does not let the body break out of it
        def.body = parse_statements({end_tag}, true);
        loop_depth_ = saved_loop_depth;
        macro_stack_.pop_back();
    }

    StmtPtr parse_macro() {
        auto stmt = node<Macro>(next());
        stmt->def.name = expect_name().text;
        parse_signature(stmt->def);
        parse_macro_body(stmt->def, "endmacro");
        return stmt;
    }

    StmtPtr parse_call_block() {
        const Token& tag = next();
        auto stmt = node<CallBlock>(tag);
        stmt->caller.name = "caller";
        if (is_op("(")) parse_signature(stmt->caller);
        stmt->call = parse_expression(true);
        if (stmt->call->kind != ExprKind::call) fail("expected call", tag);
        parse_macro_body(stmt->caller, "endcall");
        return stmt;
    }

    StmtPtr parse_filter_block() {
        auto stmt = node<FilterBlock>(next());
        stmt->filter = parse_filter(nullptr, true);
        stmt->body = parse_statements({"endfilter"}, true);
        return stmt;
    }

    StmtPtr parse_with() {
        auto stmt = node<With>(next());
        while (current().type != TokenType::block_end) {
            if (!stmt->targets.empty()) expect_op(",");
            stmt->targets.push_back(parse_target(false, {}, false));
            expect_op("=");
            stmt->values.push_back(parse_expression(true));
        }
        stmt->body = parse_statements({"endwith"}, true);
        return stmt;
    }

    void parse_print(Body& body) {
        next();
        bool first = true;
        while (current().type != TokenType::block_end) {
            if (!first) expect_op(",");
            first = false;
            auto print = node<Print>(current());
            print->expr = parse_expression(true);
            body.push_back(std::move(print));
        }
    }

    StmtPtr parse_loop_control() {
        const Token& tag = next();
        if (loop_depth_ == 0) fail("'" + tag.text + "' outside loop", tag);
        auto stmt = std::make_unique<LoopControl>(tag.text == "break" ? StmtKind::loop_break : StmtKind::loop_continue);
        stmt->pos = pos_of(tag);
        return stmt;
    }

    StmtPtr parse_scope() {
        const Token& tag = next();
        auto stmt = node<Scope>(tag);
        if (tag.text == "block") {
            const std::string name = expect_name().text;
            skip_name("scoped");
            skip_name("required");
            stmt->body = parse_statements({"endblock"}, true);
            skip_name(name);
        } else if (tag.text == "autoescape") {
            parse_expression(true);
            stmt->body = parse_statements({"endautoescape"}, true);
        } else {
            stmt->body = parse_statements({"endgeneration"}, true);
        }
        return stmt;
    }

    // `with context` / `without context` after include, import and from.
    void skip_context_modifier() {
        if ((is_name("with") || is_name("without")) && look().type == TokenType::name && look().text == "context") {
            next();
            next();
        }
    }

    StmtPtr parse_unsupported() {
        const Token& tag = next();
        auto stmt = node<Unsupported>(tag);
        stmt->tag = tag.text;
        parse_expression(true);  // the template name
        if (tag.text == "include") {
            if (is_name("ignore") && look().type == TokenType::name && look().text == "missing") {
                next();
                next();
            }
            skip_context_modifier();
        } else if (tag.text == "import") {
            if (!skip_name("as")) fail("expected token 'as', got '" + describe(current()) + "'");
            expect_name();
            skip_context_modifier();
        } else if (tag.text == "from") {
            if (!skip_name("import")) fail("expected token 'import', got '" + describe(current()) + "'");
            do {
                if ((is_name("with") || is_name("without")) && look().text == "context") break;
                expect_name();
                if (skip_name("as")) expect_name();
            } while (skip_op(","));
            skip_context_modifier();
        }
        return stmt;
    }

    // ---- assignment targets ------------------------------------------------------------------
    Target parse_target(bool with_tuple, std::initializer_list<std::string_view> extra_end, bool with_namespace) {
        if (!with_tuple) return parse_target_primary(with_namespace);
        Target tuple;
        tuple.kind = Target::Kind::tuple;
        tuple.pos = pos_of(current());
        bool is_tuple = false;
        while (true) {
            if (!tuple.items.empty()) expect_op(",");
            if (is_tuple_end(extra_end)) break;
            tuple.items.push_back(parse_target_primary(with_namespace));
            if (is_op(",")) {
                is_tuple = true;
            } else {
                break;
            }
        }
        if (!is_tuple) {
            if (tuple.items.empty()) fail("Expected an expression, got '" + describe(current()) + "'");
            return std::move(tuple.items.front());
        }
        return tuple;
    }

    Target parse_target_primary(bool with_namespace) {
        NestingGuard guard(*this);
        const Token& t = current();
        Target target;
        target.pos = pos_of(t);
        if (t.type == TokenType::name) {
            static const char* const kConstants[] = {"true", "false", "True", "False", "none", "None"};
            for (const char* c : kConstants) {
                if (t.text == c) fail("can't assign to 'const'");
            }
            next();
            target.name = t.text;
            if (with_namespace && is_op(".")) {
                next();
                target.kind = Target::Kind::namespace_attr;
                target.attribute = expect_name().text;
            }
            return target;
        }
        if (t.type == TokenType::op && t.text == "(") {
            next();
            Target inner = parse_target(true, {}, with_namespace);
            expect_op(")");
            return inner;
        }
        fail("can't assign to '" + describe(t) + "'");
    }

    bool is_tuple_end(std::initializer_list<std::string_view> extra_end) const {
        const Token& t = current();
        if (t.type == TokenType::variable_end || t.type == TokenType::block_end) return true;
        if (t.type == TokenType::op && t.text == ")") return true;
        return t.type == TokenType::name && std::find(extra_end.begin(), extra_end.end(), t.text) != extra_end.end();
    }

    // ---- expressions ---------------------------------------------------------------------------
    // A comma-separated expression list; a single item without a comma is returned as is.
    ExprPtr parse_tuple(bool explicit_parentheses, bool with_condexpr,
                        std::initializer_list<std::string_view> extra_end) {
        const Token& start = current();
        auto tuple = node<ListExpr>(start);
        tuple->kind = ExprKind::tuple;
        bool is_tuple = false;
        while (true) {
            if (!tuple->items.empty()) expect_op(",");
            if (is_tuple_end(extra_end)) break;
            tuple->items.push_back(parse_expression(with_condexpr));
            grow(*tuple, tuple->items.back());
            if (is_op(",")) {
                is_tuple = true;
            } else {
                break;
            }
        }
        if (!is_tuple) {
            if (!tuple->items.empty()) return std::move(tuple->items.front());
            if (!explicit_parentheses) fail("Expected an expression, got '" + describe(current()) + "'");
        }
        return tuple;
    }

    ExprPtr parse_expression(bool with_condexpr) {
        NestingGuard guard(*this);
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    ExprPtr parse_condexpr() {
        ExprPtr expr = parse_or();
        while (is_name("if")) {
            auto cond = node<Conditional>(next());
            cond->test = parse_or();
            if (skip_name("else")) cond->otherwise = parse_condexpr();
            cond->then = std::move(expr);
            grow(*cond, cond->test);
            grow(*cond, cond->then);
            grow(*cond, cond->otherwise);
            expr = std::move(cond);
        }
        return expr;
    }

    ExprPtr binary(BinaryOp op, const Token& at, ExprPtr left, ExprPtr right) {
        auto n = node<Binary>(at);
        n->op = op;
        n->left = std::move(left);
        n->right = std::move(right);
        grow(*n, n->left);
        grow(*n, n->right);
        return n;
    }

    ExprPtr parse_or() {
        ExprPtr left = parse_and();
        while (is_name("or")) {
            const Token& at = next();
            left = binary(BinaryOp::logical_or, at, std::move(left), parse_and());
        }
        return left;
    }

    ExprPtr parse_and() {
        ExprPtr left = parse_not();
        while (is_name("and")) {
            const Token& at = next();
            left = binary(BinaryOp::logical_and, at, std::move(left), parse_not());
        }
        return left;
    }

    ExprPtr unary(UnaryOp op, const Token& at, ExprPtr operand) {
        auto n = node<Unary>(at);
        n->op = op;
        n->operand = std::move(operand);
        grow(*n, n->operand);
        return n;
    }

    ExprPtr parse_not() {
        if (is_name("not")) {
            NestingGuard guard(*this);
            const Token& at = next();
            return unary(UnaryOp::logical_not, at, parse_not());
        }
        return parse_compare();
    }

    ExprPtr parse_compare() {
        const Token& start = current();
        ExprPtr first = parse_math1();
        auto cmp = node<Compare>(start);
        while (true) {
            CompareOp op;
            if (is_op("=="))
                op = CompareOp::eq;
            else if (is_op("!="))
                op = CompareOp::ne;
            else if (is_op("<"))
                op = CompareOp::lt;
            else if (is_op("<="))
                op = CompareOp::le;
            else if (is_op(">"))
                op = CompareOp::gt;
            else if (is_op(">="))
                op = CompareOp::ge;
            else if (is_name("in"))
                op = CompareOp::in;
            else if (is_name("not") && look().type == TokenType::name && look().text == "in") {
                next();
                op = CompareOp::not_in;
            } else {
                break;
            }
            next();
            cmp->rest.emplace_back(op, parse_math1());
            grow(*cmp, cmp->rest.back().second);
        }
        if (cmp->rest.empty()) return first;
        cmp->first = std::move(first);
        grow(*cmp, cmp->first);
        return cmp;
    }

    ExprPtr parse_math1() {
        ExprPtr left = parse_concat();
        while (is_op("+") || is_op("-")) {
            const Token& at = next();
            left = binary(at.text == "+" ? BinaryOp::add : BinaryOp::sub, at, std::move(left), parse_concat());
        }
        return left;
    }

    ExprPtr parse_concat() {
        const Token& start = current();
        ExprPtr first = parse_math2();
        if (!is_op("~")) return first;
        auto cat = node<Concat>(start);
        cat->items.push_back(std::move(first));
        while (skip_op("~")) cat->items.push_back(parse_math2());
        for (const auto& item : cat->items) grow(*cat, item);
        return cat;
    }

    ExprPtr parse_math2() {
        ExprPtr left = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const Token& at = next();
            const BinaryOp op = at.text == "*"    ? BinaryOp::mul
                                : at.text == "/"  ? BinaryOp::div
                                : at.text == "//" ? BinaryOp::floordiv
                                                  : BinaryOp::mod;
            left = binary(op, at, std::move(left), parse_pow());
        }
        return left;
    }

    ExprPtr parse_pow() {
        ExprPtr left = parse_unary(true);
        while (is_op("**")) {
            const Token& at = next();
            left = binary(BinaryOp::pow, at, std::move(left), parse_unary(true));
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        NestingGuard guard(*this);
        ExprPtr node_;
        if (is_op("-") || is_op("+")) {
            const Token& at = next();
            node_ = unary(at.text == "-" ? UnaryOp::negate : UnaryOp::plus, at, parse_unary(false));
        } else {
            node_ = parse_primary();
        }
        node_ = parse_postfix(std::move(node_));
        if (with_filter) node_ = parse_filter_expr(std::move(node_));
        return node_;
    }

    ExprPtr literal(const Token& at, Value value) {
        auto lit = node<Literal>(at);
        lit->value = std::move(value);
        return lit;
    }

    ExprPtr parse_primary() {
        const Token& t = current();
        switch (t.type) {
            case TokenType::name: {
                next();
                if (t.text == "true" || t.text == "True") return literal(t, Value::boolean(true));
                if (t.text == "false" || t.text == "False") return literal(t, Value::boolean(false));
                if (t.text == "none" || t.text == "None") return literal(t, Value::none());
                for (MacroDef* def : macro_stack_) {
                    if (t.text == "caller") def->uses_caller = true;
                    if (t.text == "varargs") def->uses_varargs = true;
                    if (t.text == "kwargs") def->uses_kwargs = true;
                }
                auto name = node<Name>(t);
                name->name = t.text;
                return name;
            }
            case TokenType::string: {
                std::string text;
                while (current().type == TokenType::string) text += next().text;  // adjacent literals join
                return literal(t, Value::string(std::move(text)));
            }
            case TokenType::integer:
                next();
                return literal(t, Value::integer(t.int_value));
            case TokenType::floating:
                next();
                return literal(t, Value::floating(t.float_value));
            case TokenType::op:
                if (t.text == "(") {
                    next();
                    ExprPtr inner = parse_tuple(true, true, {});
                    expect_op(")");
                    return inner;
                }
                if (t.text == "[") return parse_list();
                if (t.text == "{") return parse_dict();
                break;
            default:
                break;
        }
        fail("unexpected '" + describe(t) + "'");
    }

    ExprPtr parse_list() {
        auto list = node<ListExpr>(next());
        list->kind = ExprKind::list;
        while (!is_op("]")) {
            if (!list->items.empty()) expect_op(",");
            if (is_op("]")) break;
            list->items.push_back(parse_expression(true));
            grow(*list, list->items.back());
        }
        expect_op("]");
        return list;
    }

    ExprPtr parse_dict() {
        auto dict = node<DictExpr>(next());
        while (!is_op("}")) {
            if (!dict->items.empty()) expect_op(",");
            if (is_op("}")) break;
            ExprPtr key = parse_expression(true);
            expect_op(":");
            ExprPtr value = parse_expression(true);
            grow(*dict, key);
            grow(*dict, value);
            dict->items.emplace_back(std::move(key), std::move(value));
        }
        expect_op("}");
        return dict;
    }

    ExprPtr parse_postfix(ExprPtr expr) {
        while (true) {
            if (is_op(".") || is_op("[")) {
                expr = parse_subscript(std::move(expr));
            } else if (is_op("(")) {
                expr = parse_call(std::move(expr));
            } else {
                return expr;
            }
        }
    }

    ExprPtr parse_filter_expr(ExprPtr expr) {
        while (true) {
            if (is_op("|")) {
                expr = parse_filter(std::move(expr), false);
            } else if (is_name("is")) {
                expr = parse_test(std::move(expr));
            } else if (is_op("(")) {
                expr = parse_call(std::move(expr));
            } else {
                return expr;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr object) {
        const Token& at = next();
        if (at.text == ".") {
            const Token& attr = current();
            if (attr.type == TokenType::name) {
                next();
                auto get = node<Getattr>(at);
                get->object = std::move(object);
                get->attribute = attr.text;
                grow(*get, get->object);
                return get;
            }
            if (attr.type != TokenType::integer) fail("expected name or number");
            next();
            auto get = node<Getitem>(at);
            get->object = std::move(object);
            get->index = literal(attr, Value::integer(attr.int_value));
            grow(*get, get->object);
            return get;
        }
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
            if (!args.empty()) expect_op(",");
            args.push_back(parse_subscribed());
        }
        expect_op("]");
        auto get = node<Getitem>(at);
        get->object = std::move(object);
        if (args.size() == 1) {
            get->index = std::move(args.front());
        } else {
            auto tuple = node<ListExpr>(at);
            tuple->kind = ExprKind::tuple;
            tuple->items = std::move(args);
            for (const auto& item : tuple->items) grow(*tuple, item);
            get->index = std::move(tuple);
        }
        grow(*get, get->object);
        grow(*get, get->index);
        return get;
    }

    ExprPtr parse_subscribed() {
        const Token& start = current();
        ExprPtr first;
        if (!is_op(":")) {
            first = parse_expression(true);
            if (!is_op(":")) return first;
        }
        next();  // the first ':'
        auto slice = node<Slice>(start);
        slice->start = std::move(first);
        if (!is_op("]") && !is_op(",") && !is_op(":")) slice->stop = parse_expression(true);
        if (skip_op(":") && !is_op("]") && !is_op(",")) slice->step = parse_expression(true);
        grow(*slice, slice->start);
        grow(*slice, slice->stop);
        grow(*slice, slice->step);
        return slice;
    }

    Arguments parse_call_args() {
        const Token& open = expect_op("(");
        Arguments args;
        auto ensure = [&](bool ok) {
            if (!ok) fail("invalid syntax for function call expression", open);
        };
        bool require_comma = false;
        while (!is_op(")")) {
            if (require_comma) {
                expect_op(",");
                if (is_op(")")) break;  // trailing comma
            }
            if (skip_op("*")) {
                ensure(!args.star_args && !args.star_kwargs);
                args.star_args = parse_expression(true);
            } else if (skip_op("**")) {
                ensure(!args.star_kwargs);
                args.star_kwargs = parse_expression(true);
            } else if (current().type == TokenType::name && look().type == TokenType::op && look().text == "=") {
                ensure(!args.star_kwargs);
                std::string key = next().text;
                next();
                args.keyword.emplace_back(std::move(key), parse_expression(true));
            } else {
                ensure(!args.star_args && !args.star_kwargs && args.keyword.empty());
                args.positional.push_back(parse_expression(true));
            }
            require_comma = true;
        }
        expect_op(")");
        return args;
    }

    ExprPtr parse_call(ExprPtr callee) {
        auto call = node<Call>(current());
        call->args = parse_call_args();
        call->callee = std::move(callee);
        grow(*call, call->callee);
        grow_args(*call, call->args);
        return call;
    }

    std::string parse_dotted_name() {
        std::string name = expect_name().text;
        while (skip_op(".")) name += "." + expect_name().text;
        return name;
    }

    ExprPtr parse_filter(ExprPtr operand, bool start_inline) {
        while (is_op("|") || start_inline) {
            if (!start_inline) next();
            start_inline = false;
            auto filter = node<FilterOrTest>(current());
            filter->kind = ExprKind::filter;
            filter->name = parse_dotted_name();
            if (is_op("(")) filter->args = parse_call_args();
            filter->operand = std::move(operand);
            grow(*filter, filter->operand);
            grow_args(*filter, filter->args);
            operand = std::move(filter);
        }
        return operand;
    }

    ExprPtr parse_test(ExprPtr operand) {
        const Token& at = next();  // `is`
        const bool negated = skip_name("not");
        auto test = node<FilterOrTest>(at);
        test->kind = ExprKind::test;
        test->name = parse_dotted_name();
        const Token& t = current();
        const bool starts_argument = t.type == TokenType::name || t.type == TokenType::string ||
                                     t.type == TokenType::integer || t.type == TokenType::floating ||
                                     (t.type == TokenType::op && (t.text == "[" || t.text == "{"));
        if (is_op("(")) {
            test->args = parse_call_args();
        } else if (starts_argument && !is_name("else") && !is_name("or") && !is_name("and")) {
            if (is_name("is")) fail("You cannot chain multiple tests with is");
            test->args.positional.push_back(parse_postfix(parse_primary()));
        }
        test->operand = std::move(operand);
        grow(*test, test->operand);
        grow_args(*test, test->args);
        if (!negated) return test;
        return unary(UnaryOp::logical_not, at, std::move(test));
    }

    std::vector<Token> tokens_;
    std::size_t index_ = 0;
    int nesting_ = 0;
    int loop_depth_ = 0;
    std::vector<MacroDef*> macro_stack_;
};

}  // namespace

ast::Template parse_template(std::string_view source) {
    ast::Template tmpl = Parser(tokenize(source)).parse();
    check_filter_and_test_names(tmpl);
    return tmpl;
}

}  // namespace tfx::jinja
