"""cx.toml's ``[bus]`` table (``[tool.cx.bus]`` in pyproject.toml): the NATS server and the
credentials of ``cx run --bus`` and ``cx worker``.

What identifies the process may be written there as files (a ``.creds`` file, an NKey seed,
TLS certificates) and a user name; a password or token never is: those come from
``NATS_PASSWORD`` / ``NATS_TOKEN``, so that no secret ends up in a committed file. The URL's
own credentials come first, then the environment, then the file
(:mod:`cxlang.runtime.distributed.credentials`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..runtime.distributed.credentials import FileCredentials
from ..services.config import ConfigError, find_config

__all__ = ["BusConfig", "load_bus_config"]

_PATHS = frozenset({"creds", "nkey", "ca", "cert", "key"})  # relative to the file's directory
_KEYS = frozenset({"url", "user"}) | _PATHS
_SECRETS = {"password": "NATS_PASSWORD", "token": "NATS_TOKEN"}


@dataclass(frozen=True)
class BusConfig:
    """The file's bus settings: the server to use when the command line names none, and what
    identifies this process."""

    url: str | None = None
    credentials: FileCredentials | None = None


def load_bus_config(cwd: Path | None = None) -> BusConfig:
    """The ``[bus]`` table of the nearest configuration file; raises :class:`ConfigError`
    naming the file and the key that is wrong."""
    found = find_config((cwd or Path.cwd()).resolve())
    if found is None or "bus" not in found[1]:
        return BusConfig()
    path, table = found
    where = f"{path} [tool.cx.bus]" if path.name == "pyproject.toml" else f"{path} [bus]"
    bus = table["bus"]
    if not isinstance(bus, Mapping):
        raise ConfigError(f"{path}: bus must be a table ([bus] and its settings below it)")
    values = {key: _checked(where, path.parent, key, value) for key, value in bus.items()}
    url = values.pop("url", None)
    return BusConfig(url, FileCredentials(where, **values) if values else None)


def _checked(where: str, directory: Path, key: str, value: Any) -> str:
    if key in _SECRETS:
        raise ConfigError(f"{where}: keep the {key} out of files; set the {_SECRETS[key]} "
                          "environment variable instead")
    if key not in _KEYS:
        raise ConfigError(f"{where}: unknown setting {key!r}; known: {', '.join(sorted(_KEYS))}")
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {value!r}")
    if key == "url":
        parts = urlsplit(value if "://" in value else f"nats://{value}")
        if parts.username is not None or parts.password is not None:  # shown nowhere
            raise ConfigError(f"{where}: url must not hold credentials: set user here, and "
                              "the password in NATS_PASSWORD (or a token in NATS_TOKEN)")
    if key in _PATHS:
        return str(directory / Path(value).expanduser())
    return value
