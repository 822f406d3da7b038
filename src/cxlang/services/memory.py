"""What ``learn`` and the ``vector.*`` events store: texts with their embeddings, recalled by
similarity.

In process and per run: a program's memory lives as long as the program. Later service calls
are given the texts most similar to their prompt, so a model can use what was learnt; the
``vector.*`` events (:mod:`.vector_events`) add, find and remove records by id.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Memory", "Record"]


@dataclass(slots=True)
class Record:
    """One stored text: its id, its vector (and the vector's norm) and its metadata."""

    id: str
    text: str
    vector: list[float]
    norm: float
    metadata: dict[str, Any] = field(default_factory=dict)


class Memory:
    """Records by id, in the order they were added; ``search`` ranks by cosine similarity."""

    def __init__(self) -> None:
        self._records: dict[str, Record] = {}
        self._made = 0  # ids given so far

    def __len__(self) -> int:
        return len(self._records)

    def add(self, text: str, vector: Sequence[float],
            metadata: dict[str, Any] | None = None, record_id: str | None = None) -> Record:
        """Store *text*; under *record_id* it replaces the record of that id, if any."""
        if record_id is None:
            self._made += 1
            record_id = f"memory-{self._made}"
        record = Record(record_id, text, list(vector), _norm(vector), metadata or {})
        self._records[record_id] = record
        return record

    def get(self, record_id: str) -> Record | None:
        return self._records.get(record_id)

    def remove(self, record_id: str) -> bool:
        return self._records.pop(record_id, None) is not None

    def clear(self) -> int:
        """Forget everything; how many records there were."""
        count = len(self._records)
        self._records.clear()
        return count

    def ids(self) -> list[str]:
        return list(self._records)

    def search(self, vector: Sequence[float], k: int) -> list[tuple[Record, float]]:
        """The *k* records most similar to *vector* with their similarity, most similar first
        (ties: the earlier added first)."""
        if k <= 0 or not self._records:
            return []
        norm = _norm(vector)
        scored = [(_cosine(vector, norm, r.vector, r.norm), -i, r)
                  for i, r in enumerate(self._records.values())]
        scored.sort(key=lambda item: item[:2], reverse=True)
        return [(record, score) for score, _, record in scored[:k]]

    def recall(self, vector: Sequence[float], k: int) -> list[str]:
        """The texts of the *k* most similar records, most similar first."""
        return [record.text for record, _ in self.search(vector, k)]


def _norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def _cosine(a: Sequence[float], a_norm: float, b: Sequence[float], b_norm: float) -> float:
    if not a_norm or not b_norm or len(a) != len(b):
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (a_norm * b_norm)
