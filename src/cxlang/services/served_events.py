"""Events the runtime answers, as upstream CX's runtime did: a program emits a request
(``emit vector.search.text { query: q, handlers: [ found ] }``) and gets the answer as events.

Each served event has a route (:mod:`.vector_events`, :mod:`.local_llm_events`): it serves
the request and names its default answer event. The answer goes to the request's
``handlers`` when it lists any, else to that default, each with the answer's payload, its
``duration`` in milliseconds, and, for an entry with a payload of its own
(``handlers: [ done { tag: "x" } ]``, which reaches here as ``{"done": {tag: "x"}}``), that
payload's fields. A request that cannot be served emits the route's failure event with
``{ error, duration }`` and is reported to the host, which judges it handled or not.

Families that upstream's runtime answered and nothing here does (``realtime.*``, ...) are in
:data:`UNSERVED_FAMILIES`, for the host's notice that no answer will come.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..runtime import Runtime
from ..runtime.events import check_event_name
from .backend import Backend, BackendError
from .controls import ControlValueError, shown
from .event_routes import Route
from .local_llm_events import local_llm_routes
from .memory import Memory
from .vector_events import vector_routes

__all__ = ["UNSERVED_FAMILIES", "ServedEvents", "ServedFailure", "unserved_family"]


@dataclass(frozen=True, slots=True)
class ServedFailure:
    """A request that could not be served."""

    request: str  # the event the program emitted
    failed: str  # the failure event, which was emitted
    message: str
    handled: bool  # a handler is subscribed to the failure event


# First segments of event families upstream answered (voice sessions, speech, sound devices)
# and cxlang does not: a program emitting them waits for an answer that never comes.
UNSERVED_FAMILIES = frozenset(("realtime", "voice", "audio"))


def unserved_family(name: str) -> str | None:
    """The family of *name* (``realtime``) if it is one nothing in this runtime serves."""
    family = name.partition(".")[0]
    return family if family in UNSERVED_FAMILIES else None


class ServedEvents:
    """The routes of one run, served on its memory and backend."""

    def __init__(self, runtime: Runtime, memory: Memory, backend: Backend) -> None:
        self.runtime = runtime
        self.routes: dict[str, Route] = {**vector_routes(memory, backend),
                                         **local_llm_routes(backend)}

    def route(self, name: str) -> Route | None:
        return self.routes.get(name)

    async def serve(self, name: str, payload: Mapping[str, Any], route: Route,
                    on_failure: Callable[[ServedFailure], None]) -> None:
        """Serve one request: its answer events, or its failure event and *on_failure*."""
        started = time.perf_counter()
        try:
            targets = _targets(payload.get("handlers"))
            default, answer = await route.serve(payload, self.runtime.emit_async)
        except (BackendError, ControlValueError) as exc:
            message = str(exc)
            await self.runtime.emit_async(route.failed, {"error": message,
                                                         "duration": _since(started)})
            on_failure(ServedFailure(name, route.failed, message,
                                     bool(self.runtime.bus.handlers_for(route.failed))))
            return
        answer["duration"] = _since(started)
        for target, custom in targets or [(default, None)]:
            await self.runtime.emit_async(target, {**answer, **custom} if custom else answer)


def _targets(handlers: Any) -> list[tuple[str, dict[str, Any] | None]]:
    """The request's ``handlers``: event names, or one-key objects ``{name: payload}``."""
    if handlers is None:
        return []
    if not isinstance(handlers, list):
        raise BackendError(f"handlers: must be a list of event names, got {shown(handlers)}")
    targets: list[tuple[str, dict[str, Any] | None]] = []
    for entry in handlers:
        name, custom = next(iter(entry.items())) if isinstance(entry, dict) and len(entry) == 1 \
            else (entry, None)
        try:
            check_event_name(name)
        except (TypeError, ValueError):
            raise BackendError(f"handlers: holds {shown(entry)}, which is no event name") \
                from None
        if custom is not None and not isinstance(custom, dict):
            raise BackendError(f"the payload of {name} in handlers: must be an object, got "
                               f"{shown(custom)}")
        targets.append((name, custom))
    return targets


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
