"""``execute``: run a command on this machine, only in a run that allows it.

Upstream CX's ExecuteService hands ``command:`` to PowerShell and gives back its output, error
text and exit code. A CX program reaches the host's programs and files here and nowhere else,
so cxlang refuses unless whoever runs it passed ``cx run --allow-execute``; refused, the call
fails (``execute.error``) saying so.

Allowed, no shell runs: ``command:`` is split into words as a POSIX shell splits them (quotes
group words), the first word is the program, and ``arguments: [...]`` adds words after those.
So ``$HOME``, ``*``, ``|`` and ``;`` are no shell syntax but plain text; a program that wants
a shell names one (``command: "pwsh", arguments: ["-Command", "Get-Date"]``).
``workingDirectory:`` is where it runs (default: where cx runs). The call's ``timeout:``
(default 30 s, as upstream's) stops it: the process and whatever it started are killed and the
call fails. A command that ran gives ``{ success, output, error, exitCode, durationMs }``
whatever its exit code: ``success`` is ``exitCode == 0``, ``output``/``error`` its standard
output and standard error as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from .backend import BackendError
from .controls import shown

__all__ = ["ALLOW_FLAG", "DEFAULT_TIMEOUT_MS", "ExecuteError", "run_command"]

ALLOW_FLAG = "--allow-execute"
DEFAULT_TIMEOUT_MS = 30_000


class ExecuteError(BackendError):
    """The command could not run to its end; the message says why and what to do."""


async def run_command(properties: Mapping[str, Any], *, allowed: bool) -> dict[str, Any]:
    """Run the call's command; its result. Raises :class:`ExecuteError` when the run does not
    allow it, the command cannot start, or it outlives the call's timeout."""
    if not allowed:
        raise ExecuteError("this run does not allow execute: a CX program runs commands on "
                           f"this machine only when it is run with cx run {ALLOW_FLAG}")
    words = _words(properties)
    directory = properties.get("workingDirectory")
    if directory is not None and not isinstance(directory, str):
        raise ExecuteError(f"workingDirectory: must be a directory's path, got {shown(directory)}")
    timeout = properties.get("timeout") or DEFAULT_TIMEOUT_MS  # checked: a number > 0
    started = time.perf_counter()
    try:
        process = await asyncio.create_subprocess_exec(
            *words, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=directory, start_new_session=True)  # a group of its own: killed as one
    except FileNotFoundError:
        where = f"the directory {shown(directory)} or " if directory else ""
        raise ExecuteError(f"cannot run {shown(words[0])}: {where}no such program (execute "
                           "runs no shell: name a program, or a shell with its command "
                           "in arguments:)") from None
    except OSError as exc:
        raise ExecuteError(f"cannot run {shown(words[0])}: {exc.strerror or 'refused'}") from None
    # In a task of its own, waited for with asyncio.wait: the caller may be a handler's first
    # step, which runs in no task, where asyncio.timeout cannot be used.
    reading = asyncio.ensure_future(process.communicate())
    try:
        await asyncio.wait({reading}, timeout=timeout / 1000)
    finally:
        if not reading.done():  # the timeout passed, or the call was cancelled
            _kill(process)
            reading.cancel()
            await asyncio.wait({reading})
            await process.wait()
    if reading.cancelled():
        raise ExecuteError(f"{shown(words[0])} did not finish within the call's timeout: of "
                           f"{timeout:.10g} ms and was stopped; give the call a longer timeout:")
    output, error = reading.result()
    code = process.returncode
    return {"success": code == 0, "output": _text(output), "error": _text(error),
            "exitCode": code, "durationMs": round((time.perf_counter() - started) * 1000, 3)}


def _words(properties: Mapping[str, Any]) -> list[str]:
    """The program and its arguments."""
    command = properties.get("command")
    if not isinstance(command, str) or not command.strip():
        raise ExecuteError('execute needs command: the program to run, e.g. execute { command: '
                           '"ls -l" } or execute { command: "git", arguments: ["status"] }')
    try:
        words = shlex.split(command)
    except ValueError as exc:  # an unclosed quote
        raise ExecuteError(f"command: cannot be split into words ({exc})") from None
    arguments = properties.get("arguments")
    if arguments is None:
        return words
    if not isinstance(arguments, list):
        raise ExecuteError(f"arguments: must be a list of texts, got {shown(arguments)}")
    for argument in arguments:
        if isinstance(argument, bool) or not isinstance(argument, str | int | float):
            raise ExecuteError(f"arguments: holds {shown(argument)}; each argument must be a "
                               "text or a number")
        words.append(argument if isinstance(argument, str) else shown(argument))
    return words


def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL)
        else:  # Windows: no process groups to kill
            process.kill()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")
