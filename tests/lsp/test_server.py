"""`cx lsp` driven as an editor drives it: a real LSP client (pytest-lsp) talking to the
server in its own process over stdio."""

from __future__ import annotations

import itertools
import sys
from collections.abc import AsyncIterator, Sequence

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROGRAM = """\
on order.created (event) {
    emit order.paid { id: event.id };
}

on order.any (event) {
    print("audit " + event.id);
}

conscious Shop {
    var name = "corner";
    realize(self: conscious) { print(self.name); }
    on order.paid (e) { print(e.id); }
}

var total = 0;
think {
    prompt: "Summarise",
    analytics: analytics.complete,
    handlers: [ analysis.done ]
};
on analytics.complete (event) { return 1; }
on analysis.done (event) { print(event.analytics); }
on thinking.error (event) { print(event.error); }
emit order.created { id: "A-1" };
"""

_uris = itertools.count()


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(
    server_command=[sys.executable, "-m", "cxlang.cli.main", "lsp"]))
async def client(lsp_client: LanguageClient) -> AsyncIterator[None]:
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code")))
    yield
    await lsp_client.shutdown_session()


async def open_document(client: LanguageClient, text: str) -> tuple[str, list[types.Diagnostic]]:
    """Open *text* as a new document; its URI and the diagnostics published for it."""
    uri = f"file:///work/doc{next(_uris)}.cx"
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="cx", version=1, text=text)))
    return uri, await diagnostics_of(client, uri)


async def diagnostics_of(client: LanguageClient, uri: str) -> list[types.Diagnostic]:
    while True:
        params = await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        if params.uri == uri:
            return list(params.diagnostics)


def at(text: str, needle: str, offset: int = 0, occurrence: int = 1) -> types.Position:
    """The LSP position of the *occurrence*-th *needle* in *text* (plus *offset* characters;
    ASCII text, so characters are UTF-16 units)."""
    index = -1
    for _ in range(occurrence):
        index = text.index(needle, index + 1)
    index += offset
    line = text.count("\n", 0, index)
    return types.Position(line=line, character=index - (text.rfind("\n", 0, index) + 1))


def span_of(text: str, needle: str, occurrence: int = 1) -> types.Range:
    start = at(text, needle, occurrence=occurrence)
    return types.Range(start=start, end=types.Position(line=start.line,
                                                       character=start.character + len(needle)))


def ranges(locations: Sequence[types.Location] | None) -> list[types.Range]:
    return sorted((loc.range for loc in locations or ()),
                  key=lambda r: (r.start.line, r.start.character))


def by_position(*found: types.Range) -> list[types.Range]:
    return sorted(found, key=lambda r: (r.start.line, r.start.character))


# ------------------------------------------------------------------------------ diagnostics


async def test_diagnostics_match_cx_check_and_clear_when_fixed(client: LanguageClient) -> None:
    text = 'think { prompt: "hi", promt: "x" };\nvar x = ;\n'
    uri, found = await open_document(client, text)
    assert [(d.message, d.range, d.severity, d.source) for d in found] == [
        ("unexpected ';', expected an expression", span_of(text, ";", occurrence=2),
         types.DiagnosticSeverity.Error, "cx")]

    async def change(version: int, new: str) -> list[types.Diagnostic]:
        client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=new)]))
        return await diagnostics_of(client, uri)

    # Fixed, the warning of cx check --strict shows (it waited for the syntax error to go).
    fixed = 'think { prompt: "hi", promt: "x" };\n'
    (warning,) = await change(2, fixed)
    assert warning.severity == types.DiagnosticSeverity.Warning
    assert warning.message == "think does not read 'promt', so it reaches the handlers as " \
                              "data; did you mean 'prompt'?"
    assert warning.range == span_of(fixed, "promt")

    # A control value the call does not take: an error of program/checks.py.
    wrong = 'think { prompt: "hi", timeout: "soon" };\n'
    (error,) = await change(3, wrong)
    assert error.severity == types.DiagnosticSeverity.Error
    assert error.message.startswith("timeout must be a positive number of milliseconds")
    assert error.range == span_of(wrong, '"soon"')

    assert await change(4, PROGRAM) == []


async def test_compile_errors_have_their_ranges(client: LanguageClient) -> None:
    text = 'emit a.any;\nthink { _errors: x.y };\n'
    _, found = await open_document(client, text)
    assert [(d.range, d.message.split(":")[0]) for d in found] == [
        (span_of(text, "a.any"), "cannot emit 'a.any'"),
        (span_of(text, "_errors"), "handler parameter '_errors' is reserved"),
    ]


async def test_ranges_count_utf16_units_after_non_ascii_text(client: LanguageClient) -> None:
    text = 'var s = "😀 café"; emit a.any;\n'
    _, (found,) = await open_document(client, text)
    column = text.index("a.any")  # code points before it
    start = column + 1  # the emoji is two UTF-16 code units
    assert found.range == types.Range(start=types.Position(line=0, character=start),
                                      end=types.Position(line=0, character=start + 5))


