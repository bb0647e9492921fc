"""What the Redfish flows saw and did, as events and node data in the state store."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)
SOURCE = "redfish"


class NullRecorder:
    """Records nothing: for library callers without a store."""

    def discovered(self, bmc, found): pass
    def compliant(self, bmc, steps): pass
    def updating(self, bmc, steps): pass
    def task(self, node, step, state, **detail): pass
    def updated(self, bmc, steps, found): pass
    def failed(self, bmc, exc): pass
    def booted(self, bmc, done): pass


class StoreRecorder(NullRecorder):
    """Events on the BMC node; firmware on the BMC, serial/MACs/power on both it and its server."""

    def __init__(self, store):
        self.store = store

    def discovered(self, bmc, found):
        data = found.as_dict()
        self.store.event("bmc-discovered", bmc.name, SOURCE, **data)
        self.store.update(bmc.name, **data)
        if bmc.peer:
            self.store.update(bmc.peer, serial=data["serial"], macs=data["macs"], power=data["power"])
        row = self.store.node(bmc.name)
        if row and row["state"] in ("planned", "failed"):   # never step back from later states
            self.store.transition(bmc.name, "discovered", source=SOURCE)

    def compliant(self, bmc, steps):
        self.store.event("firmware-compliant", bmc.name, SOURCE,
                         components={s.component: s.current for s in steps})
        self.store.transition(bmc.name, "ready", source=SOURCE)

    def updating(self, bmc, steps):
        self.store.transition(bmc.name, "firmware", source=SOURCE)
        for s in steps:
            self.store.event("firmware-update", bmc.name, SOURCE, component=s.component,
                             current=s.current, target=s.target, firmware=s.firmware)

    def task(self, node, step, state, **detail):
        self.store.event("firmware-task", node, SOURCE, component=step.component, state=state,
                         **detail)

    def updated(self, bmc, steps, found):
        self.store.event("firmware-verified", bmc.name, SOURCE,
                         components={s.component: found.fw.lookup.get(s.component.lower())
                                     for s in steps})
        self.store.update(bmc.name, **found.as_dict())
        self.store.transition(bmc.name, "ready", source=SOURCE)

    def failed(self, bmc, exc):
        reason = str(exc)
        log.debug("%s", reason)
        self.store.event("redfish-failed", bmc.name, SOURCE, error=type(exc).__name__, reason=reason)
        self.store.transition(bmc.name, "failed", reason=reason, source=SOURCE)

    def booted(self, bmc, done):
        self.store.event("pxe-boot", bmc.name, SOURCE, **done)
        if bmc.peer:
            self.store.update(bmc.peer, power="On", boot_override=done["boot"])
