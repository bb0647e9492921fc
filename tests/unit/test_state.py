"""The state store: legal transitions, events, concurrent writers."""

from __future__ import annotations

import multiprocessing

from bootstrap.state import EventWriter, Store, legal


def test_transitions_go_forward_or_fail(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    assert store.node("p01-u03")["state"] == "planned"
    assert store.transition("p01-u03", "discovered", source="dhcp")
    assert not store.transition("p01-u03", "planned")  # backwards: refused, logged
    assert store.transition("p01-u03", "installed")
    assert store.transition("p01-u03", "failed", reason="disk")
    assert store.node("p01-u03")["reason"] == "disk"
    assert store.transition("p01-u03", "booting")  # out of failed: a retry
    kinds = [e["kind"] for e in store.events(node="p01-u03")]
    assert kinds == ["state", "illegal-transition", "state", "state", "state"]
    store.seed(lab_plan)  # seeding again keeps what is stored
    assert store.node("p01-u03")["state"] == "booting"


def test_legal_per_kind():
    assert legal("switch", "discovered", "ztp")
    assert not legal("switch", "ztp", "installed")
    assert not legal("bmc", "failed", "failed")


def test_update_merges_data(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    store.update("p01-u01", mac="52:54:00:00:00:01", serial="X1")
    store.update("p01-u01", firmware={"BIOS": "2.4.1"})
    node = store.node("p01-u01")
    assert node["mac"] == "52:54:00:00:00:01"
    assert node["data"] == {"serial": "X1", "firmware": {"BIOS": "2.4.1"}}


def _writer(path, n):
    store = Store(path)
    writer = EventWriter(store)
    for i in range(n):
        writer.put("lease", f"n{i}", "dhcp", i=i)
    writer.close()


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "s.db")
    Store(path).close()
    procs = [multiprocessing.Process(target=_writer, args=(path, 3000)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(Store(path).events(limit=100_000)) == 9000
