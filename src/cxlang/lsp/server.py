"""``cx lsp``: the Language Server Protocol on stdio, with pygls.

Each open document is checked as it changes (full text on every change): its diagnostics are
published, and its facts (:mod:`.index`) kept for the requests that follow until the next
change. A document that makes the checker itself fail gets one diagnostic saying so and an
empty index, and a request that fails answers nothing: the server never goes down with a
document.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import PurePath
from typing import ParamSpec, TypeVar, cast
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from .._version import __version__
from ..syntax import Diagnostic
from ..syntax.nodes import Span
from .completion import complete
from .index import DocumentIndex, index_document
from .navigation import definition, document_symbols, hover, references
from .positions import PositionMap, encoding_of

__all__ = ["CxLanguageServer", "create_server", "serve"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Analysis:
    """One version of a document: its facts and the map of its positions."""

    version: int | None
    index: DocumentIndex
    places: PositionMap


class CxLanguageServer(LanguageServer):
    """A language server that keeps the latest analysis of each open document."""

    def __init__(self) -> None:
        super().__init__("cx", __version__,
                         text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.analyses: dict[str, Analysis] = {}
        self.last_parsed: dict[str, DocumentIndex] = {}  # the latest index with a tree

    def analysis(self, uri: str) -> Analysis:
        """The analysis of the document's current text (made now if it changed)."""
        document = self.workspace.get_text_document(uri)
        known = self.analyses.get(uri)
        if known is not None and known.version == document.version \
                and known.places.text == document.source:
            return known
        encoding = encoding_of(_text(self.workspace.position_encoding))
        text = document.source
        places = PositionMap(text, encoding)
        try:
            index = index_document(text, _filename(uri))
        except Exception as exc:  # a checker's bug is no reason to go down
            self.window_log_message(types.LogMessageParams(
                type=types.MessageType.Error,
                message=f"cx lsp could not check {uri}:\n{traceback.format_exc()}"))
            index = DocumentIndex((_internal_error(exc),), None, (), ())
        found = Analysis(document.version, index, places)
        self.analyses[uri] = found
        if index.tree is not None:
            self.last_parsed[uri] = index
        return found

    def names(self, uri: str, line: int) -> DocumentIndex:
        """The facts to complete names from while *line* is being written: the document's,
        else (it does not parse) those of the document without that line, else those of its
        latest version that parsed."""
        found = self.analysis(uri)
        if found.index.tree is not None:
            return found.index
        without = index_document(found.places.without_line(line), _filename(uri))
        if without.tree is not None:
            return without
        return self.last_parsed.get(uri, found.index)

    def publish(self, uri: str) -> None:
        found = self.analysis(uri)
        self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=found.version,
            diagnostics=[_diagnostic(d, found.places) for d in found.index.diagnostics]))


def create_server() -> CxLanguageServer:
    """A server with every feature registered (not started)."""
    server = CxLanguageServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    @_answers(None)
    def did_open(ls: CxLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    @_answers(None)
    def did_change(ls: CxLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    @_answers(None)
    def did_close(ls: CxLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.analyses.pop(uri, None)
        ls.last_parsed.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri,
                                                                            diagnostics=[]))

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @_answers(None)
    def goto_definition(ls: CxLanguageServer,
                        params: types.DefinitionParams) -> list[types.Location] | None:
        uri = params.text_document.uri
        found = ls.analysis(uri)
        return definition(found.index, found.places, uri, params.position)

    @server.feature(types.TEXT_DOCUMENT_REFERENCES)
    @_answers(None)
    def find_references(ls: CxLanguageServer,
                        params: types.ReferenceParams) -> list[types.Location] | None:
        uri = params.text_document.uri
        found = ls.analysis(uri)
        return references(found.index, found.places, uri, params.position,
                          params.context.include_declaration)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @_answers(None)
    def on_hover(ls: CxLanguageServer, params: types.HoverParams) -> types.Hover | None:
        found = ls.analysis(params.text_document.uri)
        return hover(found.index, found.places, params.position)

    @server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    @_answers([])
    def symbols(ls: CxLanguageServer,
                params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
        found = ls.analysis(params.text_document.uri)
        return document_symbols(found.index, found.places)

    @server.feature(types.TEXT_DOCUMENT_COMPLETION,
                    types.CompletionOptions(trigger_characters=["."]))
    @_answers(types.CompletionList(is_incomplete=False, items=[]))
    def completion(ls: CxLanguageServer,
                   params: types.CompletionParams) -> types.CompletionList:
        uri = params.text_document.uri
        return complete(ls.names(uri, params.position.line), ls.analysis(uri).places,
                        params.position)

    return server


def serve() -> int:
    """Serve on standard input and output until the client says exit."""
    create_server().start_io()
    return 0


def _answers(fallback: object) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """A feature that answers *fallback* (and logs why) instead of failing on a document."""

    def wrap(feature: Callable[_P, _R]) -> Callable[_P, _R]:
        @wraps(feature)
        def safe(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return feature(*args, **kwargs)
            except Exception:  # logged; the editor gets an empty answer
                server = args[0] if args else None
                if isinstance(server, LanguageServer):
                    server.window_log_message(types.LogMessageParams(
                        type=types.MessageType.Error,
                        message=f"cx lsp: {feature.__name__} failed:\n"
                                f"{traceback.format_exc()}"))
                return cast(_R, fallback)

        return safe

    return wrap


def _diagnostic(found: Diagnostic, places: PositionMap) -> types.Diagnostic:
    severity = types.DiagnosticSeverity.Warning if found.severity == "warning" \
        else types.DiagnosticSeverity.Error
    return types.Diagnostic(range=places.range(found.span), message=found.message,
                            severity=severity, source="cx")


def _internal_error(exc: Exception) -> Diagnostic:
    return Diagnostic(f"cx lsp could not check this document ({type(exc).__name__}: {exc}); "
                      "cx check may say more", Span(1, 1, 1, 1), "", "")


def _filename(uri: str) -> str:
    """The name diagnostics give the document: its file's, else the URI."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return PurePath(unquote(parsed.path)).name or uri
    return uri


def _text(kind: object) -> str | None:
    """An LSP enumeration's value (``PositionEncodingKind.Utf16`` is ``"utf-16"``)."""
    if kind is None:
        return None
    return str(getattr(kind, "value", kind))
