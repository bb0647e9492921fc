"""The state store: legal transitions, events, concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
import socket
import sqlite3
import subprocess
import time

import pytest
from prometheus_client import REGISTRY

from bootstrap import state
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


def _full(store: Store) -> None:
    """SQLite's own page limit: writes fail with SQLITE_FULL, as on a full disk."""
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")


def _dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("zone_events_dropped_total", {"reason": reason}) or 0.0


def test_a_full_database_drops_events_with_a_count_and_they_flow_again(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.register_service("dhcp-h-1", "dhcp", "x", "d")
    _full(store)
    writer = EventWriter(store)
    before = _dropped("disk-full")
    writer.put("lease", "n1", "dhcp", blob="x" * 100_000)
    assert _wait(lambda: writer.dropped == 1)
    assert _dropped("disk-full") == before + 1
    assert any("state writes failing" in p and "full" in p for p in store.problems())
    store.db.execute("PRAGMA max_page_count = 1073741823")  # room again
    writer.put("lease", "n2", "dhcp")
    writer.close()
    assert [e["node"] for e in store.events()] == ["n2"]
    assert store.heartbeat("dhcp-h-1") and store.problems() == []


def test_health_probes_a_failed_write_away_once_writing_works(tmp_path, monkeypatch):
    monkeypatch.setattr(state, "PROBE_INTERVAL", 0)
    store = Store(str(tmp_path / "s.db"))
    store.db.execute("PRAGMA query_only = ON")  # every write refused, as read-only
    with pytest.raises(sqlite3.OperationalError):
        store.event("lost")
    assert state.write_problems(store.path)[0] == "read-only"
    assert "readonly database" in store.problems()[0]  # the probe failed as well
    store.db.execute("PRAGMA query_only = OFF")
    assert store.problems() == []  # no event needed: the probe wrote


def test_a_heartbeat_registers_again_a_service_whose_record_is_gone(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    assert not store.heartbeat("dhcp-h-1")
    store.register_service("dhcp-h-1", "dhcp", "x", "d")
    assert store.heartbeat("dhcp-h-1")


def test_stale_services_by_process_and_by_heartbeat():
    host, now = "ctl", 1000.0
    mine = {"id": f"dhcp-{host}-{os.getpid()}", "kind": "dhcp", "pid": os.getpid(),
            "started": now - 100, "heartbeat": now - 1}
    assert state.staleness(mine, now, host) is None
    gone = _dead_pid()
    assert state.staleness(dict(mine, id=f"dhcp-{host}-{gone}", pid=gone), now, host) \
        == f"process {gone} is gone"
    assert "no heartbeat for 60 s" == state.staleness(dict(mine, heartbeat=now - 60), now, host)
    # the standalone HTTP entry registers once and never beats; elsewhere: by heartbeat only
    standalone = dict(mine, id=f"{host}:{os.getpid()}:http", kind="http", heartbeat=now - 100)
    assert state.staleness(standalone, now, host) is None
    assert state.staleness(dict(mine, pid=gone), now, "another-host") is None


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _wait(check, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.02)
    return check()


def test_a_live_service_whose_heartbeat_is_not_written_makes_the_state_degraded(tmp_path):
    store = Store(str(tmp_path / "s.db"))
    ident = f"dhcp-{socket.gethostname()}-{os.getpid()}"
    store.register_service(ident, "dhcp", "x", "d")
    assert store.problems() == []
    old = time.time() - 60
    store.db.execute("UPDATE services SET started=?, heartbeat=?", (old - 5, old))
    assert store.problems() == [f"service {ident} runs but its heartbeat was not written for 60 s"]
