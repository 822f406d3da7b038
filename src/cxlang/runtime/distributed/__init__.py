"""The event bus and parallel handler parameters across processes, over NATS.

A :class:`~cxlang.Runtime` made with ``bus="nats://host:port"`` gets a transport
(:mod:`.transport`) plugged into the bus's one seam (:class:`~cxlang.runtime.bus.Transport`).
What crosses and how:

* **Events.** An emit runs this process's handlers here, as before, and is also published on
  the subject named like the event (:mod:`.subjects`), with its id, timestamp and causal parent
  in headers (:mod:`.codec`); a burst of events of one name goes in batches, one message each
  (:mod:`.outbox`). Every other process subscribed to a matching pattern receives it and
  dispatches it to its own handlers. ``system.*`` events stay in their process.
* **Parallel handler parameters.** Every process announces the patterns it handles
  (:mod:`.directory`). A parallel call adds one unit per handler that another process serves
  (:mod:`.remote`); the units bound for one member go in one request (:mod:`.replies`), and
  that process runs them and replies as each ends (:mod:`.server`).
* **Groups.** Processes started with the same ``group`` (``cx worker``) share the work: an
  event or a call reaches one of them.
* **Durability.** With ``durable=True`` events go through a JetStream stream (:mod:`.durable`)
  and are acknowledged only after the receiving process has handled them.

This package imports the NATS client (nats-py, the ``cxlang[nats]`` extra) only when a
transport is made, so the runtime works without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import BusUnavailable

if TYPE_CHECKING:
    from ..bus import EventBus
    from ..coordinator import ParallelHandlerCoordinator
    from .credentials import FileCredentials
    from .transport import NatsTransport

__all__ = ["BusUnavailable", "attach"]


def attach(
    url: str,
    bus: EventBus,
    coordinator: ParallelHandlerCoordinator,
    *,
    group: str | None,
    durable: bool,
    handler_timeout: float,
    ack_wait: float,
    credentials: FileCredentials | None = None,
) -> NatsTransport:
    """Make the transport for *url* and plug it into *bus* (it connects on ``connect()``)."""
    try:
        from .transport import NatsTransport  # noqa: PLC0415 - the optional extra
    except ImportError as exc:
        raise BusUnavailable(
            f"bus={url!r} needs the NATS client, which is not installed ({exc}). "
            "Install it with: pip install 'cxlang[nats]'"
        ) from None
    return NatsTransport(url, bus, coordinator, group=group, durable=durable,
                         handler_timeout=handler_timeout, ack_wait=ack_wait,
                         credentials=credentials)
