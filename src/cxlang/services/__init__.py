"""AI services (``think``, ``learn``, ``is``, ...) behind pluggable model backends.

The runtime knows nothing of services; services use the runtime (its bus and coordinator) to
run a call's parallel handler parameters and emit its events. Backends: ``local`` (built in,
deterministic), ``openai`` (any OpenAI-compatible server, :mod:`.openai`) and ``llama`` (a GGUF
model in process, :mod:`.llama`), chosen by :mod:`.config`. Python code calls them through
:class:`Services` (:mod:`.python_face`).
"""

from .backend import Backend, BackendError, BackendUnavailableError, ServiceRequest
from .config import BackendSettings, ConfigError, load_settings
from .invoker import ServiceInvoker
from .local import LocalBackend
from .memory import Memory
from .python_face import Services
from .registry import (
    BACKENDS,
    SERVICES,
    ServiceSpec,
    backend_names,
    create_backend,
    service_for_event,
)

__all__ = [
    "BACKENDS",
    "SERVICES",
    "Backend",
    "BackendError",
    "BackendSettings",
    "BackendUnavailableError",
    "ConfigError",
    "LocalBackend",
    "Memory",
    "ServiceInvoker",
    "ServiceRequest",
    "ServiceSpec",
    "Services",
    "backend_names",
    "create_backend",
    "load_settings",
    "service_for_event",
]
