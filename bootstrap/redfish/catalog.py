"""Firmware catalog and baseline comparison: pure functions of the zone and an inventory."""

from __future__ import annotations

from dataclasses import dataclass

OK, UPDATE = "ok", "update"


@dataclass(frozen=True)
class Step:
    """One node and component: what runs now, what the baseline wants, and the action."""

    node: str
    pod: str | None
    component: str
    firmware: str     # the catalog entry's name
    current: str | None
    target: str
    action: str       # ok | update

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def baseline(zone, node) -> list:
    """The catalog entries a node's role asks for, in the role's order."""
    return [zone.firmware[name] for name in node.firmware if name in zone.firmware]


def compare(node, entries, versions: dict) -> list:
    """One :class:`Step` per baseline entry; ``versions`` maps component → version."""
    found = {k.lower(): v for k, v in versions.items()}
    steps = []
    for fw in entries:
        current = found.get(fw.component.lower())
        action = OK if current == fw.version else UPDATE
        steps.append(Step(node.name, node.pod, fw.component, fw.name, current, fw.version, action))
    return steps


def drift(steps) -> list:
    return [s for s in steps if s.action != OK]


def summary(steps, errors: dict, names=()) -> dict:
    """Counts for the end of a plan or apply; ``names`` adds nodes without a baseline."""
    nodes = set(names) | {s.node for s in steps} | set(errors)
    drifted = {s.node for s in drift(steps)}
    return {"nodes": len(nodes), "compliant": len(nodes - drifted - set(errors)),
            "drift": len(drifted - set(errors)), "failed": len(errors)}
