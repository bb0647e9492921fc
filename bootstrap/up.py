"""``zone up``: walk every pod from metal to ``ready``, resumably.

Services record facts (a lease, a ZTP fetch, a phone-home) as events; the
:func:`reduce` function turns facts into node transitions. Each pod runs its
steps in order — switches → BMCs (firmware, one-time PXE, staggered power-on) →
servers install → Ansible → ready — and every step is idempotent and decided
from the stored state, so a run killed at any moment (SIGKILL included) picks up
where it stopped without repeating finished work.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from .lifecycle import ORDER
from .plan import Plan
from .state import Store

log = logging.getLogger("bootstrap.up")

# Event kind → (which node it moves, to which state). ``peer`` means the BMC's server.
RULES = {
    "lease": [("self", "discovered")],
    "ztp-fetched": [("self", "ztp")],
    "bmc-lease": [("peer", "discovered")],
    "firmware-started": [("self", "firmware")],
    "power-on": [("self", "booting")],
    "phone-home": [("self", "installed")],
}


def reduce(plan: Plan, event: dict) -> list[tuple[str, str]]:
    """The transitions one event asks for: ``[(node name, new state)]``."""
    node = plan.nodes.get(event.get("node") or "")
    if node is None:
        return []
    out = []
    for target, state in RULES.get(event["kind"], ()):
        name = node.name if target == "self" else node.peer
        out.append((name, state))
    if event["kind"] == "lease" and node.kind == "bmc":
        out.append((node.peer, "discovered"))  # a server is found through its BMC's lease
    return out


def apply_events(plan: Plan, store: Store, since: int) -> int:
    """Apply every stored event after ``since``; returns the new cursor.

    Only legal forward moves are made, so replaying old events is harmless and
    logs nothing: resumption never duplicates a finished step's events.
    """
    events = store.events(since=since, limit=5000)
    moves = [(name, state, {"cause": event["kind"]})
             for event in events for name, state in reduce(plan, event)]
    store.advance(moves, source="up")
    return events[-1]["id"] if events else since


@dataclass
class Steps:
    """The work behind each step; ``zone up`` wires in Redfish and Ansible."""

    bmcs: Callable[[str], None] | None = None       # pod → firmware, PXE, power-on
    configure: Callable[[str], None] | None = None  # pod → Ansible
    switch_wait: float = 0.0                        # seconds to wait for switch ZTP
    install_wait: float = 1800.0                    # seconds to wait for installs
    straggler_wait: float = 120.0                   # then, for the rest still booting
    poll: float = 0.5
    stop: threading.Event = field(default_factory=threading.Event)


class PodFlow:
    def __init__(self, plan: Plan, store: Store, pod: str, steps: Steps):
        self.plan, self.store, self.pod, self.steps = plan, store, pod, steps
        self.servers = [n.name for n in plan.servers(pod)]

    def states(self, kind: str) -> dict:
        return {n["name"]: n["state"] for n in self.store.nodes(pod=self.pod, kind=kind)}

    def at_least(self, kind: str, state: str) -> list[str]:
        order = ORDER[kind]
        return [name for name, s in self.states(kind).items()
                if s != "failed" and order.index(s) >= order.index(state)]

    def phase(self, state: str) -> None:
        if self.pod_state() != state:
            self.store.set_pod(self.pod, state)
            self.store.event("pod", None, "up", pod=self.pod, state=state)

    def wait(self, done: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not done():
            if self.steps.stop.is_set() or time.monotonic() >= deadline:
                return False
            time.sleep(self.steps.poll)
        return True

    def run(self) -> str:
        """Drive the pod to ``ready`` or ``failed``; returns the pod's final state."""
        try:
            return self._run()
        except Exception as exc:  # one pod's failure never stops the others
            log.exception("pod %s failed", self.pod)
            self.store.set_pod(self.pod, "failed", str(exc))
            self.store.event("pod-failed", None, "up", pod=self.pod, reason=str(exc))
            return "failed"

    def _run(self) -> str:
        if self.settled("configured" if self.steps.configure else "installed"):
            return "ready"
        switches = list(self.states("switch"))
        self.phase("switches")
        if not self.wait(lambda: len(self.at_least("switch", "ztp")) == len(switches),
                         self.steps.switch_wait):
            self.store.event("switches-pending", None, "up", pod=self.pod,
                             pending=sorted(set(switches) - set(self.at_least("switch", "ztp"))))
        self.store.advance([(name, "ready", {"cause": "ztp"}) for name in
                            self.at_least("switch", "ztp")], source="up")
        self.phase("bmcs")
        if self.steps.bmcs and len(self.at_least("server", "booting")) < len(self.servers):
            self.steps.bmcs(self.pod)
        self.phase("booting")
        need = self.min_ready()
        if not self.wait(lambda: len(self.at_least("server", "installed")) >= need,
                         self.steps.install_wait):
            if self.steps.stop.is_set():
                return "stopped"
            raise RuntimeError(f"only {len(self.at_least('server', 'installed'))} of "
                               f"{len(self.servers)} servers installed; {need} needed")
        # Enough are up; stragglers still booting get a bounded grace to join this round.
        self.wait(lambda: self.settled("installed", pod_ready=False), self.steps.straggler_wait)
        self.phase("configuring")
        if self.steps.configure and len(self.at_least("server", "ready")) < len(self.servers):
            self.steps.configure(self.pod)
        return self.finish()

    def pod_state(self) -> str:
        return next(p for p in self.store.pods() if p["name"] == self.pod)["state"]

    def settled(self, state: str, pod_ready: bool = True) -> bool:
        """Every server is at ``state`` or beyond, or failed (and the pod is ready)."""
        if pod_ready and self.pod_state() != "ready":
            return False
        states, done = self.states("server"), set(self.at_least("server", state))
        return all(name in done or states[name] == "failed" for name in self.servers)

    def min_ready(self) -> int:
        share = self.plan.zone.up.min_ready
        return max(1, -(-int(share * 1000) * len(self.servers) // 1000))

    def finish(self) -> str:
        done = "configured" if self.steps.configure else "installed"
        configured = self.at_least("server", done)
        for name in configured:
            self.store.transition(name, "ready", source="up")
        failed = len(self.servers) - len(configured)
        if failed > self.plan.zone.up.max_failed * len(self.servers):
            self.store.set_pod(self.pod, "failed", f"{failed} of {len(self.servers)} servers failed")
            self.store.event("pod", None, "up", pod=self.pod, state="failed")
            return "failed"
        self.phase("ready")
        return "ready"


def run_up(plan: Plan, store: Store, pods: list[str], steps: Steps, progress=None,
           timeout: float | None = None, parallel: int = 8) -> dict:
    """Run every pod's flow in parallel; returns pod → final state."""
    store.seed(plan)
    cursor = 0
    results: dict[str, str] = {}
    deadline = time.monotonic() + timeout if timeout else None
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(pods)))) as pool:
        futures = {pool.submit(PodFlow(plan, store, pod, steps).run): pod for pod in pods}
        while futures:
            cursor = apply_events(plan, store, cursor)
            if progress:
                progress.update()
            for future in [f for f in futures if f.done()]:
                results[futures.pop(future)] = future.result()
            if deadline and time.monotonic() > deadline:
                steps.stop.set()
            time.sleep(steps.poll)
    apply_events(plan, store, cursor)
    return results
