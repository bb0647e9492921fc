"""``zone up``: walk every pod from metal to ``ready``, resumably.

Services record facts (a lease, a firmware update, a phone-home) as events; the
:func:`reduce` function turns facts into node transitions by the rules of
:mod:`bootstrap.lifecycle`, which says what moves a node and when a pod fails.
This module is the only writer of pod state. Each pod runs its
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

from .lifecycle import NodeState, PodState, needed, pod_verdict, reached, transitions
from .plan import Plan
from .state import Store

S = NodeState

log = logging.getLogger("bootstrap.up")


def reduce(plan: Plan, event: dict) -> list[tuple[str, str]]:
    """The transitions one event asks for: ``[(node name, new state)]``."""
    node = plan.nodes.get(event.get("node") or "")
    return [] if node is None else transitions(event["kind"], node)


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
        return [name for name, s in self.states(kind).items() if reached(kind, s, state)]

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
            self.store.set_pod(self.pod, PodState.FAILED, str(exc))
            self.store.event("pod-failed", None, "up", pod=self.pod, reason=str(exc))
            return PodState.FAILED

    def _run(self) -> str:
        if self.settled(self.done()):
            return PodState.READY
        switches = list(self.states("switch"))
        self.phase(PodState.SWITCHES)
        if not self.wait(lambda: len(self.at_least("switch", S.ZTP)) == len(switches),
                         self.steps.switch_wait):
            self.store.event("switches-pending", None, "up", pod=self.pod,
                             pending=sorted(set(switches) - set(self.at_least("switch", S.ZTP))))
        self.store.advance([(name, S.READY, {"cause": "ztp"}) for name in
                            self.at_least("switch", S.ZTP)], source="up")
        self.phase(PodState.BMCS)
        if self.steps.bmcs and len(self.at_least("server", S.BOOTING)) < len(self.servers):
            self.steps.bmcs(self.pod)
        self.phase(PodState.BOOTING)
        need = needed(len(self.servers), self.plan.zone.up.min_ready)
        if not self.wait(lambda: len(self.at_least("server", S.INSTALLED)) >= need,
                         self.steps.install_wait):
            if self.steps.stop.is_set():
                return PodState.STOPPED
            raise RuntimeError(f"only {len(self.at_least('server', S.INSTALLED))} of "
                               f"{len(self.servers)} servers installed; {need} needed")
        # Enough are up; stragglers still booting get a bounded grace to join this round.
        self.wait(lambda: self.settled(S.INSTALLED, pod_ready=False), self.steps.straggler_wait)
        self.phase(PodState.CONFIGURING)
        if self.steps.configure and len(self.at_least("server", S.READY)) < len(self.servers):
            self.steps.configure(self.pod)
        return self.finish()

    def done(self) -> NodeState:
        """The last state a server reaches before the pod is ready."""
        return S.CONFIGURED if self.steps.configure else S.INSTALLED

    def pod_state(self) -> str:
        return next(p for p in self.store.pods() if p["name"] == self.pod)["state"]

    def settled(self, state: str, pod_ready: bool = True) -> bool:
        """Every server is at ``state`` or beyond, or failed (and the pod is ready)."""
        if pod_ready and self.pod_state() != PodState.READY:
            return False
        states, done = self.states("server"), set(self.at_least("server", state))
        return all(name in done or states[name] == S.FAILED for name in self.servers)

    def finish(self) -> str:
        states = self.states("server")
        verdict, reason = pod_verdict([states.get(name, S.PLANNED) for name in self.servers],
                                      self.done(), self.plan.zone.up.max_failed)
        for name in self.at_least("server", self.done()):
            self.store.transition(name, S.READY, source="up")
        if verdict == PodState.FAILED:
            self.store.set_pod(self.pod, verdict, reason)
            self.store.event("pod", None, "up", pod=self.pod, state=verdict)
        else:
            self.phase(verdict)
        return verdict


# --- the Ansible handoff's states ------------------------------------------------------

ANSIBLE = "ansible"  # the source of the pod events that report a handoff


def configure_pod(plan: Plan, pod: str, store: Store, opts, only=None):
    """:func:`bootstrap.ansible.configure_pod` with its states: the pod ``configuring``
    while it runs, then each host's outcome and the pod's verdict over those hosts."""
    from .ansible import configure_pod as run_playbooks

    def started(hosts: int) -> None:
        store.set_pod(pod, PodState.CONFIGURING)
        store.event("pod-configuring", None, ANSIBLE, pod=pod, hosts=hosts)

    result = run_playbooks(plan, pod, store, opts, only, on_start=started)
    if result.ok is None:  # it ran (nothing to run is ok, and recorded nothing)
        record_configured(store, plan, result)
    return result


def record_configured(store: Store, plan: Plan, result) -> None:
    """Node states from a pod's Ansible outcomes, then the pod's, by the one verdict."""
    outcomes = result.hosts.values()
    for outcome in outcomes:
        store.transition(outcome.name, outcome.state, outcome.reason, ANSIBLE, **outcome.stats)
    verdict, result.reason = pod_verdict([o.state for o in outcomes], S.CONFIGURED,
                                         plan.zone.up.max_failed)
    result.ok = verdict == PodState.READY
    store.set_pod(result.pod, verdict, result.reason)
    store.event("pod-configured" if result.ok else "pod-failed", None, ANSIBLE, pod=result.pod,
                failed=sum(1 for o in outcomes if o.state == S.FAILED),
                hosts=len(result.hosts), reason=result.reason)


def configure(plan: Plan, pods, store: Store, opts) -> dict:
    """Configure ``pods`` in parallel (at most ``opts.max_parallel`` at once): pod -> PodResult."""
    with ThreadPoolExecutor(max_workers=max(1, opts.max_parallel),
                            thread_name_prefix="ansible-pod") as pool:
        futures = {pod: pool.submit(configure_pod, plan, pod, store, opts) for pod in pods}
        return {pod: future.result() for pod, future in futures.items()}


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
