"""The pure core of the Ansible handoff: runner events -> node events, recap -> outcomes;
and what bootstrap.up makes of the outcomes: node states and the pod verdict."""

from __future__ import annotations

import pytest

from bootstrap import ansible as handoff
from bootstrap import up
from bootstrap.lifecycle import NodeState, PodState, pod_verdict
from bootstrap.state import Store


def runner_event(kind: str, host: str = "p01-u01", **data) -> dict:
    return {"event": kind, "event_data": {"host": host, "task": "Install base packages",
                                          "role": "common", **data}}


@pytest.mark.parametrize("kind, res, extra, status", [
    ("runner_on_start", {}, {}, "started"),
    ("runner_on_ok", {"changed": False}, {}, "ok"),
    ("runner_on_ok", {"changed": True}, {}, "changed"),
    ("runner_on_failed", {"msg": "boom"}, {}, "failed"),
    ("runner_on_failed", {"msg": "boom"}, {"ignore_errors": True}, "ignored"),
    ("runner_on_unreachable", {"msg": "Connection refused"}, {}, "unreachable"),
    ("runner_on_skipped", {}, {}, "skipped"),
])
def test_task_events_map_to_node_events(kind, res, extra, status):
    host, detail = handoff.node_event(runner_event(kind, res=res, **extra))
    assert host == "p01-u01"
    assert detail["status"] == status
    assert detail["task"] == "Install base packages" and detail["role"] == "common"
    assert ("msg" in detail) == (status in ("failed", "unreachable"))


@pytest.mark.parametrize("event", [
    {"event": "playbook_on_task_start", "event_data": {"task": "x"}},
    {"event": "verbose", "stdout": "…"},
    {"event": "runner_on_ok", "event_data": {}},          # no host
    {},
])
def test_other_events_are_not_node_events(event):
    assert handoff.node_event(event) is None


def test_failure_message_prefers_msg_and_is_one_bounded_line():
    assert handoff.failure_message({"msg": "a\n  b", "stderr": "c"}) == "a b"
    assert handoff.failure_message({"stderr": "only stderr"}) == "only stderr"
    assert handoff.failure_message({}) == "no message"
    assert len(handoff.failure_message({"msg": "x" * 5000})) == handoff.MAX_MESSAGE


STATS = {"ok": {"a": 5, "b": 1, "c": 3}, "changed": {"a": 2}, "failures": {"b": 1},
         "dark": {"c": 1}, "processed": {"a": 1, "b": 1, "c": 1}}


def test_recap_decides_each_host():
    errors = {"b": "apt failed", "c": "Connection refused"}
    out = handoff.recap(["a", "b", "c", "d"], STATS, errors)
    assert out["a"].state == "configured" and out["a"].reason is None
    assert out["a"].stats["changed"] == 2
    assert (out["b"].state, out["b"].reason) == ("failed", "task failed: apt failed")
    assert (out["c"].state, out["c"].reason) == ("failed", "unreachable: Connection refused")
    assert out["d"].state == "failed" and "not in the play recap" in out["d"].reason


def test_without_a_recap_every_host_fails_with_the_run_error():
    out = handoff.recap(["a", "b"], None, {}, "ansible-runner failed (rc 4): ERROR! bad yaml")
    assert {o.state for o in out.values()} == {"failed"}
    assert out["a"].reason.endswith("bad yaml")


@pytest.mark.parametrize("failed, total, share, ok", [
    (0, 4, 0.25, True), (1, 4, 0.25, True), (2, 4, 0.25, False),
    (1, 2, 0.5, True), (1, 2, 0.25, False), (0, 0, 0.0, True), (1, 1, 0.0, False),
])
def test_pod_fails_only_above_the_threshold(failed, total, share, ok):
    outcomes = {str(i): handoff.HostOutcome(str(i), "failed" if i < failed else "configured")
                for i in range(total)}
    verdict, reason = pod_verdict([o.state for o in outcomes.values()], NodeState.CONFIGURED,
                                  share)
    assert (verdict == PodState.READY) is ok
    assert (reason is None) is ok


class Writer:
    def __init__(self):
        self.items = []

    def put(self, kind, node=None, source="", **detail):
        self.items.append((kind, node, source, detail))


def test_pod_run_keeps_errors_and_the_recap():
    writer, seen = Writer(), []
    run = handoff.PodRun("p01", writer, lambda pod, host, detail: seen.append((pod, host)))
    assert run.handle(runner_event("runner_on_unreachable", res={"msg": "refused"})) is True
    run.handle({"event": "playbook_on_stats", "event_data": STATS})
    run.handle({"event": "playbook_on_start", "event_data": {}})
    assert run.errors == {"p01-u01": "refused"}
    assert run.stats is STATS
    assert writer.items == [("ansible", "p01-u01", "ansible",
                             {"pod": "p01", "status": "unreachable", "task": "Install base packages",
                              "role": "common", "msg": "refused"})]
    assert seen == [("p01", "p01-u01")]


def test_a_broken_display_never_breaks_the_run():
    def explode(*_):
        raise RuntimeError("display gone")

    run = handoff.PodRun("p01", Writer(), explode)
    assert run.handle(runner_event("runner_on_ok", res={})) is True


def test_up_records_the_outcomes_nodes_and_pod(lab_plan, tmp_path):
    store = Store(str(tmp_path / "zone.db"))
    store.seed(lab_plan)
    outcomes = handoff.recap(["p01-u01", "p01-u02"], {"ok": {"p01-u01": 3}, "dark": {"p01-u02": 1},
                                                      "processed": {"p01-u01": 1, "p01-u02": 1}},
                             {"p01-u02": "Connection refused"})
    result = handoff.PodResult("p01", None, None, outcomes, "successful", 0)
    up.record_configured(store, lab_plan, result)   # lab zone: max_failed 0.25
    assert (result.ok, result.reason) == (False, "1 of 2 servers failed (more than 25%)")
    assert store.node("p01-u01")["state"] == "configured"
    assert store.node("p01-u02")["state"] == "failed"
    assert store.node("p01-u02")["reason"] == "unreachable: Connection refused"
    assert {p["name"]: p["state"] for p in store.pods()}["p01"] == "failed"
    assert store.events(kind="pod-failed")[0]["detail"]["failed"] == 1


def test_nothing_to_configure_runs_nothing(lab_plan, tmp_path):
    store = Store(str(tmp_path / "zone.db"))
    store.seed(lab_plan)
    opts = handoff.Options(work_dir=str(tmp_path / "never"))
    for configure_pod in (handoff.configure_pod, up.configure_pod):
        result = configure_pod(lab_plan, "p01", store, opts, only=[])
        assert (result.ok, result.status, result.hosts) == (True, "skipped", {})
    assert not (tmp_path / "never").exists()
    assert store.events() == []
    assert {p["name"]: p["state"] for p in store.pods()}["p01"] == "planned"


class Result:
    def __init__(self, status, rc, text):
        import io

        self.status, self.rc, self.stdout = status, rc, io.StringIO(text)


def test_run_error_is_the_tail_of_what_ansible_printed():
    assert handoff.run_error(Result("successful", 0, "")) is None
    error = handoff.run_error(Result("failed", 4, "a\n\nERROR! the playbook: x could not be found\n"))
    assert error == "ansible-runner failed (rc 4): a ERROR! the playbook: x could not be found"
