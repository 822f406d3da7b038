"""Who this process is to the NATS server: credentials from the bus URL, the environment and
a configuration file.

cxlang has no security of its own on the bus: NATS's accounts, users and permissions decide who
may publish and subscribe to what (docs/security.md). This module only hands the server what
identifies this process, the way the ``nats`` tool reads it:

- in the URL: ``nats://user:password@host:4222`` or ``nats://token@host:4222`` (``tls://`` for
  TLS);
- ``NATS_CREDS`` (a ``.creds`` file: a user JWT and its NKey seed), ``NATS_NKEY`` (an NKey seed
  file), ``NATS_USER`` and ``NATS_PASSWORD``, ``NATS_TOKEN``;
- ``NATS_CA``, ``NATS_CERT`` and ``NATS_KEY`` for TLS (a CA to trust, a client certificate and
  its key);
- a file's settings (cx.toml's ``[bus]`` table: ``creds``, ``nkey``, ``user``, ``ca``, ``cert``,
  ``key``; never a password or token), handed over as :class:`FileCredentials`:
  ``Runtime(bus=url, bus_credentials=FileCredentials(...))``.

Precedence: a URL with a user or token identifies the process by itself (the identity settings
of the environment and the file are then unused; their TLS settings still apply); else each
setting comes from the environment, else from the file.

Secrets never appear in messages: :func:`shown` is the URL as logs and errors write it.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from .errors import BusUnavailable

__all__ = ["FileCredentials", "connect_options", "shown"]


@dataclass(frozen=True)
class FileCredentials:
    """What a configuration file says identifies this process: files and a user name, no
    secret. Paths are absolute (a file's relative paths are resolved by whoever reads it)."""

    where: str  # the file and its table, for messages: "/srv/app/cx.toml [bus]"
    creds: str | None = None
    nkey: str | None = None
    user: str | None = None
    ca: str | None = None
    cert: str | None = None
    key: str | None = None


class _Setting(NamedTuple):
    value: str
    source: str  # how a message names it: "NATS_CREDS=/x.creds", "/app/cx.toml [bus] creds"


# The settings that say who the process is: (file key, environment variable, nats-py option).
_IDENTITY = (("creds", "NATS_CREDS", "user_credentials"), ("nkey", "NATS_NKEY", "nkeys_seed"),
             ("user", "NATS_USER", "user"), ("password", "NATS_PASSWORD", "password"),
             ("token", "NATS_TOKEN", "token"))
_TLS = (("ca", "NATS_CA"), ("cert", "NATS_CERT"), ("key", "NATS_KEY"))
_FILES = frozenset({"creds", "nkey"})


def connect_options(url: str, env: Mapping[str, str] | None = None,
                    file: FileCredentials | None = None) -> dict[str, Any]:
    """The nats-py ``connect`` options that identify this process, from *url*, *env* (default:
    the process's environment) and *file*; raises :class:`BusUnavailable` saying what is wrong
    with them."""
    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    # nats-py prefers a user or token given as an option to the URL's own: leave them out.
    if urlsplit(url if "://" in url else f"nats://{url}").username is None:
        for key, variable, option in _IDENTITY:
            setting = _setting(key, variable, env, file)
            if setting is None:
                continue
            if key in _FILES:
                _check_key_file(setting)
            options[option] = setting.value
    tls = _tls(url, {key: _setting(key, variable, env, file) for key, variable in _TLS})
    if tls is not None:
        options["tls"] = tls
    return options


def shown(url: str) -> str:
    """*url* without its user's password or token, for messages and logs."""
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.username is None and parts.password is None:
        return url
    user = "***" if parts.password is None else f"{parts.username}:***"
    host = parts.hostname or ""
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _setting(key: str, variable: str, env: Mapping[str, str],
             file: FileCredentials | None) -> _Setting | None:
    """*key*'s value and where it came from: the environment, else the file."""
    if env.get(variable):
        # A password or token is never shown, even in a message about it.
        shown_value = "***" if key in ("password", "token") else env[variable]
        return _Setting(env[variable], f"{variable}={shown_value}")
    if file is not None and (value := getattr(file, key, None)) is not None:
        return _Setting(value, f"{file.where} {key} = {value!r}")
    return None


def _check_key_file(setting: _Setting) -> None:
    if not os.path.isfile(setting.value):
        raise BusUnavailable(f"{setting.source}: no such file")
    if importlib.util.find_spec("nkeys") is None:
        raise BusUnavailable(f"{setting.source} needs the nkeys package: "
                             "pip install 'nats-py[nkeys]'")


def _tls(url: str, settings: Mapping[str, _Setting | None]) -> ssl.SSLContext | None:
    """A TLS context when the URL says ``tls://`` or a TLS setting is given."""
    ca, cert, key = (settings[name] for name in ("ca", "cert", "key"))
    if not (url.startswith("tls://") or ca or cert):
        return None
    try:
        context = ssl.create_default_context(cafile=ca.value if ca else None)
        if cert:
            context.load_cert_chain(cert.value, key.value if key else None)
    except (OSError, ssl.SSLError) as exc:
        given = ", ".join(s.source for s in (ca, cert, key) if s is not None)
        raise BusUnavailable("cannot set up TLS for the bus" + (f" from {given}" if given else "")
                             + f": {exc}") from None
    return context
