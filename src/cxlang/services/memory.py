"""What ``learn`` stores: texts with their embeddings, recalled by similarity.

In process and per run: a program's memory lives as long as the program. Later service calls
are given the texts most similar to their prompt, so a model can use what was learnt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["Memory"]


class Memory:
    """Texts and vectors; ``recall`` ranks by cosine similarity."""

    def __init__(self) -> None:
        self._items: list[tuple[str, list[float], float]] = []  # text, vector, its norm

    def __len__(self) -> int:
        return len(self._items)

    def add(self, text: str, vector: Sequence[float]) -> None:
        self._items.append((text, list(vector), _norm(vector)))

    def recall(self, vector: Sequence[float], k: int) -> list[str]:
        """The *k* most similar texts, most similar first (ties: the earlier learnt first)."""
        if k <= 0 or not self._items:
            return []
        norm = _norm(vector)
        scored = [(_cosine(vector, norm, item, item_norm), -i, text)
                  for i, (text, item, item_norm) in enumerate(self._items)]
        scored.sort(reverse=True)
        return [text for _, _, text in scored[:k]]


def _norm(vector: Sequence[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


def _cosine(a: Sequence[float], a_norm: float, b: Sequence[float], b_norm: float) -> float:
    if not a_norm or not b_norm or len(a) != len(b):
        return 0.0
    return sum(x * y for x, y in zip(a, b, strict=True)) / (a_norm * b_norm)
