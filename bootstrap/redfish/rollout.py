"""Rolling, bounded execution: never more than N jobs in flight, never more than M in a pod.

:func:`pick` is the pure decision; :func:`run_bounded` runs jobs on threads
under it. A job that raises is that job's failure only: the others go on.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_parallel: int = 10
    max_per_pod: int | None = None   # None: only the global bound

    def __post_init__(self):
        if self.max_parallel < 1 or (self.max_per_pod is not None and self.max_per_pod < 1):
            raise ValueError("parallelism limits must be at least 1")


def pick(pending: list, running: Counter, limits: Limits) -> int | None:
    """Index of the first pending ``(key, pod)`` that may start now, or None."""
    if sum(running.values()) >= limits.max_parallel:
        return None
    for i, (_key, pod) in enumerate(pending):
        if limits.max_per_pod is None or running[pod] < limits.max_per_pod:
            return i
    return None


def interleave(jobs: list) -> list:
    """``(key, pod)`` jobs reordered round-robin across pods, so a rolling run
    spreads over pods instead of draining one pod before the next."""
    by_pod: dict = {}
    for job in jobs:
        by_pod.setdefault(job[1], []).append(job)
    out, queues = [], list(by_pod.values())
    while queues:
        for q in queues:
            out.append(q.pop(0))
        queues = [q for q in queues if q]
    return out


def run_bounded(jobs: list, work, limits: Limits, on_done=None) -> dict:
    """Run ``work(key)`` for every ``(key, pod)`` job within ``limits``.

    Returns key → ``("ok", result)`` or ``("error", exception)``; ``on_done(key,
    outcome)`` is called as each job ends (for live progress).
    """
    pending, running = interleave(jobs), Counter()
    results: dict = {}
    cond = threading.Condition()

    def runner(key, pod):
        try:
            outcome = ("ok", work(key))
        except Exception as exc:  # one node's failure is its own; the run goes on
            outcome = ("error", exc)
        if on_done:
            on_done(key, outcome)
        with cond:
            running[pod] -= 1
            results[key] = outcome
            cond.notify_all()

    with cond:
        while pending or sum(running.values()):
            index = pick(pending, running, limits) if pending else None
            if index is None:
                cond.wait()
                continue
            key, pod = pending.pop(index)
            running[pod] += 1
            threading.Thread(target=runner, args=(key, pod), name=f"fw-{key}", daemon=True).start()
    return results
