"""``cx lsp``: the language server an editor starts (the Language Server Protocol on stdio).

pygls comes with the ``lsp`` extra (``pip install 'cxlang[lsp]'``); without it the command
says so instead of failing with an import error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..program.exit_codes import ExitCode

__all__ = ["add_parser", "run"]


def add_parser(commands: Any) -> None:
    commands.add_parser("lsp", help="the language server for editors (LSP on stdio): "
                                    "diagnostics, go to definition, references, hover, "
                                    "symbols, completion")


def run(args: argparse.Namespace) -> int:
    try:
        from ..lsp.server import serve  # noqa: PLC0415 - pygls is an optional extra
    except ImportError as exc:
        print(f"cx lsp needs pygls ({exc}); install it with pip install 'cxlang[lsp]'",
              file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    return serve()
