"""``cx graph program.cx [-o FILE]``: the program's event graph, as Mermaid text or a picture
drawn by Graphviz."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..program.exit_codes import ExitCode
from ..program.graph import event_graph
from ..syntax import CxError

__all__ = ["add_parser", "run"]

_PICTURES = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


def add_parser(commands: Any) -> None:
    graph = commands.add_parser(
        "graph", help="the program's event graph: Mermaid on stdout, or a picture with -o")
    graph.add_argument("file", help="the program")
    graph.add_argument("-o", "--output", metavar="FILE",
                       help="write it: .mmd (Mermaid), .dot (Graphviz), .svg, .png or .pdf "
                            "(drawn by Graphviz's dot)")


def run(args: argparse.Namespace) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"cx graph: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    try:
        graph = event_graph(text, args.file)
    except CxError as exc:
        print(exc.render(), file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    output: str | None = args.output
    if output is None:
        sys.stdout.write(graph.mermaid())
        return ExitCode.OK
    suffix = Path(output).suffix.lower()
    if suffix in (".mmd", ".dot"):
        body = graph.mermaid() if suffix == ".mmd" else graph.dot()
        return _write(output, body)
    picture = _PICTURES.get(suffix)
    if picture is None:
        print(f"cx graph: cannot tell what to write from {output!r}: use .mmd, .dot, .svg, "
              ".png or .pdf", file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    dot = shutil.which("dot")
    if dot is None:
        print("cx graph: drawing a picture needs Graphviz's dot (apt-get install graphviz, "
              "brew install graphviz); -o graph.mmd writes the Mermaid text without it",
              file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    done = subprocess.run([dot, f"-T{picture}", "-o", output], input=graph.dot(), text=True,
                          capture_output=True, check=False)
    if done.returncode != 0:
        print(f"cx graph: dot could not draw {output}: {done.stderr.strip()}", file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    print(f"{output}: {len(graph.vertices)} nodes, {len(graph.edges)} edges")
    return ExitCode.OK


def _write(output: str, body: str) -> int:
    try:
        Path(output).write_text(body, encoding="utf-8")
    except OSError as exc:
        print(f"cx graph: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.BAD_PROGRAM
    return ExitCode.OK
