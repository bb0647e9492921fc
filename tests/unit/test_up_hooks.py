"""zone up tells whoever plays the hardware (the lab) what it did, through up_steps.Hooks."""

from __future__ import annotations

from bootstrap.state import Store
from bootstrap.up_steps import Hooks, _UpRecorder, announce_resumed


class Seen(Hooks):
    def __init__(self):
        self.calls = []

    def powered_on(self, server):
        self.calls.append(("powered_on", server))

    def resumed(self, server, state):
        self.calls.append(("resumed", server, state))


def test_power_on_moves_the_server_to_booting_and_tells_the_hooks(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    server = next(iter(lab_plan.servers("p01")))
    hooks = Seen()
    _UpRecorder(store, lab_plan, hooks).booted(lab_plan.nodes[server.peer], {"boot": "Pxe"})
    assert hooks.calls == [("powered_on", server.name)]
    assert store.node(server.name)["state"] == "booting"


def test_a_rerun_reports_every_server_with_its_state(lab_plan, tmp_path):
    store = Store(str(tmp_path / "s.db"))
    store.seed(lab_plan)
    hooks = Seen()
    announce_resumed(store, ["p01"], hooks)
    names = sorted(n.name for n in lab_plan.servers("p01"))
    assert sorted(c[1] for c in hooks.calls) == names
    assert {c[0] for c in hooks.calls} == {"resumed"}
    assert all(c[2] == store.node(c[1])["state"] for c in hooks.calls)


def test_the_default_hooks_do_nothing():
    assert Hooks().powered_on("x") is None and Hooks().resumed("x", "booting") is None
