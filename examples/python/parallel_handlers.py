"""Parallel handler parameters from Python: three "agents" answer one prompt at once.

Each handler stands for a model or network call (30 ms of I/O). Run it with ``make demo`` or
``python examples/python/parallel_handlers.py``: it prints the consolidated payload and the time
against running the same handlers one after another.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import cxlang

rt = cxlang.Runtime()


@rt.on("analytics.complete")
async def analytics(event: cxlang.Event) -> dict[str, Any]:
    await asyncio.sleep(0.03)  # stands for a model call
    return {"words": len(event.payload["prompt"].split()), "tone": "positive"}


@rt.on("reporting.ready")
async def reporting(event: cxlang.Event) -> str:
    await asyncio.sleep(0.03)
    return "Summary of: " + event.payload["prompt"]


@rt.on("risk.assessed")
async def risk(event: cxlang.Event) -> dict[str, Any]:
    await asyncio.sleep(0.03)
    raise TimeoutError("risk model did not answer")  # a partial failure, captured


@rt.on("analysis.done")
async def done(event: cxlang.Event) -> None:
    print("analysis.done received tone =", event.payload["analytics"]["tone"])


async def main() -> None:
    parameters = {
        "analytics": "analytics.complete",
        "reporting": "reporting.ready",
        "risk": "risk.assessed",
    }
    source = {"prompt": "Analyse the Q3 numbers", "result": "Revenue up 12%"}

    started = time.perf_counter()
    result = await rt.parallel(parameters, source, timeout=5.0)
    parallel_ms = (time.perf_counter() - started) * 1000
    rt.emit("analysis.done", result.payload)
    await rt.run_until_idle()

    started = time.perf_counter()
    for name, event_name in parameters.items():  # the same calls, one after another
        await rt.parallel({name: event_name}, source, timeout=5.0)
    sequential_ms = (time.perf_counter() - started) * 1000

    print(json.dumps(result.payload, indent=2))
    print(f"parallel: {parallel_ms:.1f} ms   sequential: {sequential_ms:.1f} ms   "
          f"speed-up: {sequential_ms / parallel_ms:.1f}x")
    await rt.aclose()


if __name__ == "__main__":
    asyncio.run(main())
