"""The lifecycle of nodes and pods: states, their order, legal moves.

States are :class:`enum.StrEnum` members, so what the store holds and what JSON
and ``zone status`` show are the plain strings (``"booting"``), byte for byte.

A node moves only forward along its kind's :data:`ORDER`, to ``failed`` from
anywhere, or out of ``failed`` (a retry); :func:`legal` is that rule, and the
store refuses any other move.
"""

from __future__ import annotations

from enum import StrEnum


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
