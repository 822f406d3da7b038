"""Escape attempts: CX code reaches only CX values, never Python objects or the outside world.

Every attempt must be refused at compile time (exit 2, ``file:line:col:``) or fail at run time
with a CX runtime error at its position (exit 1), and nothing Python-internal may be printed.
"""

from __future__ import annotations

import pytest

from cxlang.compiler import compile_program
from cxlang.syntax import CxError

from ._helpers import POSITION, leaks, run

PYTHON_ERRORS = ("TypeError", "AttributeError", "KeyError", "NameError", "RecursionError",
                 "ValueError", "IndexError", "ImportError", "Exception")

# (id, program, expected exit code: 2 = refused by the compiler, 1 = CX runtime error)
ATTEMPTS: list[tuple[str, str, int]] = [
    ("dunder-class", 'var x = 1; print(x.__class__);', 2),
    ("dunder-globals", 'var x = {}; print(x.__globals__);', 2),
    ("class-mro", 'print("".__class__.__mro__);', 2),
    ("subclasses", 'print([].__class__.__base__.__subclasses__());', 2),
    ("print-self", 'print(print.__self__);', 2),
    ("print-call", 'print(print.call);', 2),
    ("print-as-value", 'var p = print; p("x");', 2),
    ("self-dict", 'conscious T { realize(self: conscious) { print(self.__dict__); } }\n'
                  'var t = new T({});', 2),
    ("event-init", 'on a.b (event) { print(event.__init__); }\nemit a.b;', 2),
    ("event-init-globals", 'on a.b (event) { print(event.__init__.__globals__); }', 2),
    ("open-file", 'open("/etc/passwd");', 2),
    ("open-file-print", 'print(open("/etc/passwd"));', 2),
    ("import-call", 'import("os");', 2),
    ("dunder-import", '__import__("os").system("echo hi");', 2),
    ("eval", 'eval("1 + 1");', 2),
    ("exec", 'exec("print(1)");', 2),
    ("getattr", 'var x = 1; getattr(x, "y");', 2),
    ("globals-call", 'print(globals());', 2),
    ("locals-call", 'print(locals());', 2),
    ("vars-call", 'print(vars());', 2),
    ("type-call", 'var x = 1; print(type(x));', 2),
    ("builtins-name", 'print(__builtins__);', 2),
    ("builtins-index", 'print(__builtins__["open"]);', 2),
    ("host-name", 'print(__cx__);', 2),
    ("host-method", '__cx__.print("x");', 2),
    ("host-emit", '__cx__.emit("a.b", {});', 2),
    ("generated-var-name", 'var x = 5; print(v_x);', 2),
    ("prelude-name", 'print(cx_get);', 2),
    ("prelude-call", 'cx_get({}, "a");', 2),
    ("prelude-method", 'print(cx_method);', 2),
    ("generated-main", 'print(cx_main);', 2),
    ("generated-handler", 'on a.b { }\nprint(cx_on_0);', 2),
    ("event-arg", 'on a.b (e) { print(_event); }\nemit a.b;', 2),
    ("config-arg", 'object T { realize(cfg: object) { print(_config); } }\nvar t = new T({});',
     2),
    ("temporary", 'var a = 1 || 2; print(_t1);', 2),
    ("call-non-function", 'var f = 1; f();', 2),
    ("call-result", 'var o = {}; o.f = 1; print((o.f)());', 1),
    ("call-index", 'var o = {}; o["f"]();', 2),
    ("emit-dunder", 'emit __x.y;', 2),
    ("emit-dunder-segment", 'emit a.__class__;', 2),
    ("on-dunder", 'on __x.y (e) { print(e); }', 2),
    ("event-ref-dunder", 'think { prompt: "p", a: __import__.os };', 2),
    ("handlers-dunder", 'think { prompt: "p", handlers: [ a.__init__ ] };', 2),
    ("proto-get", 'var o = {}; print(o.__proto__);', 2),
    ("proto-set", 'var o = {}; o.__proto__ = {polluted: true};', 2),
    ("proto-compound", 'var o = {}; o.__class__ += 1;', 2),
    ("dunder-add", 'print("a".__add__("b"));', 2),
    ("dunder-len", 'print([].__len__());', 2),
    ("method-self", 'print({}.keys.__self__);', 2),
    ("push-self", 'print([].push.__self__);', 2),
    ("self-outside-entity", 'print(self.name);', 2),
    ("unknown-entity", 'var t = new object({});', 2),
    ("string-format", 'print("{0.__class__}".format(1));', 1),
    ("string-encode", 'print("x".encode());', 1),
    ("list-copy", 'print([1].copy());', 1),
    ("list-sort", 'var a = [3, 1]; a.sort();', 1),
    ("dict-get", 'print({}.get("a"));', 1),
    ("dict-pop", 'print({}.pop("a"));', 1),
    ("dict-update", 'print({}.update({}));', 1),
    ("dict-items", 'print({a: 1}.items());', 1),
    ("str-join", 'print(",".join(["a"]));', 1),
    ("constructor-call", 'print("x".constructor("y"));', 1),
    ("to-string", 'print({}.toString());', 1),
    ("index-string-dunder", 'print("abc"["__class__"]);', 1),
    ("number-method", 'var n = 1; print(n.bit_length());', 1),
    ("null-method", 'var n = null; n.keys();', 1),
    ("entity-method", 'object T { }\nvar t = new T({});\nprint(t.update({a: 1}));', 1),
    ("self-reference", 'var a = []; a.push(a); print(a);', 1),
    ("set-on-string", 'var s = "abc"; s.length = 1;', 1),
    ("wrong-arity", 'print([1].pop(0));', 1),
]


