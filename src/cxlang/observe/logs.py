"""Logging for ``cx``: ``--log-level`` and ``--log-format text|json`` on standard error.

JSON logs are one object per line (``time``, ``level``, ``logger``, ``message``, and
``exception`` with the traceback when there is one), for log collectors; text logs are for
people. Only cxlang's own loggers are configured, never the root logger of a host program.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["LEVELS", "configure_logging"]

LEVELS = ("debug", "info", "warning", "error", "critical")


class JsonFormatter(logging.Formatter):
    """One JSON object per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "warning", fmt: str = "text",
                      stream: TextIO | None = None) -> None:
    """Send the ``cxlang`` loggers to *stream* (standard error) at *level*, as *fmt*."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("cx: %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("cxlang")
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
