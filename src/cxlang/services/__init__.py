"""AI services (``think``, ``learn``, ``is``, ...) behind pluggable model backends.

The runtime knows nothing of services; services use the runtime (its bus and coordinator) to
run a call's parallel handler parameters and emit its events.
"""

from .backend import Backend, ServiceRequest
from .invoker import ServiceInvoker
from .local import LocalBackend
from .registry import SERVICES, ServiceSpec, backend_names, create_backend, service_for_event

__all__ = [
    "SERVICES",
    "Backend",
    "LocalBackend",
    "ServiceInvoker",
    "ServiceRequest",
    "ServiceSpec",
    "backend_names",
    "create_backend",
    "service_for_event",
]
