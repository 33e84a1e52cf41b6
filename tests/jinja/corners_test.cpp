// Jinja2 corner cases. Each expected result is what Python Jinja2 3.1.2 (Debian 12, the version
// behind the goldens) renders in transformers' environment for the same template and context.
#include <gtest/gtest.h>

#include "jinja_test_support.h"

namespace tfx::jinja::test {
namespace {

TEST(JinjaCorners, WhitespaceControl) {
    const Case cases[] = {
        {"a\n  {% if true %}\n  x\n  {% endif %}\nb", "{}", Expect::output_of("a\n  x\nb")},
        {"a\n  {%- if true %}x{% endif -%}  \n b", "{}", Expect::output_of("axb")},
        {"  {{ 'x' }}  \n{% if true %}y{% endif %}", "{}", Expect::output_of("  x  \ny")},
        {"{% if true %}\n\nx{% endif %}\n", "{}", Expect::output_of("\nx")},
        {"a {#- c -#} b", "{}", Expect::output_of("ab")},
        {"a\n  {# comment #}\nb", "{}", Expect::output_of("a\nb")},
        {"a {%+ if true %}x{% endif +%}\nb", "{}", Expect::output_of("a x\nb")},
        {"{% raw %}{{ x }}{% endraw %}", "{}", Expect::output_of("{{ x }}")},
        {"  {% raw %}\n{{ x }}\n  {% endraw %}\nafter", "{}", Expect::output_of("\n{{ x }}\nafter")},
        {"x{{- ' y ' -}}z", "{}", Expect::output_of("x y z")},
        {"{{ 1 }}\n", "{}", Expect::output_of("1")},
        {"line1\r\nline2\r{% if true %}\r\nx{% endif %}", "{}", Expect::output_of("line1\nline2\nx")},
        {"\t{% if true %}t{% endif %}", "{}", Expect::output_of("t")},
        {"a\u00a0{% if true %}x{% endif %}", "{}", Expect::output_of("a\u00a0x")},
        {"a\n\u3000 {% if true %}x{% endif %}", "{}", Expect::output_of("a\nx")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, LiteralsAndPrinting) {
    const Case cases[] = {
        {"{{ 1.0 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ 123456789.123 }} {{ 1e16 }} {{ 1e15 }} {{ -0.0 }}", "{}",
         Expect::output_of("1.0 1e+20 1e-05 0.30000000000000004 123456789.123 1e+16 1000000000000000.0 -0.0")},
        {"{{ [1, 'a', none, true, 1.5, {'k': [1,2]}] }}", "{}",
         Expect::output_of("[1, 'a', None, True, 1.5, {'k': [1, 2]}]")},
        {"{{ ('a',) }} {{ () }} {{ (1, 2) }}", "{}", Expect::output_of("('a',) () (1, 2)")},
        {"{{ \"it's\" }} {{ ['it\\'s', 'say \"hi\"', 'both \\' \"'] }}", "{}",
         Expect::output_of("it's [\"it's\", 'say \"hi\"', 'both \\' \"']")},
        {"{{ ['\\n\\t\\x01\\u200d\\u00a0\\u3000\\ufeff\\U0001F600é'] }}", "{}",
         Expect::output_of("['\\n\\t\\x01\\u200d\\xa0\\u3000\\ufeff😀é']")},
        {"{{ 'a' 'b' }}", "{}", Expect::output_of("ab")},
        {"{{ '\\x41\\101\\u0042\\N' }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }} {{ 1_0.5 }}", "{}", Expect::output_of("31 15 5 1000 10.5")},
        {"{{ none }} {{ None }} {{ True }} {{ false }}", "{}", Expect::output_of("None None True False")},
        {"{{ x }}", "{\"x\": {\"a\": 1, \"b\": [true, null, 2.5]}}",
         Expect::output_of("{'a': 1, 'b': [True, None, 2.5]}")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, Operators) {
    const Case cases[] = {
        {"{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} "
         "{{ -7.5 % 2 }}",
         "{}", Expect::output_of("3 -4 -2 2 3.5 1024 0.5 3.0 0.5")},
        {"{{ 'ab' * 3 }} {{ [1] * 2 }} {{ 3 * 'x' }}", "{}", Expect::output_of("ababab [1, 1] xxx")},
        {"{{ 'a' ~ 1 ~ none ~ [1] }}", "{}", Expect::output_of("a1None[1]")},
        {"{{ 1 + true }} {{ true + true }} {{ 1 == 1.0 }} {{ 1 == true }} {{ '' == false }} {{ '' != false }} {{ 0 == "
         "false }}",
         "{}", Expect::output_of("2 2 True True False True True")},
        {"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1,2] < [1,3] }}", "{}",
         Expect::output_of("True False True True")},
        {"{{ 'a' in 'cat' }} {{ 'x' not in ['x'] }} {{ 'k' in {'k': 1} }} {{ 1 in [1.0] }}", "{}",
         Expect::output_of("True False True True")},
        {"{{ 'a' in none }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 1 in 'abc' }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'a' + none }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'a' + [1] }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ [1] + 'a' }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 1 + 'a' }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 1 < 'a' }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 1 / 0 }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 1 // 0 }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ not none }} {{ not [] }} {{ not 'x' }} {{ none or 'd' }} {{ 0 and 1 }} {{ 2 and 3 }}", "{}",
         Expect::output_of("True True False d 0 3")},
        {"{{ 'y' if true }}|{{ 'y' if false }}|{{ 'a' if false else 'b' if false else 'c' }}", "{}",
         Expect::output_of("y||c")},
        {"{{ -x }} {{ +x }} {{ -(-3) }}", "{\"x\": 2}", Expect::output_of("-2 2 3")},
        {"{{ -'a' }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 10 - 2 - 3 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }}", "{}", Expect::output_of("5 64 4")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, Subscripts) {
    const Case cases[] = {
        {"{{ x[1:] }} {{ x[::-1] }} {{ x[-1] }} {{ x[:-1] }} {{ x[10] }} {{ x[::2] }} {{ x[5:1:-2] }}",
         "{\"x\": [0, 1, 2, 3, 4, 5, 6]}",
         Expect::output_of("[1, 2, 3, 4, 5, 6] [6, 5, 4, 3, 2, 1, 0] 6 [0, 1, 2, 3, 4, 5]  [0, 2, 4, 6] [5, 3]")},
        {"{{ s[1:3] }} {{ s[::-1] }} {{ s[-1] }} {{ s[0] }}", "{\"s\": \"héllo😀\"}",
         Expect::output_of("él 😀olléh 😀 h")},
        {"{{ x[[1]] }}|{{ x[1.5] }}|{{ x[none] }}", "{\"x\": {\"a\": 1}}", Expect::output_of("||")},
        {"{{ x.0 }} {{ x[0] }}", "{\"x\": [\"z\"]}", Expect::output_of("z z")},
        {"{{ none.x }}|{{ none['x'] }}|{{ 'abc'.x }}|{{ 5.x }}|{{ [1].x }}", "{}", Expect::output_of("||||")},
        {"{{ u.x }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ x[1.0] }}|{{ x[true] }}", "{\"x\": [1, 2]}", Expect::output_of("|2")},
        {"{{ x[::0] }}", "{\"x\": [1]}", Expect::error(ErrorKind::runtime)},
        {"{{ x['a':] }}", "{\"x\": [1]}", Expect::error(ErrorKind::runtime)},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, Undefined) {
    const Case cases[] = {
        {"{{ u }}|{{ u|default('d') }}|{{ u is defined }}|{{ u is undefined }}|{{ u == u }}|{{ u|length }}|{% for i in "
         "u %}x{% endfor %}",
         "{}", Expect::output_of("|d|False|True|True|0|")},
        {"{{ u + 1 }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ u() }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ u|tojson }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ u is none }}{{ u is iterable }}{{ u is sequence }}{{ u is callable }}", "{}",
         Expect::output_of("FalseTrueTrueTrue")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, LoopsAndScoping) {
    const Case cases[] = {
        {"{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ "
         "loop.revindex }}{{ loop.revindex0 }}|{% endfor %}",
         "{}", Expect::output_of("10TrueFalse332|21FalseFalse321|32FalseTrue310|")},
        {"{% for x in [1,2,3] %}{{ loop.previtem }}-{{ loop.nextitem }};{% endfor %}", "{}",
         Expect::output_of("-2;1-3;2-;")},
        {"{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}{{ loop.last }}{% endfor %}", "{}",
         Expect::output_of("21False42True")},
        {"{% for x in [] %}a{% else %}empty{% endfor %}", "{}", Expect::output_of("empty")},
        {"{% for x in [1] if false %}a{% else %}none{% endfor %}", "{}", Expect::output_of("none")},
        {"{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}", "{}", Expect::output_of("a=1;b=2;")},
        {"{% for k, v in {'a': 1, 'b': 2}|items %}{{ k }}={{ v }};{% endfor %}", "{}", Expect::output_of("a=1;b=2;")},
        {"{% for a, b in [[1, 2], 'xy'] %}{{ a }}{{ b }}{% endfor %}", "{}", Expect::output_of("12xy")},
        {"{% for a, b in [[1, 2, 3]] %}{% endfor %}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% for k in {'a': 1, 'b': 2} %}{{ k }}{% endfor %}", "{}", Expect::output_of("ab")},
        {"{% for c in 'héy' %}[{{ c }}]{% endfor %}", "{}", Expect::output_of("[h][é][y]")},
        {"{% for x in none %}{% endfor %}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% for x in 5 %}{% endfor %}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% for x in [1,2,3,4,5] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x "
         "}}{% endfor %}",
         "{}", Expect::output_of("13")},
        {"{% for x in [1,2] %}{% for y in 'ab' %}{{ loop.index }}{{ y }}{% endfor %}{{ loop.index }}{% endfor %}", "{}",
         Expect::output_of("1a2b11a2b2")},
        {"{% for x in [1,2,3] %}{{ loop.cycle('a', 'b') }}{{ loop.changed(x > 1) }}{% endfor %}", "{}",
         Expect::output_of("aTruebTrueaFalse")},
        {"{% for x in [{'c': [{'c': []}]}] recursive %}<{{ loop.depth }}{{ loop(x.c) }}>{% endfor %}", "{}",
         Expect::output_of("<1<2>>")},
        {"{% for x in range(3) %}{{ x }}{% endfor %}{{ range(2, 10, 3)|list }}{{ range(5)|length }}", "{}",
         Expect::output_of("012[2, 5, 8]5")},
        {"{{ range(100001)|length }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% set x = 1 %}{% for i in [1,2] %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}", "{}",
         Expect::output_of("12121")},
        {"{% for i in [1] %}{% set tool = 5 %}{% endfor %}{{ tool }}", "{}", Expect::output_of("")},
        {"{% set ns = namespace(a=1, b=[]) %}{% for i in [1,2] %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }} {{ ns "
         "}}",
         "{}", Expect::output_of("4 <Namespace {'a': 4, 'b': []}>")},
        {"{% set ns = namespace() %}{% set ns.x = 3 %}{{ ns.x }}{{ ns.y }}|{{ ns['x'] }}", "{}",
         Expect::output_of("3|3")},
        {"{% set x = 5 %}{% set x.y = 1 %}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = 1, 2 %}{{ c }}", "{}", Expect::output_of("12(1, 2)")},
        {"{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]", "{}", Expect::output_of("[block 2]")},
        {"{% set x | upper %}block{% endset %}[{{ x }}]", "{}", Expect::output_of("[BLOCK]")},
        {"{% filter upper %}hello {{ 'w' }}{% endfilter %}", "{}", Expect::output_of("HELLO W")},
        {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}", "{}", Expect::output_of("3")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, Macros) {
    const Case cases[] = {
        {"{% macro m(a, b='x') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(b=3, a=4) }}{{ m() }}", "{}",
         Expect::output_of("[1x][12][43][x]")},
        {"{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k=4) }}", "{}",
         Expect::output_of("1(2, 3){'k': 4}")},
        {"{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% macro m(a) %}{{ a }}{% endmacro %}{{ m(z=2) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% macro m() %}<{{ caller() }}>{% endmacro %}{% call m() %}body{% endcall %}", "{}",
         Expect::output_of("<body>")},
        {"{% macro m() %}<{{ caller(5) }}>{% endmacro %}{% call(x) m() %}body{{ x }}{% endcall %}", "{}",
         Expect::output_of("<body5>")},
        {"{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}", "{}",
         Expect::output_of("54321")},
        {"{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% set x = 1 %}{% macro m() %}{{ x }}{% endmacro %}{% set x = 2 %}{{ m() }}", "{}", Expect::output_of("2")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, Filters) {
    const Case cases[] = {
        {"{{ '  a b  '|trim }}|{{ none|trim }}|{{ [1, 'a']|trim }}|{{ 'xxaxx'|trim('x') }}|{{ "
         "'\u00a0a\u3000\ufeff'|trim }}",
         "{}", Expect::output_of("a b|None|[1, 'a']|a|a\u3000\ufeff")},
        {"{{ 'hello world'|title }} {{ 'hELLO wORLD'|capitalize }} {{ 'abc'|upper }} {{ 'ÀBC'|lower }} {{ "
         "'foo-bar(baz'|title }}",
         "{}", Expect::output_of("Hello World Hello world ABC àbc Foo-Bar(Baz")},
        {"{{ 'a-b'|replace('-', '+') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ none|replace('o', '0') }}", "{}",
         Expect::output_of("a+b bba N0ne")},
        {"{{ [1, 2]|join(', ') }} {{ ['a', none]|join }} {{ [{'n': 'x'}, {'n': 'y'}]|join('-', attribute='n') }}", "{}",
         Expect::output_of("1, 2 aNone x-y")},
        {"{{ [3, 1, 2]|first }} {{ [3, 1, 2]|last }} {{ []|first }} {{ 'abc'|first }} {{ {'a': 1}|first }}", "{}",
         Expect::output_of("3 2  a a")},
        {"{{ x|length }} {{ 'héllo'|length }} {{ {'a': 1}|count }}", "{\"x\": [1, 2]}", Expect::output_of("2 5 1")},
        {"{{ none|length }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ x|tojson }}", "{\"x\": {\"b\": 1, \"a\": [1.0, 2.5, \"é<>&'\\\"\\n\", null, true], \"c\": {}}}",
         Expect::output_of("{\"b\": 1, \"a\": [1.0, 2.5, \"é<>&'\\\"\\n\", null, true], \"c\": {}}")},
        {"{{ x|tojson(indent=2) }}", "{\"x\": {\"b\": 1, \"a\": [1, {\"z\": []}], \"c\": {}}}",
         Expect::output_of("{\n  \"b\": 1,\n  \"a\": [\n    1,\n    {\n      \"z\": []\n    }\n  ],\n  \"c\": {}\n}")},
        {"{{ x|tojson(4) }}|{{ x|tojson(sort_keys=true) }}|{{ x|tojson(ensure_ascii=true) }}",
         "{\"x\": {\"b\": \"é😀\", \"a\": 1}}",
         Expect::output_of("{\"b\": \"\\u00e9\\ud83d\\ude00\", \"a\": 1}|{\"a\": 1, \"b\": \"é😀\"}|{\"b\": "
                           "\"\\u00e9\\ud83d\\ude00\", \"a\": 1}")},
        {"{{ 'x'|tojson }} {{ 1e-7|tojson }} {{ (1, 2)|tojson }}", "{}", Expect::output_of("\"x\" 1e-07 [1, 2]")},
        {"{{ {1: 'a', none: 2, true: 3}|tojson }}", "{}", Expect::output_of("{\"1\": 3, \"null\": 2}")},
        {"{{ {'a': 1}|items|list }} {{ {'a': 1}.items()|list }} {{ {'a': 1}.keys() }} {{ {'a': 1}.values() }}", "{}",
         Expect::output_of("[('a', 1)] [('a', 1)] dict_keys(['a']) dict_values([1])")},
        {"{{ none|items|list }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'abc'|list }} {{ (1, 2)|list }} {{ {'a': 1}|list }}", "{}",
         Expect::output_of("['a', 'b', 'c'] [1, 2] ['a']")},
        {"{{ 1|string }} {{ none|string }} {{ [1]|string }}", "{}", Expect::output_of("1 None [1]")},
        {"{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ 3.9|int }} {{ none|int }} {{ ' 12 '|int }} "
         "{{ '0x1A'|int(0, 16) }} {{ '1_000'|int }}",
         "{}", Expect::output_of("42 4 0 7 3 0 12 26 1000")},
        {"{{ '4.5'|float }} {{ 'x'|float }} {{ 3|float }} {{ '1e3'|float }} {{ 'inf'|float }} {{ none|float }}", "{}",
         Expect::output_of("4.5 0.0 3.0 1000.0 inf 0.0")},
        {"{{ -3|abs }} {{ (-3.5)|abs }} {{ 2.5|round }} {{ 3.5|round }} {{ 2.675|round(2) }} {{ 3|round }} {{ "
         "2.1|round(method='ceil') }} {{ 2.9|round(0, 'floor') }}",
         "{}", Expect::output_of("3 3.5 2.0 4.0 2.67 3 3.0 2.0")},
        {"{{ [3, 1, 2]|sort }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', 'c']|sort(case_sensitive=true) }} {{ [3, "
         "1]|sort(reverse=true) }}",
         "{}", Expect::output_of("[1, 2, 3] ['A', 'b', 'c'] ['A', 'b', 'c'] [3, 1]")},
        {"{{ [{'a': 2}, {'a': 1}]|sort(attribute='a') }}", "{}", Expect::output_of("[{'a': 1}, {'a': 2}]")},
        {"{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value') }}", "{}",
         Expect::output_of("[('a', 2), ('b', 1)] [('b', 1), ('a', 2)]")},
        {"{{ [1, 2, 1, 'A', 'a']|unique|list }}", "{}", Expect::output_of("[1, 2, 'A']")},
        {"{{ [1, 5, 3]|max }} {{ [1, 5, 3]|min }} {{ []|max }} {{ ['a', 'B']|max }}", "{}",
         Expect::output_of("5 1  B")},
        {"{{ [1, 2, 3]|sum }} {{ [{'v': 1}, {'v': 2}]|sum(attribute='v') }} {{ [1.5]|sum(start=1) }}", "{}",
         Expect::output_of("6 3 2.5")},
        {"{{ [1, 2, 3, 4]|select('odd')|list }} {{ [1, 2, 3, 4]|reject('odd')|list }} {{ [0, 1, none, '']|select|list "
         "}}",
         "{}", Expect::output_of("[1, 3] [2, 4] [1]")},
        {"{{ ['a', 'code_interpreter', 'b']|reject('equalto', 'code_interpreter')|join(', ') }}", "{}",
         Expect::output_of("a, b")},
        {"{{ x|selectattr('role', 'equalto', 'user')|list }} {{ x|rejectattr('role', 'eq', 'user')|list }} {{ "
         "x|selectattr('n')|list }}",
         "{\"x\": [{\"role\": \"user\", \"n\": 1}, {\"role\": \"a\"}]}",
         Expect::output_of("[{'role': 'user', 'n': 1}] [{'role': 'a'}] [{'role': 'user', 'n': 1}]")},
        {"{{ x|map(attribute='role')|list }} {{ ['a', 'b']|map('upper')|list }} {{ x|map(attribute='zz', "
         "default='d')|list }}",
         "{\"x\": [{\"role\": \"user\"}, {\"role\": \"a\"}]}",
         Expect::output_of("['user', 'a'] ['A', 'B'] ['d', 'd']")},
        {"{{ [1, 2]|select('odd')|length }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% set g = [1, 2, 3]|select %}{{ g|first }}{{ g|list }}{{ g|list }}", "{}", Expect::output_of("1[2, 3][]")},
        {"{{ [1,2,3]|reverse|list }} {{ 'abc'|reverse }}", "{}", Expect::output_of("[3, 2, 1] cba")},
        {"{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb'|indent(2, true) }}|{{ 'a\n\nb'|indent(2, blank=true) }}|{{ "
         "'a\nb'|indent('--') }}",
         "{}", Expect::output_of("a\n    b\n\n    c|  a\n  b|a\n  \n  b|a\n--b")},
        {"{{ 'a\u2028b'|indent(2) }}", "{}", Expect::output_of("a\n  b")},
        {"{{ none|indent }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ '%s-%d-%05.2f|%x|%r|%5s|%-5s|' % ('a', 3, 2.5, 255, 'q', 'r', 'l') }}", "{}",
         Expect::output_of("a-3-02.50|ff|'q'|    r|l    |")},
        {"{{ '%(a)s' % {'a': 1} }} {{ '%s' % [1, 2] }} {{ '%d%%' % 5 }} {{ '%s'|format('x') }}", "{}",
         Expect::output_of("1 [1, 2] 5% x")},
        {"{{ '%s %s' % ('a',) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ '{} {}'.format(1, 'a') }} {{ '{0:>5}|{1:.2f}|{x!r}'.format('a', 3.14159, x='q') }} {{ "
         "'{:,}'.format(1234567) }}",
         "{}", Expect::output_of("1 a     a|3.14|'q' 1,234,567")},
        {"{{ 'foo bar baz qux'|truncate(9) }} {{ 'foo bar baz qux'|truncate(9, True) }} {{ 'foo bar baz "
         "qux'|truncate(11) }} {{ 'foo bar baz qux'|truncate(11, False, '...', 0) }}",
         "{}", Expect::output_of("foo... foo ba... foo bar baz qux foo bar...")},
        {"{{ 'hello world foo'|wordcount }} {{ 'x'|center(5) }}| {{ 'ab'|center(5) }}|", "{}",
         Expect::output_of("3   x  |   ab |")},
        {"{{ [1,2,3,4,5]|batch(2)|list }} {{ [1,2,3,4,5]|batch(2, 'x')|list }} {{ [1,2,3,4,5]|slice(2)|list }}", "{}",
         Expect::output_of("[[1, 2], [3, 4], [5]] [[1, 2], [3, 4], [5, 'x']] [[1, 2, 3], [4, 5]]")},
        {"{{ '<a>&'|e }} {{ '<a>'|safe }} {{ 'x'|attr('upper') is callable }}", "{}",
         Expect::output_of("&lt;a&gt;&amp; <a> True")},
        {"{{ 1000|filesizeformat }} {{ 1|filesizeformat }} {{ 1048576|filesizeformat(true) }}", "{}",
         Expect::output_of("1.0 kB 1 Byte 1.0 MiB")},
        {"{{ x|nosuchfilter }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{% if false %}{{ x|nosuchfilter }}{% endif %}ok", "{}", Expect::output_of("ok")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, Tests) {
    const Case cases[] = {
        {"{{ 1 is odd }}{{ 2 is even }}{{ 9 is divisibleby 3 }}{{ 'a' is string }}{{ 1 is number }}{{ true is number "
         "}}{{ 1 is integer }}{{ true is integer }}{{ 1.0 is float }}{{ true is boolean }}",
         "{}", Expect::output_of("TrueTrueTrueTrueTrueTrueTrueFalseTrueTrue")},
        {"{{ {} is mapping }}{{ [] is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is iterable }}{{ none is "
         "iterable }}{{ 'a' is sequence }}{{ {} is sequence }}",
         "{}", Expect::output_of("TrueFalseTrueTrueFalseFalseTrueTrue")},
        {"{{ none is none }}{{ false is false }}{{ 0 is false }}{{ true is true }}{{ 1 is true }}{{ 'a' is lower }}{{ "
         "'A' is upper }}",
         "{}", Expect::output_of("TrueTrueFalseTrueFalseTrueTrue")},
        {"{{ 1 is in [1, 2] }}{{ 1 is eq 1 }}{{ 1 is ne 2 }}{{ 1 is lt 2 }}{{ 1 is gt 2 }}{{ 1 is sameas 1 }}{{ 1 is "
         "== 1 }}{{ 'upper' is filter }}{{ 'odd' is test }}",
         "{}", Expect::error(ErrorKind::syntax)},
        {"{{ x is nosuchtest }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{{ 1 is not none }}{{ not 1 is none }}", "{}", Expect::output_of("TrueTrue")},
        {"{{ range is callable }}{{ 'a' is callable }}", "{}", Expect::output_of("TrueFalse")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, StringMethods) {
    const Case cases[] = {
        {"{{ ' a '.strip() }}|{{ 'xax'.strip('x') }}|{{ ' a '.lstrip() }}|{{ ' a '.rstrip() }}|{{ 'a,b,,c'.split(',') "
         "}}|{{ ' a  b '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}",
         "{}", Expect::output_of("a|a|a | a|['a', 'b', '', 'c']|['a', 'b']|['a', 'b c']|['a b', 'c']")},
        {"{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x', 'c')) }}{{ 'abc'.startswith('b', 1) }}{{ 'abc'.upper() "
         "}}{{ 'ABC'.lower() }}{{ 'hello world'.title() }}{{ 'abc'.capitalize() }}",
         "{}", Expect::output_of("TrueTrueTrueABCabcHello WorldAbc")},
        {"{{ 'abcabc'.find('c') }}{{ 'abcabc'.rfind('c') }}{{ 'abcabc'.count('bc') }}{{ 'abc'.replace('b', 'x') }}{{ "
         "'abc'.find('z') }}{{ 'a'.join(['1', '2']) }}",
         "{}", Expect::output_of("252axc-11a2")},
        {"{{ 'abc'.index('z') }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'a\\nb\\r\\nc'.splitlines() }}{{ 'ab'.center(6, '*') }}{{ '5'.zfill(3) }}{{ 'a=b'.partition('=') }}{{ "
         "'x.y.z'.rpartition('.') }}",
         "{}", Expect::output_of("['a', 'b', 'c']**ab**005('a', '=', 'b')('x.y', '.', 'z')")},
        {"{{ 'x'.isalpha() }}{{ '12'.isdigit() }}{{ ' '.isspace() }}{{ 'Ab'.isupper() }}{{ 'ab'.islower() }}{{ "
         "'ab1'.isalnum() }}",
         "{}", Expect::output_of("TrueTrueTrueFalseTrueTrue")},
        {"{{ 'ΣΑΣ'.lower() }} {{ 'ß'.upper() }} {{ 'ǆ'.title() }} {{ 'ﬁx'.capitalize() }} {{ 'İ'.lower()|length }}",
         "{}", Expect::output_of("σας SS ǅ Fix 2")},
        {"{{ x.strip() }}", "{\"x\": [1]}", Expect::error(ErrorKind::runtime)},
        {"{{ x.append }}|{{ x.append is defined }}", "{\"x\": [1]}", Expect::output_of("|False")},
        {"{{ d.get('a') }}{{ d.get('z') }}{{ d.get('z', 5) }}{{ d.update is defined }}{{ d.pop is defined }}{{ "
         "d.copy() }}",
         "{\"d\": {\"a\": 1, \"update\": 2}}", Expect::output_of("1None5FalseFalse{'a': 1, 'update': 2}")},
        {"{{ [1, 2, 1].count(1) }}{{ [1, 2].index(2) }}", "{}", Expect::output_of("21")},
        {"{{ '%s' % x }}", "{\"x\": \"</think>\"}", Expect::output_of("</think>")},
        {"{% set c = 'a</think>b</think>c' %}{{ c.split('</think>')[-1] }}{{ "
         "c.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}",
         "{}", Expect::output_of("ca")},
    };
    for (const Case& c : cases) check(c);
}

// Non-ASCII str methods: utf8proc's data plus the rules in jinja/unicode.cpp (full case mappings,
// final sigma, Python's isspace/isdigit/isnumeric, the Lowercase/Uppercase properties).
TEST(JinjaCorners, UnicodeStrings) {
    const Case cases[] = {
        {"{{ 'straße ǆemal ﬃ'.upper() }}|{{ 'ÀÉÎ ΣΑΣ ΟΔΟΣ.'.lower() }}|{{ 'ǆemal ŉ ﬃx ᾳ ᾲ'.title() }}|{{ "
         "'ßa'.capitalize() }}",
         "{}", Expect::output_of("STRASSE ǄEMAL FFI|àéî σας οδος.|ǅemal ʼN Ffix ᾼ Ὰͅ|Ssa")},
        {"{{ 'ᾳ ᾈ ǰ'.upper() }}|{{ 'İ'.lower() }}|{{ 'Straße ǅ ª'.swapcase() }}|{{ 'Straße ﬁ Σς'.casefold() }}|{{ "
         "'ΑΣ\\'Σ'.lower() }}",
         "{}", Expect::output_of("ΑΙ ἈΙ J̌|i̇|sTRASSE ǅ ª|strasse fi σσ|ασ'ς")},
        {"{{ '中文日本語'.isalpha() }}{{ 'ª'.islower() }}{{ 'Ⅻ'.isupper() }}{{ 'ǅ'.isupper() }}{{ 'Hello "
         "ǅungla'.istitle() }}{{ 'HeLLo'.istitle() }}{{ 'Ⓐ'.isupper() }}",
         "{}", Expect::output_of("TrueTrueTrueFalseTrueFalseTrue")},
        {"{{ '\\u00a0\\u2028\\u2029\\u0085\\x1c\\u3000'.isspace() }}{{ '\\u200b'.isspace() }}{{ '\\ufeff'.isspace() "
         "}}|{{ 'a\\u00a0b\\u2028c\\u200bd'.split() }}|{{ '\\u2028x\\u00a0'.strip()|length }}",
         "{}", Expect::output_of("TrueFalseFalse|['a', 'b', 'c\\u200bd']|1")},
        {"{{ '²'.isdigit() }}{{ '²'.isdecimal() }}{{ '½'.isdigit() }}{{ '½'.isnumeric() }}{{ '一'.isnumeric() }}{{ "
         "'一'.isdigit() }}{{ '٣'.isdecimal() }}{{ 'Ⅻ'.isalnum() }}{{ '½'.isalnum() }}",
         "{}", Expect::output_of("TrueFalseFalseTrueTrueFalseTrueTrueTrue")},
        {"{{ 'a²b ½ x_1 中文'|wordcount }}|{{ 'ǆemal ßtraße'|title }}|{{ 'ǆemal'|capitalize }}|{{ 'straße'|upper }}",
         "{}", Expect::output_of("4|Ǆemal SStraße|ǅemal|STRASSE")},
        {"{{ ['\\u2028', '\\u00ad', '\\u0378', '中', '\\U000e0001', '\\u00a0'] }}", "{}",
         Expect::output_of("['\\u2028', '\\xad', '\\u0378', '中', '\\U000e0001', '\\xa0']")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, Globals) {
    const Case cases[] = {
        {"{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ namespace(a=1).a }}", "{}",
         Expect::output_of("{'a': 1, 'b': 2} {'x': 1} 1")},
        {"{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{{ c.current }}", "{}",
         Expect::output_of("abab")},
        {"{% set j = joiner('|') %}{% for x in [1, 2, 3] %}{{ j() }}{{ x }}{% endfor %}", "{}",
         Expect::output_of("1|2|3")},
        {"{{ raise_exception('boom: ' ~ 1) }}", "{}", Expect::raised("boom: 1")},
        {"{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%B %d, %Y') }}|{{ strftime_now('%Y-%m-%dT%H:%M:%S %a %A %j "
         "%U %W %V %G %u %w %p %I %y %C %e %D %F %T %R %c %x %X %%') }}",
         "{}",
         Expect::output_of("09 Mar 2025|March 09, 2025|2025-03-09T14:05:07 Sun Sunday 068 10 09 10 2025 7 0 PM 02 25 "
                           "20  9 03/09/25 2025-03-09 14:05:07 14:05 Sun Mar  9 14:05:07 2025 03/09/25 14:05:07 %")},
        {"{{ strftime_now('%-d %-m %_d %^a %f %z %Z %Q') }}", "{}", Expect::output_of("9 3  9 SUN 000000   %Q")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, ErrorsAndRareTags) {
    const Case cases[] = {
        {"{% if %}", "{}", Expect::error(ErrorKind::syntax)},
        {"{% for x in %}{% endfor %}", "{}", Expect::error(ErrorKind::syntax)},
        {"{% if true %}", "{}", Expect::error(ErrorKind::syntax)},
        {"{{ 'unterminated }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{{ 1 + }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{% endif %}", "{}", Expect::error(ErrorKind::syntax)},
        {"{% foo %}", "{}", Expect::error(ErrorKind::syntax)},
        {"{{ a b }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{% set 1 = 2 %}", "{}", Expect::error(ErrorKind::syntax)},
        {"{% macro m(a=1, b) %}{% endmacro %}", "{}", Expect::error(ErrorKind::syntax)},
        {"{{ (1 }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{{ x ]] }}", "{}", Expect::error(ErrorKind::syntax)},
        {"{# unclosed", "{}", Expect::error(ErrorKind::syntax)},
        {"{% generation %}gen{% endgeneration %}", "{}", Expect::output_of("gen")},
        {"{% block b %}blk{% endblock %}", "{}", Expect::output_of("blk")},
        {"{% include 'x' %}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ {'a': 1, 'a': 2} }}", "{}", Expect::output_of("{'a': 2}")},
        {"{{ {[1]: 2} }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ x.y.z }}", "{\"x\": {\"y\": null}}", Expect::output_of("")},
        {"{{ 'abc'[1] }}{{ 'abc'[-1] }}{{ 'abc'[5] }}|", "{}", Expect::output_of("bc|")},
        {"{% set x = [1, 2] %}{{ x is sequence }}{{ x[0:1] is sequence }}", "{}", Expect::output_of("TrueTrue")},
    };
    for (const Case& c : cases) check(c);
}

TEST(JinjaCorners, MixedCorners) {
    const Case cases[] = {
        {"x\n{%- if true %}\ny{% endif %}\n", "{}", Expect::output_of("xy")},
        {"x\u00a0\u2003 {{- 'y' }}", "{}", Expect::output_of("xy")},
        {"x\u00a0\ufeff {{- 'y' }}", "{}", Expect::output_of("x\u00a0\ufeffy")},
        {"a\n  {#- c #}\nb", "{}", Expect::output_of("ab")},
        {"a\n  {# c -#}\n  b", "{}", Expect::output_of("a\nb")},
        {"a\n\t {# c #}  \nb", "{}", Expect::output_of("a\n  \nb")},
        {"{% if true -%}\n\n  x  \n  {%- endif %}", "{}", Expect::output_of("x")},
        {"{{ '%}' }}{% set x = '}}' %}{{ x }}{{ {'a': {'b': 1}} }}", "{}", Expect::output_of("%}}}{'a': {'b': 1}}")},
        {"{{ [1, 2, ] }}{{ {'a': 1, } }}{{ (1, ) }}", "{}", Expect::output_of("[1, 2]{'a': 1}(1,)")},
        {"{{ loop }}|{{ loop is defined }}", "{}", Expect::output_of("|False")},
        {"{{ messages[0]['role'] }}", "{\"messages\": []}", Expect::error(ErrorKind::runtime)},
        {"{{ x is defined and x }}|{{ y is defined and y }}", "{\"x\": 5}", Expect::output_of("5|False")},
        {"{% for k in d %}{{ loop.length }}{{ k }}{% endfor %}", "{\"d\": {\"a\": 1, \"b\": 2}}",
         Expect::output_of("2a2b")},
        {"{{ 'é' < 'z' }}{{ 'Z' < 'a' }}{{ 'ab' < 'abc' }}", "{}", Expect::output_of("FalseTrueTrue")},
        {"{{ [1,2,3][1:2] }}{{ (1,2,3)[::-1] }}{{ (1,2)[5] }}|", "{}", Expect::output_of("[2](3, 2, 1)|")},
        {"{{ 'a' is in 'abc' }}{{ true and none }}|{{ x if x }}|", "{}", Expect::output_of("TrueNone||")},
        {"{{ namespace({'a': 1}).a }}{{ namespace([('b', 2)], c=3) }}", "{}",
         Expect::output_of("1<Namespace {'b': 2, 'c': 3}>")},
        {"{{ x|tojson(indent=1) }}",
         "{\"x\": {\"é\": [\"ü\", {\"k\": null}], \"n\": [1e+16, 0.0001, 100.0, -0.0, 1.7976931348623157e+308, "
         "123456789012345678]}}",
         Expect::output_of("{\n \"é\": [\n  \"ü\",\n  {\n   \"k\": null\n  }\n ],\n \"n\": [\n  1e+16,\n  0.0001,\n  "
                           "100.0,\n  -0.0,\n  1.7976931348623157e+308,\n  123456789012345678\n ]\n}")},
        {"{{ 1.5e300 * 1e10 }} {{ -1.5e300 * 1e10 }} {{ (1.5e300 * 1e10) - (1.5e300 * 1e10) }}", "{}",
         Expect::output_of("inf -inf nan")},
        {"{{ (0.1).__class__ }}|{{ x.__class__ }}|{{ ''.__class__ }}", "{\"x\": {}}", Expect::output_of("||")},
        {"{{ x }}", "{\"x\": -5}", Expect::output_of("-5")},
        {"{{ x|tojson }}", "{\"x\": 0.30000000000000004}", Expect::output_of("0.30000000000000004")},
        {"{{ 3 % 0 }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 3.0 % 0 }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ '%.3e' % 12345.678 }} {{ '%g' % 0.00001 }} {{ '%g' % 123456789 }} {{ '%+d' % 5 }} {{ '% d' % 5 }} {{ "
         "'%#x' % 255 }} {{ '%o' % 8 }} {{ '%c' % 65 }} {{ '%5.1f%%' % 99.44 }}",
         "{}", Expect::output_of("1.235e+04 1e-05 1.23457e+08 +5  5 0xff 10 A  99.4%")},
        {"{{ '%s' % none }}|{{ '%s and %s' % ('a', 'b') }}|{{ '%i' % 3.7 }}", "{}",
         Expect::output_of("None|a and b|3")},
        {"{{ '%d' % 'x' }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ '{:>6.2f}|{:<4}|{:^5}|{:+d}|{:x}|{:#b}|{:08.3f}|{:e}|{:%}'.format(3.14159, 'ab', 'c', 3, 255, 5, "
         "-3.14159, 1234.5, 0.25) }}",
         "{}", Expect::output_of("  3.14|ab  |  c  |+3|ff|0b101|-003.142|1.234500e+03|25.000000%")},
        {"{{ '{0}{1}{0}'.format('a', 'b') }}{{ '{{}}'.format() }}{{ '{a[0]}{b.x}'.format(a=[7], b={'x': 8}) }}", "{}",
         Expect::output_of("aba{}78")},
        {"{{ '{}'.format(1.0) }}{{ '{}'.format(none) }}{{ '{:.3}'.format(3.14159) }}{{ '{:10}'.format(5) }}|", "{}",
         Expect::output_of("1.0None3.14         5|")},
        {"{{ x|string|length }}", "{\"x\": [1, \"a\"]}", Expect::output_of("8")},
        {"{{ 'a b'|replace(' ', '') }}{{ 'abc'|replace('', '-') }}", "{}", Expect::output_of("ab-a-b-c-")},
        {"{{ 'A Title'|lower|title }}{{ 'jOHN o\\'neil mc-donald (x)[y]{z}<w>'|title }}", "{}",
         Expect::output_of("A TitleJohn O'neil Mc-Donald (X)[Y]{Z}<W>")},
        {"{{ 'hello'|capitalize }}{{ ''|capitalize }}{{ '123abc'|capitalize }}", "{}",
         Expect::output_of("Hello123abc")},
        {"{{ 'Hello World'|wordcount }}{{ 'one,two;three'|wordcount }}{{ 'ü_x 9'|wordcount }}", "{}",
         Expect::output_of("232")},
        {"{{ x|length }}", "{\"x\": \"😀👩\u200d👩\u200d👧\"}", Expect::output_of("6")},
        {"{{ 'a' ~ 1.0 ~ true }}", "{}", Expect::output_of("a1.0True")},
        {"{% set x = [] %}{{ x.append(1) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% set d = {} %}{{ d.update({'a': 1}) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ [1, [2, [3]]] }}{{ {'a': {'b': (1, 'x')}} }}", "{}",
         Expect::output_of("[1, [2, [3]]]{'a': {'b': (1, 'x')}}")},
        {"{{ {'a': 1} == {'a': 1.0} }}{{ [1] == (1,) }}{{ (1,) == (1,) }}{{ none == none }}{{ 'a' == 'a' }}", "{}",
         Expect::output_of("TrueFalseTrueTrueTrue")},
        {"{{ x.content }}{{ x['content'] is none }}", "{\"x\": {\"content\": null}}", Expect::output_of("NoneTrue")},
        {"{{ x.tool_calls is defined }}{{ 'tool_calls' in x }}", "{\"x\": {\"role\": \"user\"}}",
         Expect::output_of("FalseFalse")},
        {"{% for m in messages %}{% if loop.first and m.role == 'system' %}S{% endif %}{{ m.role }}{% endfor %}",
         "{\"messages\": [{\"role\": \"system\"}, {\"role\": \"user\"}]}", Expect::output_of("Ssystemuser")},
        {"{% for x in [3, 1, 2]|sort %}{{ x }}{% endfor %}{% for x in 'cba'|sort %}{{ x }}{% endfor %}", "{}",
         Expect::output_of("123abc")},
        {"{{ [('a', 2), ('b', 1)]|sort(attribute='1') }}", "{}", Expect::output_of("[('b', 1), ('a', 2)]")},
        {"{{ [{'a': {'b': 2}}, {'a': {'b': 1}}]|map(attribute='a.b')|list }}", "{}", Expect::output_of("[2, 1]")},
        {"{{ ['x', 'y']|map('replace', 'x', 'z')|list }}", "{}", Expect::output_of("['z', 'y']")},
        {"{{ [1, 2, 3]|select('gt', 1)|list }}{{ [1, 2, 3]|select('divisibleby', 2)|list }}{{ ['a', 'b']|select('in', "
         "'ab')|list }}",
         "{}", Expect::output_of("[2, 3][2]['a', 'b']")},
        {"{{ [1, 2]|map('nosuch')|list }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ none|select|list }}{{ none|map('upper')|list }}", "{}", Expect::output_of("[][]")},
        {"{{ [none, 1]|select('none')|list }}{{ [none, 1]|reject('none')|list }}", "{}",
         Expect::output_of("[None][1]")},
        {"{{ 'abc'|batch(2)|list }}{{ 'abc'|slice(2)|list }}", "{}",
         Expect::output_of("[['a', 'b'], ['c']][['a', 'b'], ['c']]")},
        {"{{ [1]|first is number }}{{ {'b': 1, 'a': 2}|last }}", "{}", Expect::output_of("Truea")},
        {"{{ [1, 'a']|sort }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ [[2], [1, 5]]|sort }}{{ [[2], [1, 5]]|max }}", "{}", Expect::output_of("[[1, 5], [2]][2]")},
        {"{{ x|dictsort(reverse=true) }}", "{\"x\": {\"B\": 1, \"a\": 2, \"c\": 0}}",
         Expect::output_of("[('c', 0), ('B', 1), ('a', 2)]")},
        {"{{ x|dictsort(true) }}", "{\"x\": {\"B\": 1, \"a\": 2, \"c\": 0}}",
         Expect::output_of("[('B', 1), ('a', 2), ('c', 0)]")},
        {"{{ ['b', 'A', 'a', 'B']|unique|list }}{{ ['b', 'A', 'a', 'B']|unique(true)|list }}", "{}",
         Expect::output_of("['b', 'A']['b', 'A', 'a', 'B']")},
        {"{{ [{'n': 'a'}, {'n': 'A'}]|unique(attribute='n')|list }}", "{}", Expect::output_of("[{'n': 'a'}]")},
        {"{{ ['b', 'A']|min }}{{ ['b', 'A']|min(true) }}{{ [{'v': 3}, {'v': 1}]|max(attribute='v') }}", "{}",
         Expect::output_of("AA{'v': 3}")},
        {"{{ '  x  '|center(11) }}|{{ 'abc'|center(4) }}|", "{}", Expect::output_of("     x     |abc |")},
        {"{{ 'test'|indent(first=true) }}|{{ ''|indent }}|{{ '\\n'|indent }}|", "{}",
         Expect::output_of("    test||\n|")},
        {"{{ 'a\\r\\nb\\rc\\x0bd\\x1ce\\x85f'|indent(1) }}", "{}", Expect::output_of("a\n b\n c\n d\n e\n f")},
        {"{{ 2.5|round(0, 'common') }}{{ -2.5|round }}{{ 0.5|round }}{{ 1.5|round }}{{ 1.005|round(2) }}{{ "
         "1234.5678|round(-2) }}",
         "{}", Expect::output_of("2.0-2.00.02.01.01200.0")},
        {"{{ 1|round(2) }}{{ true|round }}{{ 7|round(method='ceil') }}", "{}", Expect::output_of("117.0")},
        {"{{ '1e400'|float }}{{ '-inf'|float }}{{ 'nan'|float }}{{ '  3.5  '|float }}{{ '1_5.0'|float }}{{ '_1'|float "
         "}}",
         "{}", Expect::output_of("inf-infnan3.515.00.0")},
        {"{{ true|int }}{{ '1e3'|int }}{{ '+7'|int }}{{ '- 7'|int }}{{ '0b11'|int(base=0) }}{{ '11'|int(base=2) }}{{ "
         "'inf'|int }}",
         "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'nan'|int }}{{ 'nan'|float|int }}", "{}", Expect::output_of("00")},
        {"{{ [1, 2]|sum(start=[]) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ [[1], [2]]|sum(start=[]) }}", "{}", Expect::output_of("[1, 2]")},
        {"{{ x|items|length }}", "{\"x\": {\"a\": 1}}", Expect::error(ErrorKind::runtime)},
        {"{{ 'abc'|reverse }}{{ [1, 2]|reverse|join }}{{ {'a': 1, 'b': 2}|reverse|list }}", "{}",
         Expect::output_of("cba21['b', 'a']")},
        {"{{ (1, 2)|join('-') }}{{ {'a': 1}|join }}{{ 'abc'|join('.') }}", "{}", Expect::output_of("1-2aa.b.c")},
        {"{{ 'x'|default('y') }}{{ ''|default('y') }}{{ ''|default('y', true) }}{{ none|d('z') }}{{ false|default('y', "
         "boolean=true) }}",
         "{}", Expect::output_of("xyNoney")},
        {"{{ 'x'|e|e }}{{ none|e }}{{ 5|escape }}", "{}", Expect::output_of("xNone5")},
        {"{% for x in [1, 2, 3] %}{{ loop.changed(x // 2) }}{% endfor %}", "{}", Expect::output_of("TrueTrueFalse")},
        {"{% for x in [1, 2] %}{% for y in [3, 4] %}{{ loop.depth }}{% if loop.last %}{% break %}{% endif %}{% endfor "
         "%}{% endfor %}",
         "{}", Expect::output_of("1111")},
        {"{% for x in [1, 2] %}{% set y = loop %}{% endfor %}{{ y }}", "{}", Expect::output_of("")},
        {"{% for x in [1, 2] %}{{ loop }}{% endfor %}", "{}", Expect::output_of("<LoopContext 1/2><LoopContext 2/2>")},
        {"{% for i in range(3) %}{% for j in range(3) %}{% if j == 1 %}{% continue %}{% endif %}{{ i }}{{ j }} {% "
         "endfor %}{% endfor %}",
         "{}", Expect::output_of("00 02 10 12 20 22 ")},
        {"{% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}", "{}", Expect::output_of("123")},
        {"{% set a, b = 'xy' %}{{ b }}{{ a }}", "{}", Expect::output_of("yx")},
        {"{% set a, b = [1] %}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% set ns = namespace(items=[]) %}{% set ns.items = ns.items + [1] %}{% set ns.items = ns.items + [2] %}{{ "
         "ns.items }}",
         "{}", Expect::output_of("[1, 2]")},
        {"{% macro m(x) -%}\n  [{{ x }}]\n{%- endmacro %}\n{{ m(1) }}\n{{- m(2) }}", "{}", Expect::output_of("[1][2]")},
        {"{% macro m() %}{{ caller() }}{% endmacro %}{{ m() }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% macro m(a, b) %}{{ a }}{{ b }}{% endmacro %}{{ m(1, a=2) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% macro m() %}x{% endmacro %}{{ m }}|{{ m is callable }}", "{}", Expect::output_of("<Macro 'm'>|True")},
        {"{% macro outer() %}{% macro inner() %}i{% endmacro %}o{{ inner() }}{% endmacro %}{{ outer() }}", "{}",
         Expect::output_of("oi")},
        {"{% set x = 1 %}{% macro m() %}{% set x = 2 %}{{ x }}{% endmacro %}{{ m() }}{{ x }}", "{}",
         Expect::output_of("21")},
        {"{% if true %}{% set y = 1 %}{% endif %}{{ y }}", "{}", Expect::output_of("1")},
        {"{% with %}{% set q = 1 %}{% endwith %}{{ q }}", "{}", Expect::output_of("")},
        {"{% filter upper %}{% set z = 1 %}{{ z }}{% endfilter %}{{ z }}", "{}", Expect::output_of("1")},
        {"{% filter trim|upper %}  ab  {% endfilter %}|", "{}", Expect::output_of("AB|")},
        {"{% set x | trim %}  ab  {% endset %}[{{ x }}]", "{}", Expect::output_of("[ab]")},
        {"{% print 1, 'a' %}", "{}", Expect::output_of("1a")},
        {"{{ 'a' if true else 'b' if false }}", "{}", Expect::output_of("a")},
        {"{% if 1 %}a{% elif 2 %}b{% else %}c{% endif %}{% if 0 %}a{% elif 2 %}b{% else %}c{% endif %}{% if 0 %}a{% "
         "elif 0 %}b{% else %}c{% endif %}",
         "{}", Expect::output_of("abc")},
        {"{% if x %}{% elif y %}{% endif %}ok", "{}", Expect::output_of("ok")},
        {"{{ -1|abs }}{{ -x|abs }}{{ not x is none }}", "{\"x\": 3}", Expect::output_of("13True")},
        {"{{ 1 if x is none else 2 }}", "{\"x\": null}", Expect::output_of("1")},
        {"{{ range(3)[1] }}{{ range(3)[1:] }}{{ range(3) == range(0, 3) }}", "{}",
         Expect::output_of("1range(1, 3)True")},
        {"{{ dict(a=1).items()|list }}{{ {'a': 1}.items() }}", "{}",
         Expect::output_of("[('a', 1)]dict_items([('a', 1)])")},
        {"{{ x.items() }}", "{\"x\": {\"k\": [1, {\"z\": null}]}}",
         Expect::output_of("dict_items([('k', [1, {'z': None}])])")},
        {"{{ d.keys()|list }}{{ d.values()|list }}{{ 'a' in d.keys() }}{{ d.keys()|length }}", "{\"d\": {\"a\": 1}}",
         Expect::output_of("['a'][1]True1")},
        {"{{ x['a']['b'] }}", "{\"x\": {\"a\": null}}", Expect::output_of("")},
        {"{{ x.a.b }}", "{\"x\": {\"a\": \"s\"}}", Expect::output_of("")},
        {"{{ x.a.b.c }}", "{\"x\": {\"a\": \"s\"}}", Expect::error(ErrorKind::runtime)},
        {"{{ none|first }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 5|first }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 5|length }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 5|list }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'x' ~ raise_exception('oops %s' % 1) }}", "{}", Expect::raised("oops 1")},
        {"{{ raise_exception() }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ raise_exception(none) }}", "{}", Expect::raised("None")},
        {"{{ strftime_now() }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ cycler() }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ range(1, 2, 0) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ range('a') }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ joiner()() }}{{ joiner()() }}", "{}", Expect::output_of("")},
        {"{{ lipsum is defined }}", "{}", Expect::output_of("True")},
        {"{{ dict(1) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ x() }}", "{\"x\": \"s\"}", Expect::error(ErrorKind::runtime)},
        {"{{ 'ab' is string and 1 }}", "{}", Expect::output_of("1")},
        {"{{ [1,2] is sequence }}{{ (1,) is sequence }}{{ range(2) is sequence }}{{ {}.keys() is sequence }}{{ "
         "{}.keys() is iterable }}",
         "{}", Expect::output_of("TrueTrueTrueFalseTrue")},
        {"{{ 1 is divisibleby 0 }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 3.0 is odd }}{{ 4.0 is even }}", "{}", Expect::output_of("TrueTrue")},
        {"{{ 'a' is odd }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ none is sameas none }}{{ [] is sameas [] }}", "{}", Expect::output_of("TrueFalse")},
        {"{{ 1 is escaped }}", "{}", Expect::output_of("False")},
        {"{{ x is mapping }}{{ x is iterable }}", "{\"x\": {}}", Expect::output_of("TrueTrue")},
        {"{{ 0.0 is false }}{{ 1.0 is true }}", "{}", Expect::output_of("FalseFalse")},
        {"{{ [1, 2]|truncate(5) }}{{ {'a': 1}|truncate(5) }}", "{}", Expect::output_of("[1, 2]{'a': 1}")},
        {"{{ 2.5|truncate(5) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'Ab c' % [] }}|{{ 'x' % {} }}|{{ '%s' % x }}|{{ '%s' % [1, 2] }}", "{}",
         Expect::output_of("Ab c|x||[1, 2]")},
        {"{{ ' x ' % (1, 2) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ [1, 2, 3, 4, 5]|batch(0)|list }}{{ [1, 2, 3]|batch(-1)|list }}", "{}",
         Expect::output_of("[[], [1, 2, 3, 4, 5]][[1, 2, 3]]")},
        {"{{ x[:2] }}", "{\"x\": 5}", Expect::error(ErrorKind::runtime)},
        {"{{ x[::-1] }}", "{\"x\": null}", Expect::error(ErrorKind::runtime)},
        {"{{ d[1:] }}", "{\"d\": {\"a\": 1}}", Expect::error(ErrorKind::runtime)},
        {"{{ u[1:] }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ u is sameas u }}{{ none is sameas none }}", "{}", Expect::output_of("FalseTrue")},
        {"a {#-", "{}", Expect::output_of("a")},
        {"{% include 'x' 'y' %}", "{}", Expect::error(ErrorKind::runtime)},
        {"{% from 'x' import a as b, c with context %}{% import 'y' as z %}ok", "{}",
         Expect::error(ErrorKind::runtime)},
        {"{% if false %}{% include 'x' ignore missing without context %}{% endif %}ok", "{}", Expect::output_of("ok")},
        {"{{ dict(u) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 1e3 ** 1e3 }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ 'a' if false }}|{{ ('a' if false) is defined }}", "{}", Expect::output_of("|False")},
        {"{{ '{:n}|{:n}'.format(1234, 1.5) }}", "{}", Expect::output_of("1234|1.5")},
        {"{{ '{7x}'.format(1) }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ '%5%' % () }}", "{}", Expect::error(ErrorKind::runtime)},
        {"{{ '%88888888888888888888d' % 1 }}", "{}", Expect::error(ErrorKind::runtime)},
    };
    for (const Case& c : cases) check(c);
}

}  // namespace
}  // namespace tfx::jinja::test
