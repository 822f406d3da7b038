"""PayloadPropertyMapper: builds the consolidated payload of a parallel call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .outcomes import BranchOutcome, Failure

__all__ = ["ERRORS_KEY", "PayloadPropertyMapper"]

ERRORS_KEY = "_errors"


class PayloadPropertyMapper:
    """Source payload + each parameter's result under its name, in declaration order.

    A failed parameter maps to ``None`` (with several subscribers: their results, ``None`` where
    one failed) and its failure goes to ``_errors[name]`` as ``{"type", "message"}`` (and
    ``attempts`` under a retry policy); ``_errors`` is present only when something failed. The
    source payload is copied, never mutated: the branches may still be reading it.
    """

    __slots__ = ()

    def consolidate(
        self, source: Mapping[str, Any], outcomes: Iterable[BranchOutcome]
    ) -> dict[str, Any]:
        payload = dict(source)
        errors: dict[str, dict[str, str | int]] | None = None
        for outcome in outcomes:
            failure = outcome.failure
            if failure is None:
                payload[outcome.name] = outcome.value
            else:
                value = outcome.value
                # Several subscribers: their list, with null where one failed.
                payload[outcome.name] = [None if isinstance(v, Failure) else v for v in value] \
                    if type(value) is list else None
                if errors is None:
                    errors = {}
                errors[outcome.name] = failure.to_payload()
        if errors is not None:
            payload[ERRORS_KEY] = errors
        return payload
