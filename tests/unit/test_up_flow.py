"""The pod state machine with simulated service events (no namespaces); the rules
themselves are tested in test_lifecycle.py."""

from __future__ import annotations

import threading

from bootstrap.state import Store
from bootstrap.up import Steps, apply_events, run_up


def simulate_pod(plan, store, pod, fail=()):
    """What the services would record while a pod boots."""
    def bmcs(_pod):
        for node in plan.servers(pod):
            store.event("lease", node.peer, "dhcp")
        apply_events(plan, store, 0)
        for node in plan.servers(pod):
            store.transition(node.name, "booting", source="redfish")
            store.event("lease", node.name, "dhcp")
            if node.name not in fail:
                store.event("phone-home", node.name, "http")

    def configure(_pod):
        for node in plan.servers(pod):
            if node.name in fail or store.node(node.name)["state"] != "installed":
                store.transition(node.name, "failed", reason="ansible: unreachable")
            else:
                store.transition(node.name, "configured", source="ansible")

    return Steps(bmcs=bmcs, configure=configure, switch_wait=0, install_wait=10,
                 straggler_wait=0.2, poll=0.01)


def test_pod_reaches_ready(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    result = run_up(lab_plan, store, ["p01"], simulate_pod(lab_plan, store, "p01"))
    assert result == {"p01": "ready"}
    assert {n["state"] for n in store.nodes(pod="p01", kind="server")} == {"ready"}


def test_one_failed_server_does_not_fail_the_pod(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    steps = simulate_pod(lab_plan, store, "p01", fail={"p01-u04"})
    assert run_up(lab_plan, store, ["p01"], steps) == {"p01": "ready"}
    assert store.node("p01-u04")["state"] == "failed"
    assert store.node("p01-u03")["state"] == "ready"


def test_rerun_repeats_nothing(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    run_up(lab_plan, store, ["p01"], simulate_pod(lab_plan, store, "p01"))
    before = len(store.events(limit=10_000))
    calls = []
    steps = Steps(bmcs=calls.append, configure=calls.append, poll=0.01)
    assert run_up(lab_plan, store, ["p01"], steps) == {"p01": "ready"}
    assert calls == [] and len(store.events(limit=10_000)) == before


def test_stop_ends_the_wait(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    steps = Steps(install_wait=60, poll=0.01)
    threading.Timer(0.2, steps.stop.set).start()
    assert run_up(lab_plan, store, ["p01"], steps) == {"p01": "stopped"}
