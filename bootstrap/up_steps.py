"""The work behind ``zone up``'s steps: Redfish for BMCs, ansible-runner for pods.

Each factory returns a ``pod → None`` callable for :class:`bootstrap.up.Steps`.
Every step looks at the stored state first, so a re-run skips finished nodes.
"""

from __future__ import annotations

import logging

from .plan import Plan
from .lifecycle import ORDER, NodeState as S
from .state import Store

log = logging.getLogger("bootstrap.up")


def _before(store: Store, name: str, state: str) -> bool:
    node = store.node(name)
    order = ORDER["server"]
    return node is not None and node["state"] != S.FAILED and \
        order.index(node["state"]) < order.index(state)


class Hooks:
    """What ``zone up`` tells whoever plays the hardware: nothing to do for a real pod,
    where the BMCs and servers act by themselves; the lab (``zone up --lab``) overrides
    these to start its simulated servers."""

    def powered_on(self, server: str) -> None:
        """``server``'s BMC took the one-time PXE boot and powered it on."""

    def resumed(self, server: str, state: str) -> None:
        """A re-run found ``server`` in ``state``, left there by an earlier run."""


def announce_resumed(store: Store, pods, hooks: Hooks) -> None:
    for pod in pods:
        for node in store.nodes(pod=pod, kind="server"):
            hooks.resumed(node["name"], node["state"])


class _UpRecorder:
    """Redfish facts recorded on the BMC (the store recorder) and carried to its server."""

    def __init__(self, store: Store, plan: Plan, hooks: Hooks):
        from .redfish.recording import StoreRecorder

        self.inner, self.store, self.plan, self.hooks = StoreRecorder(store), store, plan, hooks

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def discovered(self, bmc, found):
        self.inner.discovered(bmc, found)
        self.store.advance([(bmc.peer, S.DISCOVERED, {"cause": "bmc-discovered"})], "redfish")

    def updating(self, bmc, steps):
        self.inner.updating(bmc, steps)
        self.store.advance([(bmc.peer, S.FIRMWARE, {"cause": "firmware-update"})], "redfish")

    def failed(self, bmc, exc):
        self.inner.failed(bmc, exc)
        self.store.transition(bmc.peer, S.FAILED, reason=f"BMC: {exc}", source="redfish")

    def booted(self, bmc, done):
        self.inner.booted(bmc, done)
        self.store.advance([(bmc.peer, S.BOOTING, {"cause": "power-on"})], "redfish")
        self.hooks.powered_on(bmc.peer)


def bmc_step(plan: Plan, store: Store, args, hooks: Hooks | None = None):
    """Firmware to baseline, one-time PXE and staggered power-on for a pod's servers.

    Only servers not yet booting are touched, and the firmware step itself skips
    compliant BMCs, so a re-run repeats nothing that finished.
    """
    from .redfish import catalog
    from .redfish.fleet import Settings, apply_all, pxe_boot_all
    from .redfish.images import verify_images
    from .redfish.rollout import Limits

    settings = Settings.for_zone(plan.zone, insecure=getattr(args, "insecure", False),
                                 limits=Limits(args.max_parallel))
    recorder = _UpRecorder(store, plan, hooks or Hooks())
    base_url = f"{plan.zone.controller_url}/files/"

    def run(pod: str) -> None:
        bmcs = [plan.nodes[n.peer] for n in plan.servers(pod) if _before(store, n.name, S.BOOTING)]
        if not bmcs:
            return
        images = verify_images(plan.zone, [fw for b in bmcs for fw in catalog.baseline(plan.zone, b)])
        results = apply_all(settings, bmcs, images, base_url, recorder)
        ready = [b for b in bmcs if results.get(b.name, ("error",))[0] == "ok"]
        pxe_boot_all(settings, ready, plan.zone.up.power_on_per_second, recorder)

    return run


def configure_step(plan: Plan, store: Store, args, extra_inventories=()):
    """The pod's installed servers handed to Ansible (playbooks/site.yml via ansible-runner)."""
    import os

    from .ansible import prepare
    from .up import configure_pod

    opts = prepare(plan, os.path.dirname(os.path.abspath(store.path)), extra_inventories,
                   getattr(args, "playbooks", None))

    def run(pod: str) -> None:
        # configured but not ready: a run was killed before its pod was; the playbooks
        # (idempotent) run again rather than trusting a configure that never finished
        pending = [n["name"] for n in store.nodes(pod=pod, kind="server")
                   if n["state"] in (S.INSTALLED, S.CONFIGURED)]
        if pending:
            configure_pod(plan, pod, store, opts, only=pending)

    return run
