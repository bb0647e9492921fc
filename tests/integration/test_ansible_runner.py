"""ansible-runner integration: two pods in parallel, node events and states, an unreachable host.

The targets are real (targets.py: SSH into namespaced Debian root file systems);
the playbook is a small one, because this is about the handoff (events, recap,
states, thresholds), not the roles, which test_ansible_converge.py covers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zonelab import targets as tg
from bootstrap.cli import main
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]   # may build the base first
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

PLAYBOOK = """\
- name: Handoff probe
  hosts: kind_server
  gather_facts: false
  tasks:
    - name: Reach the host
      ansible.builtin.ping:
    - name: Leave a mark
      ansible.builtin.copy:
        content: "{{ node_name }}\\n"
        dest: /root/configured-by-zone
        mode: "0644"
"""


def two_pod_zone(lab_text: str, max_failed: float) -> str:
    """The lab zone cut to two pods of two servers each."""
    text = re.sub(r"  units:\n(    - .*\n)+", "  units:\n    - {units: 1, role: sdn}\n"
                  "    - {units: 2, role: storage}\n", lab_text)
    text = re.sub(r"max_failed: [0-9.]+", f"max_failed: {max_failed}", text)
    return re.sub(r"pods:\n  - .*\n", "pods:\n  - {name: p01, index: 1}\n  - {name: p02, index: 2}\n",
                  text)


@pytest.fixture(scope="module")
def pods(lab_text, tmp_path_factory):
    """Zone files (lenient and strict threshold), playbooks and running targets."""
    work = tmp_path_factory.mktemp("runner")
    for name, share in (("lenient", 0.5), ("strict", 0.25)):
        (work / name).mkdir()
        (work / name / "zone.yml").write_text(two_pod_zone(lab_text, share))
        for ref in ("secrets", "firmware", "images"):
            (work / name / ref).symlink_to(EXAMPLES / ref)
    (work / "playbooks").mkdir()
    (work / "playbooks" / "site.yml").write_text(PLAYBOOK)
    plan = compile_plan(load_zone(str(work / "lenient" / "zone.yml")))
    with tg.Targets(tg.base_rootfs()) as targets:
        for name in ("p01-u01", "p01-u02", "p02-u01"):
            targets.start(name, plan.nodes[name].address)
        targets.reserve("p02-u02", plan.nodes["p02-u02"].address)   # down: refuses SSH
        targets.write_inventory(str(work / "targets.yml"))
        yield work, plan, targets


def configure(work, which: str, capsys) -> tuple[int, dict, Store]:
    state = work / which / "state" / "zone.db"
    rc = main(["configure", str(work / which / "zone.yml"), "--state", str(state),
               "--inventory", str(work / "targets.yml"), "--playbooks", str(work / "playbooks"),
               "--max-parallel", "2", "--json"])
    return rc, json.loads(capsys.readouterr().out), Store(str(state))


def test_two_pods_in_parallel_give_node_states_and_events(pods, capsys):
    work, plan, targets = pods
    rc, out, store = configure(work, "lenient", capsys)
    assert rc == 0, out
    result = {p["pod"]: p for p in out["pods"]}
    assert result["p01"]["ok"] and result["p02"]["ok"]      # 1 of 2 failed is not > 50 %
    states = {n["name"]: n for n in store.nodes(kind="server")}
    for name in ("p01-u01", "p01-u02", "p02-u01"):
        assert states[name]["state"] == "configured"
        assert targets[name].read("/root/configured-by-zone") == f"{name}\n"
        statuses = [e["detail"]["status"] for e in store.events(node=name, kind="ansible")]
        assert statuses == ["started", "ok", "started", "changed"], statuses
        tasks = [e["detail"]["task"] for e in store.events(node=name, kind="ansible")]
        assert tasks == ["Reach the host"] * 2 + ["Leave a mark"] * 2
    assert {p["name"]: p["state"] for p in store.pods()} == {"p01": "ready", "p02": "ready"}
    # In parallel: both pods started before either finished.
    marks = [e["detail"]["pod"] for e in store.events(limit=1000)
             if e["kind"] in ("pod-configuring", "pod-configured")]
    assert marks[:2] in (["p01", "p02"], ["p02", "p01"])


def test_unreachable_host_fails_with_the_reason(pods, capsys):
    work, plan, _ = pods
    _, out, store = configure(work, "lenient", capsys)
    node = store.node("p02-u02")
    assert node["state"] == "failed"
    assert node["reason"].startswith("unreachable: ")
    assert plan.nodes["p02-u02"].address in node["reason"] and "refused" in node["reason"]
    last = store.events(node="p02-u02", kind="ansible", limit=1, newest=True)[0]["detail"]
    assert last["status"] == "unreachable" and "refused" in last["msg"]
    hosts = {p["pod"]: p for p in out["pods"]}["p02"]["hosts"]
    assert hosts["p02-u02"]["stats"]["dark"] == 1


def test_too_many_failed_hosts_fail_the_pod(pods, capsys):
    work, _, _ = pods
    rc, out, store = configure(work, "strict", capsys)
    assert rc == 1
    result = {p["pod"]: p for p in out["pods"]}
    assert result["p01"]["ok"] and not result["p02"]["ok"]
    assert "1 of 2 servers failed" in result["p02"]["reason"]
    assert {p["name"]: p["state"] for p in store.pods()} == {"p01": "ready", "p02": "failed"}
