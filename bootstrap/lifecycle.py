"""The lifecycle of nodes and pods, in one place: what moves a node, and when is a pod failed?

States are :class:`enum.StrEnum` members, so what the store holds and what JSON
and ``zone status`` show are the plain strings (``"booting"``), byte for byte.

**Legal moves.** A node moves only forward along its kind's :data:`ORDER`, to
``failed`` from anywhere, or out of ``failed`` (a retry); :func:`legal` is that
rule, and the store refuses (and logs) any other move.

**What moves a node.** Services record facts as events; :data:`RULES` says which
event moves which node where, and ``zone up`` (:func:`bootstrap.up.apply_events`)
replays every stored event through them, so a resumed run catches up on what
happened while it was down. Some moves are made by the service at the moment it
knows, because only it knows whether to trust the asker:

- DHCP ``lease`` → the node ``discovered``; a BMC's lease also its server (rule).
- HTTP: a switch's own ZTP fetch → ``ztp``; a server's own iPXE script fetch →
  ``booting``; its ``phone-home`` → ``installed`` (also a rule). A stranger's GET
  (a ``ztp-served`` or ``ipxe-script`` event from elsewhere) moves nothing, so
  those events are no rules.
- Redfish: the BMC ``discovered``, ``firmware`` while updating, ``ready`` when
  compliant, ``failed`` with the error; in ``zone up`` also its server:
  ``discovered``, ``firmware`` (``firmware-update``, also a rule), ``booting`` once
  powered on to PXE, ``failed`` when its BMC failed.
- Ansible's play recap: each server ``configured`` or ``failed`` (with the reason).
- ``zone up`` itself: switches at ``ztp`` → ``ready``; when the pod is ready, its
  configured (or, without Ansible, installed) servers → ``ready``.

**When is a pod failed.** A pod's state is written by :mod:`bootstrap.up` alone: the
phase its flow reached (:class:`PodState`), then :func:`pod_verdict`: ``failed`` when
more than the zone's ``up.max_failed`` share of its servers did not reach the
flow's last state, else ``ready``. Before that, the flow waits until
:func:`needed` servers (``up.min_ready`` of them, at least one) are installed; if
they are not within ``install_wait``, the pod fails with that reason. An error in
the flow fails only its own pod.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Iterable


class NodeState(StrEnum):
    PLANNED = "planned"          # in the plan, nothing seen yet
    DISCOVERED = "discovered"    # it (or, for a server, its BMC) took a DHCP lease
    ZTP = "ztp"                  # a switch fetched its own ZTP answer
    FIRMWARE = "firmware"        # a BMC is being brought to the zone's firmware baseline
    BOOTING = "booting"          # a server was powered on to PXE, or fetched its iPXE script
    INSTALLED = "installed"      # a server phoned home from its installed OS
    CONFIGURED = "configured"    # Ansible's play recap for the server had no failure
    READY = "ready"              # done: a switch after ZTP, a server once its pod is ready
    FAILED = "failed"            # with a reason; a later legal move may retry it


class PodState(StrEnum):
    """The phase a pod's ``zone up`` flow reached (stored), then ready or failed."""

    PLANNED = "planned"
    SWITCHES = "switches"
    BMCS = "bmcs"
    BOOTING = "booting"
    CONFIGURING = "configuring"
    READY = "ready"
    FAILED = "failed"
    # What a flow returns when it was stopped before the pod settled; never stored:
    # the pod keeps the phase it reached, and the next ``zone up`` resumes from there.
    STOPPED = "stopped"


FAILED = NodeState.FAILED
S = NodeState
# Legal order of states per kind (failed aside).
ORDER = {
    "server": (S.PLANNED, S.DISCOVERED, S.FIRMWARE, S.BOOTING, S.INSTALLED, S.CONFIGURED, S.READY),
    "bmc": (S.PLANNED, S.DISCOVERED, S.FIRMWARE, S.READY),
    "switch": (S.PLANNED, S.DISCOVERED, S.ZTP, S.READY),
}
# A server whose OS is installed: it boots from disk, and Ansible may reach it.
INSTALLED = (S.INSTALLED, S.CONFIGURED, S.READY)


def legal(kind: str, current: str, new: str) -> bool:
    """May a node of ``kind`` move from ``current`` to ``new``?"""
    if new == FAILED or current == FAILED:
        return new != current
    order = ORDER.get(kind, ORDER["server"])
    if new not in order or current not in order:
        return False
    return order.index(new) > order.index(current)


def reached(kind: str, state: str, target: str) -> bool:
    """Is a node of ``kind`` in ``state`` at ``target`` or beyond (failed never is)?"""
    order = ORDER.get(kind, ORDER["server"])
    return state != FAILED and state in order and order.index(state) >= order.index(target)


def needed(servers: int, min_ready: float) -> int:
    """How many of a pod's ``servers`` must be installed before Ansible runs (at least
    one); integer arithmetic, so 0.75 of 4 is 3, not 2.9999…"""
    return max(1, -(-int(min_ready * 1000) * servers // 1000))


def pod_verdict(states: Iterable[str], done: str, max_failed: float) -> tuple[PodState, str | None]:
    """The pod's state from its servers' ``states``: failed when more than ``max_failed``
    (a share) of them did not reach ``done``, with the reason; else ready."""
    states = list(states)
    failed = sum(1 for state in states if not reached("server", state, done))
    if states and failed / len(states) > max_failed:
        return PodState.FAILED, (f"{failed} of {len(states)} servers failed "
                                 f"(more than {max_failed:.0%})")
    return PodState.READY, None


# --- event → transition rules --------------------------------------------------------

SELF, PEER = "self", "peer"


@dataclass(frozen=True)
class Rule:
    event: str              # the event kind a service records ...
    source: str             # ... the service (a test checks it emits the kind)
    on: str | None          # the kind of node the event names (None: any)
    moves: str              # SELF: that node; PEER: its peer (a BMC's server)
    to: NodeState


RULES = (
    Rule("lease", "dhcp", None, SELF, S.DISCOVERED),           # acked at its location
    Rule("lease", "dhcp", "bmc", PEER, S.DISCOVERED),          # a server found by its BMC
    Rule("firmware-update", "redfish", "bmc", PEER, S.FIRMWARE),  # its BMC is updating
    Rule("phone-home", "http", "server", SELF, S.INSTALLED),   # its installed OS called
)


def transitions(event: str, node) -> list[tuple[str, NodeState]]:
    """The moves an ``event`` about plan node ``node`` asks for: ``[(name, state)]``."""
    out = []
    for rule in RULES:
        if rule.event != event or rule.on not in (None, node.kind):
            continue
        name = node.name if rule.moves == SELF else node.peer
        if name:
            out.append((name, rule.to))
    return out
