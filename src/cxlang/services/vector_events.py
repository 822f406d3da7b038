"""The ``vector.*`` events: the run's memory (the one ``learn`` fills) as upstream CX's
in-memory vector store answered it, same event names and payload fields.

- ``vector.add.text { text, metadata, id }``: ``{ id, text, metadata }``;
- ``vector.search.text { query, topK }`` (``topK`` 5 by default): ``{ query, topK, results }``;
- ``vector.add.vector { content, vector, metadata, id }``: ``{ id, content, metadata,
  vector_length }``;
- ``vector.search.vector { vector, topK }``: ``{ results, result_count, query_vector_length }``;
- ``vector.get { id }``: ``{ id, found, record }``; ``vector.delete { id }``: ``{ id, deleted }``;
- ``vector.update { id, content, vector, metadata }``: ``{ id, updated, content, metadata }``;
- ``vector.clear``: ``{ records_cleared }``; ``vector.count``: ``{ count }``;
  ``vector.list.ids``: ``{ ids, count }``; ``vector.metrics``: ``{ metrics }``.

The default answer is ``<request>.completed``. Each result of a search is ``{ id, content,
score, metadata }``, most similar first; texts are embedded by the run's backend. A request
that cannot be served emits ``<request>.failed``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .backend import Backend, BackendError
from .controls import shown
from .event_routes import Emit, Route, Serve
from .memory import Memory, Record

__all__ = ["vector_routes"]

DEFAULT_TOP_K = 5  # upstream's


def vector_routes(memory: Memory, backend: Backend) -> dict[str, Route]:
    """The ``vector.*`` routes on *memory*, embedding with *backend*."""
    store = _VectorStore(memory, backend)
    served: dict[str, _Request] = {
        "vector.add.text": store.add_text, "vector.search.text": store.search_text,
        "vector.add.vector": store.add_vector, "vector.search.vector": store.search_vector,
        "vector.get": store.get, "vector.delete": store.delete, "vector.update": store.update,
        "vector.clear": store.clear, "vector.count": store.count,
        "vector.list.ids": store.list_ids, "vector.metrics": store.metrics,
    }
    return {name: Route(_answering(name, serve), f"{name}.failed")
            for name, serve in served.items()}


_Request = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]


def _answering(name: str, serve: _Request) -> Serve:
    """*serve* as a route's: upstream answers ``<request>.completed`` by default."""
    async def answer(payload: Mapping[str, Any], emit: Emit) -> tuple[str, dict[str, Any]]:
        return f"{name}.completed", await serve(payload)
    return answer


class _VectorStore:
    def __init__(self, memory: Memory, backend: Backend) -> None:
        self.memory = memory
        self.backend = backend

    async def add_text(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        text = _text(payload, "text")
        (vector,) = await self.backend.embed([text])
        record = self.memory.add(text, vector, _metadata(payload), _optional_id(payload))
        return {"id": record.id, "text": text, "metadata": record.metadata}

    async def search_text(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        query = _text(payload, "query")
        top_k = _top_k(payload)
        (vector,) = await self.backend.embed([query])
        return {"query": query, "topK": top_k, "results": self._found(vector, top_k)}

    async def add_vector(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        content = _text(payload, "content")
        vector = _vector(payload)
        record = self.memory.add(content, vector, _metadata(payload), _optional_id(payload))
        return {"id": record.id, "content": content, "metadata": record.metadata,
                "vector_length": len(vector)}

    async def search_vector(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        vector = _vector(payload)
        results = self._found(vector, _top_k(payload))
        return {"results": results, "query_vector_length": len(vector),
                "result_count": len(results)}

    async def get(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        record_id = _text(payload, "id")
        record = self.memory.get(record_id)
        answer: dict[str, Any] = {"id": record_id, "found": record is not None}
        if record is not None:
            answer["record"] = {"id": record.id, "content": record.text,
                                "vector": list(record.vector), "metadata": record.metadata}
        return answer

    async def delete(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        record_id = _text(payload, "id")
        return {"id": record_id, "deleted": self.memory.remove(record_id)}

    async def update(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        record_id = _text(payload, "id")
        old = self.memory.get(record_id)
        if old is None:
            return {"id": record_id, "updated": False}
        content = old.text if payload.get("content") is None else _text(payload, "content")
        if payload.get("vector") is not None:
            vector = _vector(payload)
        elif content != old.text:
            (vector,) = await self.backend.embed([content])
        else:
            vector = old.vector
        metadata = old.metadata if payload.get("metadata") is None else _metadata(payload)
        self.memory.add(content, vector, metadata, record_id)
        return {"id": record_id, "updated": True, "content": content, "metadata": metadata}

    async def clear(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"records_cleared": self.memory.clear()}

    async def count(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"count": len(self.memory)}

    async def list_ids(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        ids = self.memory.ids()
        return {"ids": ids, "count": len(ids)}

    async def metrics(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {"metrics": {"total_records": len(self.memory),
                            "embedding_backend": self.backend.name}}

    def _found(self, vector: list[float], top_k: int) -> list[dict[str, Any]]:
        return [_result(record, score) for record, score in self.memory.search(vector, top_k)]


def _result(record: Record, score: float) -> dict[str, Any]:
    return {"id": record.id, "content": record.text, "score": round(score, 6),
            "metadata": record.metadata}


def _text(payload: Mapping[str, Any], key: str) -> str:
    value = payload.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return shown(value)  # an id written as a number
    if not isinstance(value, str) or not value:
        raise BackendError(f"{key}: must be a non-empty text, got {shown(value)}")
    return value


def _optional_id(payload: Mapping[str, Any]) -> str | None:
    return None if payload.get("id") is None else _text(payload, "id")


def _metadata(payload: Mapping[str, Any]) -> dict[str, Any]:
    metadata = payload.get("metadata")
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise BackendError(f"metadata: must be an object, got {shown(metadata)}")
    return metadata


def _top_k(payload: Mapping[str, Any]) -> int:
    top_k = payload.get("topK")
    if top_k is None:
        return DEFAULT_TOP_K
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise BackendError(f"topK: must be a whole number of at least 1, got {shown(top_k)}")
    return top_k


def _vector(payload: Mapping[str, Any]) -> list[float]:
    vector = payload.get("vector")
    if not isinstance(vector, list) or not vector or not all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in vector):
        raise BackendError(f"vector: must be a list of numbers, got {shown(vector)}")
    return [float(x) for x in vector]
