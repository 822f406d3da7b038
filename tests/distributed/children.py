"""``cx`` processes started by the tests, their output collected line by line as it comes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["CX", "Child", "children"]

CX = Path(sys.executable).with_name("cx")
WAIT = 20.0  # the longest any test waits for one thing


class Child:
    """One ``cx`` process; ``lines(stream)`` is what it wrote so far."""

    def __init__(self, *args: str | Path) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they are printed, not at exit
        self.args = [str(CX), *map(str, args)]
        self.process = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, env=env)
        self._lines: dict[str, list[str]] = {"out": [], "err": []}
        self._changed = threading.Condition()
        assert self.process.stdout is not None and self.process.stderr is not None
        for name, stream in (("out", self.process.stdout), ("err", self.process.stderr)):
            threading.Thread(target=self._read, args=(name, stream), daemon=True).start()

    def _read(self, name: str, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self._lines[name].append(line.rstrip("\n"))
                self._changed.notify_all()

    def lines(self, stream: str = "out") -> list[str]:
        with self._changed:
            return list(self._lines[stream])

    def wait_for(self, found: Callable[[list[str]], bool], stream: str = "out",
                 timeout: float = WAIT) -> list[str]:
        """Wait until *found* holds for the stream's lines; fails the test after *timeout*."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not found(self._lines[stream]):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{' '.join(self.args)}: waited {timeout} s in vain; stdout: "
                        f"{self._lines['out']!r}; stderr: {self._lines['err']!r}")
                self._changed.wait(min(left, 0.1))
            return list(self._lines[stream])

    def wait_line(self, text: str, stream: str = "out", timeout: float = WAIT) -> None:
        self.wait_for(lambda lines: any(text in line for line in lines), stream, timeout)

    def wait_exit(self, timeout: float = WAIT) -> int:
        code = self.process.wait(timeout=timeout)
        time.sleep(0.05)  # let the readers take the last lines
        return code

    def kill(self) -> None:
        """SIGKILL: the process dies without a word, mid-whatever it was doing."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def children() -> Iterator[Callable[..., Child]]:
    """Start children with the yielded function; every one is stopped at the end, whatever
    happened."""
    started: list[Child] = []

    def start(*args: str | Path) -> Child:
        child = Child(*args)
        started.append(child)
        return child

    try:
        yield start
    finally:
        for child in started:
            child.stop()
    for child in started:  # a clean stop too: never a Python traceback, even on SIGTERM
        child.wait_exit()
        assert "Traceback" not in "\n".join(child.lines("err")), child.lines("err")
