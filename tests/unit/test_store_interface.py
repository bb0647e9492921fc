"""The store is the only way into the state database: its finders, and a check that no
module of the product or the benches reaches past them (its connection, lock or
transactions), so a server database could replace SQLite behind the same methods."""

from __future__ import annotations

import ast
import pathlib

import pytest

from bootstrap.state import Store

ROOT = pathlib.Path(__file__).resolve().parents[2]
PRIVATE = {"db", "_tx", "_value"}  # the store's insides: no one else's attributes are so named


def test_finders(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    store.update("p01-u03", mac="52:54:00:AB:CD:EF", system_uuid="ABC-1", serial="S1")
    assert store.node_state("p01-u03") == "planned"
    assert store.node_state("nobody") is None
    assert store.name_by_mac("52:54:00:ab:cd:ef") == "p01-u03"
    assert store.name_by_mac("52:54:00:00:00:00") is None
    assert store.name_by_data(("uuid", "system_uuid"), "abc-1") == "p01-u03"
    assert store.name_by_data(("serial", "serial_number"), "s1") == "p01-u03"
    assert store.name_by_data(("serial",), "abc-1") is None


def test_finder_skips_rows_that_are_not_json(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    store.update("p01-u04", serial="S2")
    store.update("p01-u03", serial=float("inf"))  # json.dumps writes Infinity: not JSON
    assert store.name_by_data(("serial",), "S2") == "p01-u04"


def test_boot_path_finders_read_an_index(tmp_path):
    """node_state (every /boot/ipxe) and name_by_mac (?mac=) never scan the nodes: the
    statements they run, as SQLite traced them, planned."""
    store = Store(str(tmp_path / "s.db"))
    ran = []
    store.db.set_trace_callback(ran.append)
    store.node_state("p01-u03")
    store.name_by_mac("52:54:00:ab:cd:ef")
    store.db.set_trace_callback(None)
    assert len(ran) == 2
    for sql in ran:
        plan = " ".join(row[-1] for row in store.db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX" in plan or "USING PRIMARY KEY" in plan, (sql, plan)


@pytest.mark.parametrize("keys", [(), ("serial') OR 1=1 --",), ("a.b",)])
def test_finder_refuses_what_is_not_an_attribute_name(tmp_path, keys):
    with pytest.raises(ValueError):
        Store(str(tmp_path / "s.db")).name_by_data(keys, "x")


def _reaches_in(tree: ast.AST) -> list[str]:
    """``x.db``, ``x._tx``, ``x._value`` anywhere, and ``<...store...>.lock``."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = ast.unparse(node.value)
        if node.attr in PRIVATE or (node.attr == "lock" and "store" in owner.lower()):
            found.append(f"{node.lineno}: {owner}.{node.attr}")
    return found


def test_check_sees_a_reach_past_the_store():
    source = "with svc.store.lock:\n    svc.store.db.execute('x')\nself.lock = 1\n"
    assert _reaches_in(ast.parse(source)) == ["1: svc.store.lock", "2: svc.store.db"]


def test_nothing_outside_the_store_touches_its_insides():
    offenders = {}
    for path in sorted([*ROOT.glob("bootstrap/**/*.py"), *ROOT.glob("bench/**/*.py")]):
        if path == ROOT / "bootstrap" / "state.py":
            continue
        found = _reaches_in(ast.parse(path.read_text(), str(path)))
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}