@pytest.mark.parametrize(("source", "expected"), [pytest.param(s, c, id=i) for i, s, c in ATTEMPTS])
def test_escape_attempt_is_refused_with_position(source: str, expected: int) -> None:
    result = run(source)
    assert result.code == expected, result.err
    assert POSITION.search(result.err), result.err
    assert result.out == "" or result.code == 1
    assert not leaks(result.out)
    assert not leaks(result.err, source)
    assert not [name for name in PYTHON_ERRORS if name in result.err], result.err


@pytest.mark.parametrize(("source", "expected"), [pytest.param(s, c, id=i) for i, s, c in ATTEMPTS
                                                  if c == 2])
def test_refused_attempts_fail_cx_check(source: str, expected: int) -> None:
    with pytest.raises(CxError) as caught:
        compile_program(source, "prog.cx")
    assert caught.value.diagnostics
    assert POSITION.search(caught.value.render())


def test_corpus_is_large_enough() -> None:
    assert len(ATTEMPTS) >= 30
    assert len({i for i, _, _ in ATTEMPTS}) == len(ATTEMPTS)


# Pure data: lookups that cannot be refused at compile time give CX values, never Python ones.


@pytest.mark.parametrize("source", [
    'var o = {}; print(o["__class__"]);',
    'var o = {a: 1}; print(o["__dict__"]);',
    'var o = {}; print(o["__class__"]["__mro__"]);',
    'var k = "__globals__"; var o = {}; print(o[k]);',
    'var o = {}; print(o.constructor);',
    'var o = {}; print(o.prototype);',
    'var s = "abc"; print(s.len);',
    'var n = 5; print(n.real);',
    'var a = [1]; print(a.append);',
    'object T { }\nvar t = new T({});\nprint(t["properties"]);',
    'object T { }\nvar t = new T({});\nprint(t.id);',
    'object T { }\nvar t = new T({});\nprint(t["type_name"]);',
    'on a.b (e) { print(e["__class__"]); print(e["payload"]); print(e.name); }\nemit a.b;',
    'conscious T { realize(self: conscious) { print(self["__dict__"]); } }\n'
    'var t = new T({});',
])
def test_property_and_index_lookups_are_pure_data(source: str) -> None:
    result = run(source)
    assert result.code == 0, result.err
    assert result.err == ""
    assert set(result.out_lines) == {"null"}


def test_index_assignment_with_dunder_key_is_plain_data() -> None:
    result = run('var o = {}; o["__class__"] = 1; print(o); print(o["__class__"]);')
    assert result.code == 0, result.err
    assert result.out_lines == ['{"__class__": 1}', "1"]


def test_format_strings_stay_plain_strings() -> None:
    result = run('var s = "{0.__class__} {self} %s {__builtins__}";\n'
                 'print(s); print(s + 1); print({t: s});\n'
                 'emit system.console.write { text: s };')
    assert result.code == 0, result.err
    text = "{0.__class__} {self} %s {__builtins__}"
    assert result.out_lines == [text, text + "1", '{"t": "' + text + '"}', text]


def test_cx_variable_named_like_the_prelude_is_its_own_variable() -> None:
    result = run('var cx_get = "mine"; var cx_method = 2;\n'
                 'var o = {a: 1}; print(cx_get); print(o.a); print(cx_method); print([1].length);')
    assert result.code == 0, result.err
    assert result.out_lines == ["mine", "1", "2", "1"]


def test_cx_variable_named_like_generated_names_is_its_own_variable() -> None:
    result = run('var v_x = 1; var x = 2; var _event = 3; var cx_main = 4;\n'
                 'on a.b (e) { print(v_x); print(x); print(_event); print(cx_main); '
                 'print(e.k); }\n'
                 'emit a.b { k: 5 };')
    assert result.code == 0, result.err
    assert result.out_lines == ["1", "2", "3", "4", "5"]


def test_handler_parameter_named_like_the_event_argument() -> None:
    result = run('on a.b (_event) { print(_event.k); }\nemit a.b { k: 1 };')
    assert result.code == 0, result.err
    assert result.out_lines == ["1"]


def test_cx_variable_named_like_the_host_does_not_reach_the_host() -> None:
    result = run('var __cx__ = {print: 1};\nprint(__cx__);\nprint("still printing");')
    assert result.code == 0, result.err
    assert result.out_lines == ['{"print": 1}', "still printing"]


def test_emitted_payload_keeps_python_values_out() -> None:
    result = run('on a.b (e) { print(e); print(e.k.length); }\nemit a.b { k: [1, 2] };')
    assert result.code == 0, result.err
    assert result.out_lines == ['{"k": [1, 2]}', "2"]


def test_runtime_error_messages_show_no_python_internals() -> None:
    result = run('on a.b (e) {\n  print(e.x.y.z + 1);\n}\nemit a.b;')
    assert result.code == 1
    assert result.err.startswith("prog.cx:2:9: runtime error")
    assert not leaks(result.err)
    assert "CxRuntimeError" not in result.err