# ------------------------------------------------------------------------------ navigation


async def test_definition_of_an_emitted_event_lands_on_its_handlers(
        client: LanguageClient) -> None:
    uri, _ = await open_document(client, PROGRAM)
    found = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=at(PROGRAM, "order.paid", 3)))
    assert isinstance(found, list)
    # `on order.paid` in the entity, and the wildcard `on order.any`.
    assert ranges(found) == by_position(span_of(PROGRAM, "order.any"),
                                        span_of(PROGRAM, "order.paid", occurrence=2))
    assert all(loc.uri == uri for loc in found)


async def test_definition_from_a_parameter_and_a_handlers_entry(client: LanguageClient) -> None:
    uri, _ = await open_document(client, PROGRAM)
    for needle, handler in (("analytics.complete", "on analytics.complete"),
                            ("analysis.done", "on analysis.done")):
        found = await client.text_document_definition_async(types.DefinitionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), position=at(PROGRAM, needle)))
        assert isinstance(found, list)
        target = at(PROGRAM, handler, 3)
        assert ranges(found) == [types.Range(start=target, end=types.Position(
            line=target.line, character=target.character + len(needle)))]


async def test_references_of_a_handlers_event(client: LanguageClient) -> None:
    uri, _ = await open_document(client, PROGRAM)
    found = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=at(PROGRAM, "order.created", 2),
        context=types.ReferenceContext(include_declaration=False)))
    assert ranges(found) == [span_of(PROGRAM, "order.created", occurrence=2)]

    # From a wildcard handler: every event it matches, and itself as the declaration.
    found = await client.text_document_references_async(types.ReferenceParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(PROGRAM, "order.any"),
        context=types.ReferenceContext(include_declaration=True)))
    assert ranges(found) == by_position(span_of(PROGRAM, "order.paid"),
                                        span_of(PROGRAM, "order.any"),
                                        span_of(PROGRAM, "order.created", occurrence=2))


async def test_hover_on_an_event(client: LanguageClient) -> None:
    uri, _ = await open_document(client, PROGRAM)
    found = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(PROGRAM, "order.paid")))
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    text = found.contents.value
    assert "`order.paid`" in text
    assert "`on order.any` (line 5)" in text and "`Shop: on order.paid` (line 12)" in text
    assert "`emit order.paid` at line 2 (on order.created)" in text
    assert found.range == span_of(PROGRAM, "order.paid")

    # A service's error event: which calls produce it.
    found = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=at(PROGRAM, "thinking.error")))
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    assert "think call at line 16 (top level): the service's error event" \
        in found.contents.value


async def test_hover_on_a_service_keyword(client: LanguageClient) -> None:
    uri, _ = await open_document(client, PROGRAM)
    found = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(PROGRAM, "think", 2)))
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    text = found.contents.value
    assert text.startswith("**think** (service): Asks the model")
    assert "`thinking.error`" in text and "`thinking.complete`" in text
    assert "`analysis.done` (completion): `on analysis.done` (line 22)" in text
    assert found.range == span_of(PROGRAM, "think")

    text = "await { durationMs: 5 };\n"
    uri, _ = await open_document(client, text)
    found = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(text, "await")))
    assert found is not None and isinstance(found.contents, types.MarkupContent)
    assert "timer" in found.contents.value and "`await.complete`" in found.contents.value


async def test_nothing_to_say_about_a_plain_name(client: LanguageClient) -> None:
    uri, _ = await open_document(client, PROGRAM)
    position = at(PROGRAM, "total")
    assert await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position)) is None
    assert await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=position)) is None


# ------------------------------------------------------------------------------ symbols


async def test_document_symbols(client: LanguageClient) -> None:
    uri, _ = await open_document(client, PROGRAM)
    found = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert found is not None
    symbols = [s for s in found if isinstance(s, types.DocumentSymbol)]
    assert [(s.name, s.kind) for s in symbols] == [
        ("on order.created", types.SymbolKind.Event), ("on order.any", types.SymbolKind.Event),
        ("Shop", types.SymbolKind.Class), ("total", types.SymbolKind.Variable),
        ("on analytics.complete", types.SymbolKind.Event),
        ("on analysis.done", types.SymbolKind.Event),
        ("on thinking.error", types.SymbolKind.Event),
    ]
    shop = symbols[2]
    assert [(c.name, c.kind) for c in shop.children or ()] == [
        ("name", types.SymbolKind.Field), ("realize", types.SymbolKind.Constructor),
        ("on order.paid", types.SymbolKind.Event)]
    assert shop.selection_range == span_of(PROGRAM, "Shop")
    assert symbols[3].selection_range == span_of(PROGRAM, "total")


# ------------------------------------------------------------------------------ completion


