"""Process handlers for the conformance suite: module-level, so worker processes import them.

A worker cannot reach the test's in-memory tracker, so each run leaves two small files in the
scenario's directory (``payload["conformance"]["dir"]``): ``<run>.start`` as its first act and
``<run>.end`` as its last, each holding the worker's pid and a :func:`time.monotonic` reading
(system-wide on Linux and macOS, so comparable with the test process's own readings). What a
handler does comes from the payload too: ``plan["<event>/<function>"]``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import cxlang


class ProcessFault(ValueError):  # noqa: N818 - like the in-process Fault
    """What a raising process handler raises (picklable: a plain message)."""


def _record(event: cxlang.Event, fn: str, what: str) -> dict[str, Any]:
    spec = event.payload["conformance"]
    ctx = cxlang.current_context()
    run = f"{ctx.execution_id}-{event.name}-{fn}"
    entry = {"pid": os.getpid(), "t": time.monotonic(), "call": ctx.execution_id,
             "event": event.name, "fn": fn}
    path = Path(spec["dir"]) / f"{run}.{what}"
    path.write_text(json.dumps(entry))
    params: dict[str, Any] = spec["plan"].get(f"{event.name}/{fn}", {})
    return params


def proc_return(event: cxlang.Event) -> str:
    params = _record(event, "proc_return", "start")
    try:
        time.sleep(params.get("d", 0.0))
        return str(params.get("value", "process-value"))
    finally:
        _record(event, "proc_return", "end")


def proc_raise(event: cxlang.Event) -> str:
    params = _record(event, "proc_raise", "start")
    try:
        time.sleep(params.get("d", 0.0))
        raise ProcessFault("the process handler failed")
    finally:
        _record(event, "proc_raise", "end")


def proc_crash(event: cxlang.Event) -> str:
    _record(event, "proc_crash", "start")
    _record(event, "proc_crash", "end")  # its end is the crash itself
    os._exit(3)


def proc_hang(event: cxlang.Event) -> str:
    _record(event, "proc_hang", "start")
    time.sleep(1000)  # the suite kills what is left of it after the scenario
    return "never"


PROCESS_HANDLERS = {f.__name__: f for f in (proc_return, proc_raise, proc_crash, proc_hang)}
