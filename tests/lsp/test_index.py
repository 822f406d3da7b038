"""The facts `cx lsp` answers from, read from a document without an editor."""

from __future__ import annotations

from cxlang.lsp.index import index_document, names_match


def kinds(text: str) -> list[tuple[str, str]]:
    return [(o.event, o.kind) for o in index_document(text, "t.cx").occurrences]


def test_every_way_a_document_names_an_event() -> None:
    text = """
on order.any (e) { emit order.paid { handlers: [ receipt.sent ] }; }
var r = think {
    prompt: "p",
    analytics: analytics.complete,
    tools: [ weather.lookup { description: "the weather" }, "clock.now" ],
    handlers: [ analysis.done, audit: audit.log ]
};
emit ai.generate { prompt: "x" };
"""
    assert kinds(text) == [
        ("order.any", "handler"), ("order.paid", "emit"), ("receipt.sent", "named"),
        ("analytics.complete", "parameter"), ("weather.lookup", "tool"),
        ("clock.now", "tool"), ("analysis.done", "completion"), ("audit.log", "parameter"),
    ]
    index = index_document(text, "t.cx")
    assert [(c.service, c.completions) for c in index.calls] == [
        ("think", ("analysis.done",)), ("generate", ())]
    assert [o.where for o in index.handlers_of("order.paid")] == ["on order.any"]
    assert [o.event for o in index.uses_of("order.any")] == ["order.paid"]
    assert "ai.generated" in index.event_names()  # the default completion of emit ai.generate
    assert "thinking.complete" not in index.event_names()  # the call lists its own


def test_a_dotted_value_rooted_at_a_variable_is_no_event() -> None:
    text = 'on a.b (event) { think { prompt: event.text, x: other.thing }; }\n'
    assert kinds(text) == [("a.b", "handler"), ("other.thing", "parameter")]
    # The same without compiling (a syntax error elsewhere): declared names are values.
    broken = text + "var y = ;\n"
    assert kinds(broken) == [("a.b", "handler"), ("other.thing", "parameter")]


def test_a_document_that_does_not_parse_has_diagnostics_and_no_facts() -> None:
    index = index_document("think {", "t.cx")
    assert index.tree is None and index.occurrences == () and index.diagnostics


def test_names_match_with_wildcards() -> None:
    assert names_match("order.any", "order.paid")
    assert names_match("order.paid", "any.paid")
    assert not names_match("order.any", "order.paid.late")
    assert not names_match("a.b", "a.c")
