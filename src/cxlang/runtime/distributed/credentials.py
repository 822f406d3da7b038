"""Who this process is to the NATS server: credentials from the bus URL and the environment.

cxlang has no security of its own on the bus: NATS's accounts, users and permissions decide who
may publish and subscribe to what (docs/security.md). This module only hands the server what
identifies this process, the way the ``nats`` tool reads it:

- in the URL: ``nats://user:password@host:4222`` or ``nats://token@host:4222`` (``tls://`` for
  TLS);
- ``NATS_CREDS`` (a ``.creds`` file: a user JWT and its NKey seed), ``NATS_NKEY`` (an NKey seed
  file), ``NATS_USER`` and ``NATS_PASSWORD``, ``NATS_TOKEN``;
- ``NATS_CA``, ``NATS_CERT`` and ``NATS_KEY`` for TLS (a CA to trust, a client certificate and
  its key).

Secrets never appear in messages: :func:`shown` is the URL as logs and errors write it.
"""

from __future__ import annotations

import importlib.util
import os
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import BusUnavailable

__all__ = ["connect_options", "shown"]

_FILES = {"NATS_CREDS": "user_credentials", "NATS_NKEY": "nkeys_seed"}
_TEXTS = {"NATS_USER": "user", "NATS_PASSWORD": "password", "NATS_TOKEN": "token"}


def connect_options(url: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The nats-py ``connect`` options that identify this process; raises
    :class:`BusUnavailable` saying what is wrong with them."""
    env = os.environ if env is None else env
    options: dict[str, Any] = {}
    for variable, option in _FILES.items():
        path = env.get(variable)
        if path:
            if not os.path.isfile(path):
                raise BusUnavailable(f"{variable}={path}: no such file")
            if importlib.util.find_spec("nkeys") is None:
                raise BusUnavailable(f"{variable} needs the nkeys package: "
                                     "pip install 'nats-py[nkeys]'")
            options[option] = path
    for variable, option in _TEXTS.items():
        if env.get(variable):
            options[option] = env[variable]
    tls = _tls(url, env)
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


def _tls(url: str, env: Mapping[str, str]) -> ssl.SSLContext | None:
    """A TLS context when the URL says ``tls://`` or a TLS variable is set."""
    ca, cert, key = env.get("NATS_CA"), env.get("NATS_CERT"), env.get("NATS_KEY")
    if not (url.startswith("tls://") or ca or cert):
        return None
    try:
        context = ssl.create_default_context(cafile=ca or None)
        if cert:
            context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise BusUnavailable(f"cannot set up TLS for the bus from NATS_CA/NATS_CERT/NATS_KEY: "
                             f"{exc}") from None
    return context
