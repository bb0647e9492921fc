"""The picture of a zone from the state store: counts per pod, recent events.

:func:`snapshot` is the data (``zone status --json``); :class:`Progress` draws it
live with rich on a terminal and as plain lines elsewhere.
"""

from __future__ import annotations

import json
import sys
import time

from .lifecycle import FAILED, ORDER, NodeState
from .state import Store, staleness

STATES = (*ORDER["server"], FAILED)  # a pod's servers by state, in this order


def snapshot(store: Store, zone_digest: str = "", events: int = 10) -> dict:
    now = time.time()
    pods = []
    for pod in store.pods():
        servers = store.counts(pod=pod["name"], kind="server")
        total = sum(servers.values())
        pods.append({"name": pod["name"], "state": pod["state"], "reason": pod["reason"],
                     "servers": total, "ready": servers.get(NodeState.READY, 0),
                     "states": {s: servers[s] for s in STATES if s in servers},
                     "switches": store.counts(pod=pod["name"], kind="switch"),
                     "bmcs": store.counts(pod=pod["name"], kind="bmc")})
    services = [_service(s, zone_digest, now) for s in store.services()]
    return {"pods": pods, "services": services, "zone_digest": zone_digest,
            "events": store.events(limit=events, newest=True)}


def _service(row: dict, zone_digest: str, now: float) -> dict:
    """A registered service with ``drift`` (another zone file), ``alive`` and ``stale``
    (why it is not alive, or None)."""
    stale = staleness(row, now)
    return dict(row, drift=bool(zone_digest) and row["zone_digest"] != zone_digest,
                alive=stale is None, stale=stale)


def pod_line(pod: dict) -> str:
    states = " ".join(f"{k}={v}" for k, v in pod["states"].items())
    return f"{pod['name']:<8} {pod['state']:<12} {pod['ready']}/{pod['servers']} ready  {states}"


def event_line(event: dict) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event["ts"]))
    detail = " ".join(f"{k}={v}" for k, v in event["detail"].items())
    return f"{stamp} {event['source'] or '-':<8} {event['node'] or '-':<14} {event['kind']} {detail}"


class Progress:
    """Live progress: rich on a terminal, one line per new event otherwise, or JSON."""

    def __init__(self, store: Store, json_mode: bool = False, stream=None):
        self.store, self.json_mode = store, json_mode
        self.stream = stream or sys.stdout
        self.started = time.monotonic()
        self.last_event = 0
        self.live = None
        if not json_mode and self.stream.isatty():
            from rich.live import Live

            self.live = Live(self._render(), refresh_per_second=4, transient=False)
            self.live.start()

    def _render(self):
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        snap = snapshot(self.store, events=8)
        table = Table(title=f"zone up — {time.monotonic() - self.started:.0f}s", expand=True)
        for col in ("pod", "state", "ready", "", "servers by state"):
            table.add_column(col)
        for pod in snap["pods"]:
            bar = ProgressBar(total=max(pod["servers"], 1), completed=pod["ready"], width=20)
            table.add_row(pod["name"], pod["state"], f"{pod['ready']}/{pod['servers']}", bar,
                          " ".join(f"{k}={v}" for k, v in pod["states"].items()))
        events = [Text(event_line(e), no_wrap=True, overflow="ellipsis") for e in snap["events"]]
        return Group(table, Text("recent events", style="bold"), *events)

    def update(self) -> None:
        if self.live is not None:
            self.live.update(self._render())
            return
        for event in self.store.events(since=self.last_event, limit=1000):
            self.last_event = event["id"]
            if self.json_mode:
                self.stream.write(json.dumps(event, default=str) + "\n")
            else:
                self.stream.write(event_line(event) + "\n")
        self.stream.flush()

    def close(self) -> None:
        self.update()
        if self.live is not None:
            self.live.stop()


__all__ = ["snapshot", "Progress", "ORDER"]
