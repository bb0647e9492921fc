"""Event retention: Store.prune_events and ``zone prune``."""

from __future__ import annotations

import os
import time

import pytest

from bootstrap.cli import main
from bootstrap.errors import InputError
from bootstrap.state import Store

LAB = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "lab.yml")
DAY = 86400


def fill(store: Store, now: float) -> None:
    """n1: 5 old events and 1 new; n2: 3 old; 2 old node-less events."""
    old = now - 40 * DAY
    store.add_events([(old + i, "n1", "t", f"old-{i}", {}) for i in range(5)])
    store.add_events([(now, "n1", "t", "new", {})])
    store.add_events([(old + i, "n2", "t", f"old-{i}", {}) for i in range(3)])
    store.add_events([(old + i, None, "t", "zone", {}) for i in range(2)])


def kinds(store: Store, node=None) -> list[str]:
    return [e["kind"] for e in store.events(node=node, limit=1000)]


def test_old_events_go_but_each_node_keeps_its_newest():
    store, now = Store(":memory:"), time.time()
    fill(store, now)
    assert store.prune_events(now - 30 * DAY, keep_last_per_node=2) == 4 + 1 + 0
    assert kinds(store, "n1") == ["old-4", "new"]  # the newest two, one of them old
    assert kinds(store, "n2") == ["old-1", "old-2"]
    assert len(store.events(limit=1000)) == 2 + 2 + 2


def test_keep_zero_deletes_every_old_event_and_never_a_recent_one():
    store, now = Store(":memory:"), time.time()
    fill(store, now)
    assert store.prune_events(now - 30 * DAY, keep_last_per_node=0) == 10
    assert kinds(store) == ["new"]
    assert store.prune_events(now - 30 * DAY, keep_last_per_node=0) == 0


def test_negative_keep_is_bad_input():
    with pytest.raises(InputError):
        Store(":memory:").prune_events(time.time(), keep_last_per_node=-1)


def test_zone_prune_command(tmp_path, capsys):
    state = str(tmp_path / "zone.db")
    store, now = Store(state), time.time()
    fill(store, now)
    store.close()
    assert main(["prune", LAB, "--state", state, "--older-than", "30", "--keep", "1"]) == 0
    assert "8 events older than 30 days deleted" in capsys.readouterr().out
    assert kinds(Store(state), "n1") == ["new"]


def test_zone_prune_refuses_a_negative_age(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prune", LAB, "--older-than", "-1"])
    assert exit_.value.code == 2 and "negative" in capsys.readouterr().err
