"""bootstrap/lifecycle.py: every rule moves what it says, every rule's event is really
emitted, the legal moves and the one pod verdict."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bootstrap import lifecycle
from bootstrap.lifecycle import ORDER, RULES, NodeState, PodState, legal, needed, pod_verdict
from bootstrap.up import reduce

S = NodeState
PACKAGE = Path(lifecycle.__file__).resolve().parent
# Where each service records its events (a Rule's ``source``).
SOURCES = {"dhcp": "dhcp", "http": "http", "redfish": "redfish"}


# One row per rule: (rule, an event it reads, the moves it must ask for).
CASES = [
    (RULES[0], {"kind": "lease", "node": "p01-u02"}, [("p01-u02", S.DISCOVERED)]),
    (RULES[0], {"kind": "lease", "node": "p01-tor-a"}, [("p01-tor-a", S.DISCOVERED)]),
    (RULES[1], {"kind": "lease", "node": "p01-u01-bmc"},
     [("p01-u01-bmc", S.DISCOVERED), ("p01-u01", S.DISCOVERED)]),
    (RULES[2], {"kind": "firmware-update", "node": "p01-u03-bmc"}, [("p01-u03", S.FIRMWARE)]),
    (RULES[3], {"kind": "phone-home", "node": "p01-u02"}, [("p01-u02", S.INSTALLED)]),
]


def test_every_rule_has_a_case():
    assert {id(rule) for rule, _, _ in CASES} == {id(rule) for rule in RULES}


@pytest.mark.parametrize("rule, event, moves", CASES,
                         ids=[f"{r.event}-{r.on or 'any'}-{r.moves}" for r, _, _ in CASES])
def test_rule_moves(lab_plan, rule, event, moves):
    assert reduce(lab_plan, event) == moves
    node = lab_plan.nodes[event["node"]]
    target = node.name if rule.moves == lifecycle.SELF else node.peer
    assert (target, rule.to) in moves


@pytest.mark.parametrize("event", [
    {"kind": "lease", "node": "nobody"},                       # not in the plan
    {"kind": "lease"},                                         # no node
    {"kind": "firmware-update", "node": "p01-u01"},            # a server has no BMC events
    {"kind": "phone-home", "node": "p01-u01-bmc"},             # only a server phones home
    {"kind": "ztp-served", "node": "p01-tor-a"},              # anyone's GET: the view decides
    {"kind": "pxe-boot", "node": "p01-u01-bmc"},               # the Redfish step moves it itself
])
def test_other_events_move_nothing(lab_plan, event):
    assert reduce(lab_plan, event) == []


def emitted_kinds(folder: Path) -> set:
    """Event kinds recorded by literal in a service's sources: ``event("kind"``,
    ``Event("kind"`` or ``put("kind"``."""
    pattern = re.compile(r"""(?:\bevent|\bEvent|\bput)\(\s*["']([a-z0-9-]+)["']""")
    return {kind for path in folder.rglob("*.py") for kind in pattern.findall(path.read_text())}


@pytest.mark.parametrize("rule", RULES, ids=[f"{r.event}-{r.on or 'any'}" for r in RULES])
def test_every_rule_event_is_emitted_by_its_service(rule):
    assert rule.event in emitted_kinds(PACKAGE / SOURCES[rule.source]), \
        f"no {rule.source} code records {rule.event!r} events: the rule would never fire"


@pytest.mark.parametrize("kind, current, new, ok", [
    ("server", "planned", "discovered", True),
    ("server", "discovered", "booting", True),         # forward, skipping steps
    ("server", "installed", "booting", False),         # never backwards
    ("server", "booting", "booting", False),
    ("server", "ready", "failed", True),               # failed from anywhere
    ("server", "failed", "booting", True),             # and out of it (a retry)
    ("server", "failed", "failed", False),
    ("server", "planned", "ztp", False),               # not a server state
    ("switch", "discovered", "ztp", True),
    ("switch", "ztp", "installed", False),
    ("bmc", "discovered", "firmware", True),
    ("bmc", "ready", "firmware", False),
    ("unknown", "planned", "installed", True),          # an unknown kind moves like a server
])
def test_legal(kind, current, new, ok):
    assert legal(kind, current, new) is ok


@pytest.mark.parametrize("states, done, share, verdict, reason", [
    (["configured"] * 4, S.CONFIGURED, 0.25, PodState.READY, None),
    (["configured"] * 3 + ["failed"], S.CONFIGURED, 0.25, PodState.READY, None),
    (["configured"] * 2 + ["failed"] * 2, S.CONFIGURED, 0.25, PodState.FAILED,
     "2 of 4 servers failed (more than 25%)"),
    (["ready", "installed"], S.CONFIGURED, 0.25, PodState.FAILED,   # installed: not configured
     "1 of 2 servers failed (more than 25%)"),
    (["ready", "installed"], S.INSTALLED, 0.0, PodState.READY, None),  # without Ansible
    (["configured", "failed"], S.CONFIGURED, 0.5, PodState.READY, None),
    (["failed"], S.CONFIGURED, 0.0, PodState.FAILED, "1 of 1 servers failed (more than 0%)"),
    ([], S.CONFIGURED, 0.0, PodState.READY, None),
])
def test_pod_verdict(states, done, share, verdict, reason):
    assert pod_verdict(states, done, share) == (verdict, reason)


@pytest.mark.parametrize("servers, share, need", [
    (4, 0.75, 3), (3, 0.75, 3), (8, 0.75, 6), (1, 0.1, 1), (10, 0.0, 1), (5, 1.0, 5)])
def test_needed_installed_before_ansible(servers, share, need):
    assert needed(servers, share) == need


def test_states_are_the_stored_strings():
    assert json.dumps({S.READY: [S.BOOTING, PodState.CONFIGURING]}) == \
        '{"ready": ["booting", "configuring"]}'
    assert f"{S.FAILED}" == "failed" and S.FAILED == "failed"
    assert all(state in set(NodeState) for order in ORDER.values() for state in order)
