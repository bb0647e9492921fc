"""Rate limits for what a stranger can trigger: events and log lines per kind and source.

Anyone who can send a UDP packet or an HTTP request can make a service record an
event or write a log line (an untrusted relay, an unknown location, a malformed
packet). Unbounded, that fills the disk. :class:`Throttle` lets through a small
burst per ``(kind, source)`` and then a steady trickle, and counts the rest in
``zone_suppressed_total{kind}`` so an operator still sees how much was held back.

Keys are bounded too: a flood from spoofed sources cannot grow the table without
limit; the oldest keys are forgotten first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from prometheus_client import Counter

SUPPRESSED = Counter("zone_suppressed_total",
                     "Events and log lines held back by rate limits", ["kind"])


class Throttle:
    """A token bucket per key: ``burst`` at once, then ``rate`` per second.

    ``allow(kind, source)`` is True when the caller may record/log; False means it
    was counted as suppressed. Thread-safe; ``clock`` is injectable for tests.
    """

    def __init__(self, rate: float = 1.0, burst: int = 10, max_keys: int = 10_000,
                 clock=time.monotonic):
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict = OrderedDict()   # key → [tokens, last refill]
        self._lock = threading.Lock()
        self.suppressed: dict[str, int] = {}

    def allow(self, kind: str, source: str = "") -> bool:
        now = self.clock()
        key = (kind, source)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = [float(self.burst), now]
                if len(self._buckets) > self.max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
                bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
                bucket[1] = now
            if bucket[0] >= 1.0:
                bucket[0] -= 1.0
                return True
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
        SUPPRESSED.labels(kind=kind).inc()
        return False
