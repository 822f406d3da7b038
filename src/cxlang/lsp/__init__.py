"""``cx lsp``: CX in an editor, through the Language Server Protocol (pygls).

- :mod:`.server`: the pygls wiring (documents, features, stdio);
- :mod:`.index`: one document's facts (diagnostics, events, handlers, calls, spans);
- :mod:`.navigation`: definition, references, hover and symbols from those facts;
- :mod:`.completion`: event names and service properties;
- :mod:`.glossary`: what services and properties mean, in a line;
- :mod:`.positions`: CX spans (1-based, code points) to LSP positions (0-based, UTF-16).

Only the command line imports this package.
"""
