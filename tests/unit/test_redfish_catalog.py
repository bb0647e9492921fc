"""Firmware baseline comparison and fleet scheduling: the pure parts."""

import threading
from collections import Counter

import pytest

from bootstrap.redfish import catalog, rollout
from bootstrap.redfish.fleet import stagger


def test_baseline_follows_the_role(lab_zone, lab_plan):
    hyper, storage = lab_plan.nodes["p01-u03-bmc"], lab_plan.nodes["p01-u02-bmc"]
    assert [f.name for f in catalog.baseline(lab_zone, hyper)] == ["bios-2.4.1"]
    assert catalog.baseline(lab_zone, storage) == []


def test_compare_ok_update_and_missing(lab_zone, lab_plan):
    node = lab_plan.nodes["p01-u03-bmc"]
    entries = catalog.baseline(lab_zone, node)
    (ok,) = catalog.compare(node, entries, {"bios": "2.4.1"})
    assert ok.action == catalog.OK and ok.current == "2.4.1"
    (old,) = catalog.compare(node, entries, {"BIOS": "1.0.0", "BMC": "1.00"})
    assert old.action == catalog.UPDATE and (old.current, old.target) == ("1.0.0", "2.4.1")
    (missing,) = catalog.compare(node, entries, {})
    assert missing.action == catalog.UPDATE and missing.current is None
    assert catalog.drift([ok, old]) == [old]


def test_summary_counts_nodes_once():
    s = [catalog.Step("a", "p", "BIOS", "f", "1", "1", "ok"),
         catalog.Step("a", "p", "BMC", "g", "1", "2", "update"),
         catalog.Step("b", "p", "BIOS", "f", "1", "1", "ok")]
    assert catalog.summary(s, {"c": "down"}) == {"nodes": 3, "compliant": 1, "drift": 1, "failed": 1}


def test_pick_respects_global_and_pod_bounds():
    limits = rollout.Limits(3, 2)
    pending = [("a1", "a"), ("a2", "a"), ("b1", "b")]
    assert rollout.pick(pending, Counter(), limits) == 0
    assert rollout.pick(pending, Counter(a=2), limits) == 2
    assert rollout.pick(pending, Counter(a=2, b=1), limits) is None
    assert rollout.pick([("a3", "a")], Counter(a=2), limits) is None
    assert rollout.pick(pending, Counter(a=1), rollout.Limits(1)) is None


def test_limits_reject_zero():
    with pytest.raises(ValueError):
        rollout.Limits(0)
    with pytest.raises(ValueError):
        rollout.Limits(2, 0)


def test_interleave_round_robins_pods():
    jobs = [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b")]
    assert [k for k, _ in rollout.interleave(jobs)] == ["a1", "b1", "a2", "a3"]


def test_run_bounded_never_exceeds_bounds_and_isolates_failures():
    lock, running, peak, peak_pod = threading.Lock(), Counter(), [0], Counter()
    gate = threading.Semaphore(0)
    jobs = [(f"{p}{i}", p) for p in "abc" for i in range(6)]
    pods = dict(jobs)

    def work(key):
        with lock:
            running[pods[key]] += 1
            peak[0] = max(peak[0], sum(running.values()))
            peak_pod[pods[key]] = max(peak_pod[pods[key]], running[pods[key]])
        gate.acquire(timeout=0.02)   # hold the slot briefly so jobs overlap
        with lock:
            running[pods[key]] -= 1
        if key == "b3":
            raise RuntimeError("BMC said no")
        return key.upper()

    seen = []
    results = rollout.run_bounded(jobs, work, rollout.Limits(4, 2),
                                  on_done=lambda k, o: seen.append(k))
    assert peak[0] <= 4 and max(peak_pod.values()) <= 2
    assert results["b3"][0] == "error" and "BMC said no" in str(results["b3"][1])
    assert sum(1 for kind, _ in results.values() if kind == "ok") == 17
    assert sorted(seen) == sorted(k for k, _ in jobs)


def test_stagger_is_per_pod():
    class N:
        def __init__(self, name, pod):
            self.name, self.pod = name, pod

    nodes = [N("a1", "a"), N("a2", "a"), N("b1", "b"), N("a3", "a")]
    assert stagger(nodes, 2) == {"a1": 0.0, "a2": 0.5, "b1": 0.0, "a3": 1.0}
    with pytest.raises(ValueError):
        stagger(nodes, 0)