async def complete(client: LanguageClient, text: str, needle: str,
                   offset: int) -> list[types.CompletionItem]:
    uri, _ = await open_document(client, text)
    found = await client.text_document_completion_async(types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(text, needle, offset)))
    assert isinstance(found, types.CompletionList)
    return list(found.items)


async def test_completion_of_event_names(client: LanguageClient) -> None:
    text = PROGRAM + "emit \n"
    items = await complete(client, text, "emit \n", 5)
    labels = [item.label for item in items]
    assert {"order.created", "order.paid", "analysis.done", "analytics.complete",
            "thinking.error"} <= set(labels)
    assert "thinking.complete" not in labels  # the call lists its handlers
    assert "order.any" not in labels  # a pattern is no event to emit

    text = PROGRAM + "emit order.\n"
    items = await complete(client, text, "emit order.\n", len("emit order."))
    assert sorted(item.label for item in items) == ["order.created", "order.paid"]
    edit = items[0].text_edit
    assert isinstance(edit, types.TextEdit)  # replaces the whole dotted name written so far
    assert edit.range.start == at(text, "emit order.\n", 5)
    assert edit.range.end == at(text, "emit order.\n", len("emit order."))


async def test_completion_of_service_properties(client: LanguageClient) -> None:
    text = 'think { prompt: "x", \n'
    items = await complete(client, text, '"x", ', 5)
    by_label = {item.label: item for item in items}
    assert {"prompt", "handlers", "timeout", "maxConcurrency", "failFast", "schema",
            "tools"} <= set(by_label)
    assert all(item.kind == types.CompletionItemKind.Property for item in items)
    assert by_label["timeout"].detail is not None and "milliseconds" in \
        by_label["timeout"].detail
    edit = by_label["timeout"].text_edit
    assert isinstance(edit, types.TextEdit) and edit.new_text == "timeout: "

    # A value, or an object that is no service call's, gets event names instead.
    items = await complete(client, PROGRAM + 'emit x.y { a: \n', "{ a: \n", 5)
    assert all(item.kind == types.CompletionItemKind.Event for item in items)


# ------------------------------------------------------------------------------ robustness

BROKEN = [
    "",
    "on",
    "on order.",
    "think {",
    "emit",
    "conscious Shop { on order.paid (e) { ",
    'var s = "unterminated\nemit a.b;',
    "/* never closed",
    "}}}}]]]))",
    "on a.b (e) { emit a.b { x: [1, 2, ",
    "\x00\x01\ufeff\u2028😀 on a.b",
    "((((((((((" * 2000,
    "var x = " + "[" * 5000 + "1" + "]" * 5000 + ";",
    "think { handlers: [ 1, \"\", a.any, b: 3, ], tools: 5, x: a.b.c };",
    "on a.b { think { prompt: 1 }; } " * 300,
]


@pytest.mark.parametrize("text", BROKEN, ids=range(len(BROKEN)))
async def test_broken_documents_never_bring_the_server_down(client: LanguageClient,
                                                            text: str) -> None:
    uri, _ = await open_document(client, text)
    document = types.TextDocumentIdentifier(uri=uri)
    end = types.Position(line=text.count("\n"), character=len(text.rsplit("\n", 1)[-1]))
    for position in (types.Position(line=0, character=0), end,
                     types.Position(line=0, character=3),
                     types.Position(line=99, character=99)):
        await client.text_document_hover_async(types.HoverParams(
            text_document=document, position=position))
        await client.text_document_definition_async(types.DefinitionParams(
            text_document=document, position=position))
        await client.text_document_references_async(types.ReferenceParams(
            text_document=document, position=position,
            context=types.ReferenceContext(include_declaration=True)))
        await client.text_document_completion_async(types.CompletionParams(
            text_document=document, position=position))
    await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=document))
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=document))
    assert await diagnostics_of(client, uri) == []
    # Still answering, and nothing failed inside it.
    uri, _ = await open_document(client, PROGRAM)
    found = await client.text_document_hover_async(types.HoverParams(
        text_document=types.TextDocumentIdentifier(uri=uri), position=at(PROGRAM, "order.paid")))
    assert found is not None
    assert not [m for m in client.log_messages if m.type == types.MessageType.Error]


async def test_a_recovered_document_still_has_symbols_and_navigation(
        client: LanguageClient) -> None:
    text = "on order.paid (e) { print(e.id); }\nvar broken = ;\nemit order.paid { id: 1 };\n"
    uri, found = await open_document(client, text)
    assert found and found[0].range.start.line == 1
    symbols = await client.text_document_document_symbol_async(types.DocumentSymbolParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    assert [s.name for s in symbols or ()] == ["on order.paid"]
    definition = await client.text_document_definition_async(types.DefinitionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=at(text, "order.paid", 2, occurrence=2)))
    assert isinstance(definition, list)
    assert ranges(definition) == [span_of(text, "order.paid")]
