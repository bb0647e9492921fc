"""The firmware and boot flows over many BMCs: discover, plan, apply, PXE boot.

Each flow is per node (:func:`discover_node`, :func:`update_node`,
:func:`pxe_boot_node`) and fleet-wide through :func:`run_bounded`. What is seen
and done goes to a recorder (see :mod:`.recording`), never to stdout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from . import catalog
from ..metrics import FIRMWARE_SECONDS
from .client import (Answer, BmcClient, Credentials, Endpoint, Policy, Tls, endpoint_for,
                     load_credentials, tls_settings)
from .errors import RedfishError, VerifyFailed, passing
from .images import image_url
from .managers import host_interface_nics, manager_firmware
from .rollout import Limits, run_bounded
from .systems import System, find_system, mac_addresses, read_system, reset, set_boot_once
from .tasks import Backoff, follow
from .update_service import Image, InventoryIndex, choose, read_offer, shown, under, update


INVENTORY, FALLBACK = "FirmwareInventory", "system/manager"


@dataclass
class Settings:
    """Everything a flow needs besides the plan; one per run."""

    zone: object
    creds: Credentials
    tls: Tls
    policy: Policy = field(default_factory=Policy)
    limits: Limits = field(default_factory=Limits)
    task_timeout: float = 1800.0
    verify_timeout: float = 60.0
    poll: Backoff = field(default_factory=Backoff)
    index: InventoryIndex = field(default_factory=InventoryIndex)

    @classmethod
    def for_zone(cls, zone, insecure: bool = False, **kw) -> "Settings":
        """Credentials and TLS from the zone file; ``kw`` sets the rest."""
        return cls(zone, load_credentials(zone), tls_settings(zone, insecure), **kw)

    def client(self, bmc) -> BmcClient:
        return BmcClient(endpoint_for(self.zone, bmc), self.creds, self.tls, self.policy)


@dataclass(frozen=True)
class Firmware:
    """Versions as one BMC reports them."""

    versions: dict   # component as the BMC names it → version (what is recorded)
    lookup: dict     # lower-case Name and Id → version (what the baseline is matched with)
    targets: dict    # lower-case Name and Id → inventory item path, for SimpleUpdate Targets
    source: str      # FirmwareInventory | system/manager
    owners: dict = field(default_factory=dict)   # lower-case Name and Id → its system or manager


@dataclass
class Discovery:
    """What one BMC reported."""

    node: str
    endpoint: Endpoint
    system: System
    fw: Firmware
    macs: list

    @property
    def firmware(self) -> dict:
        return self.fw.versions

    def as_dict(self) -> dict:
        return {"url": self.endpoint.url, "system": self.system.path, "firmware": self.firmware,
                "firmware_source": self.fw.source, "serial": self.system.serial,
                "power": self.system.power, "macs": self.macs}


def read_firmware(client, system: System, index: InventoryIndex) -> Firmware:
    """FirmwareInventory where the BMC has it, else ``BiosVersion`` and the manager's
    ``FirmwareVersion``."""
    items = index.items(client, system.owners)
    manager = system.managers[0] if system.managers else None
    if items is None:
        found = {"BIOS": system.bios_version, "BMC": manager_firmware(client, system)}
        versions = {k: v for k, v in found.items() if v}
        return Firmware(versions, {k.lower(): v for k, v in versions.items()}, {}, FALLBACK,
                        {"bios": system.path, "bmc": manager})
    chosen = choose(items)
    owners = {k: _owner(item, system, manager) for k, item in chosen.items()}
    return Firmware(shown(items), {k: i.version for k, i in chosen.items()},
                    {k: i.path for k, i in chosen.items()}, INVENTORY, owners)


def _owner(item, system: System, manager: str | None) -> str:
    """The system or manager an item relates to (a Manager for BMC firmware)."""
    for related in item.related:
        if manager and under(related, {manager.rstrip("/")}):
            return manager
    return system.path


def discover_node(settings: Settings, bmc, client: BmcClient | None = None,
                  macs: bool = True) -> Discovery:
    """Read system, manager and firmware inventory, serial, MACs and power state."""
    own = client is None
    client = client or settings.client(bmc).connect()
    try:
        system = find_system(client, client.endpoint.system)
        return Discovery(bmc.name, client.endpoint, system,
                         read_firmware(client, system, settings.index),
                         nics(client, system) if macs else [])
    finally:
        if own:
            client.close()


def nics(client, system: System) -> list:
    """The system's MACs without its Redfish host interface."""
    return mac_addresses(client, system, host_interface_nics(client, system))


@dataclass
class NodeResult:
    node: str
    steps: list             # catalog.Step before the update
    updated: list = field(default_factory=list)   # components now at baseline
    discovery: Discovery | None = None


def update_node(settings: Settings, bmc, images: dict, recorder) -> NodeResult:
    """Bring one BMC to its baseline: skip if compliant, else update, apply, verify."""
    entries, began = catalog.baseline(settings.zone, bmc), time.monotonic()
    with settings.client(bmc) as client:
        found = discover_node(settings, bmc, client, macs=False)
        steps = catalog.compare(bmc, entries, found.fw.lookup)
        result = NodeResult(bmc.name, steps, discovery=found)
        todo = catalog.drift(steps)
        # The first update starts before the NICs are read: the BMC is busy for
        # minutes anyway, and every request saved here shortens the whole rollout.
        offer = read_offer(client) if todo else None
        ref = _submit(settings, client, found, todo[0], images, offer) if todo else None
        found.macs = nics(client, found.system)
        recorder.discovered(bmc, found)
        if not todo:
            recorder.compliant(bmc, steps)
            return result
        recorder.updating(bmc, todo)
        for i, step in enumerate(todo):
            ref = ref if i == 0 else _submit(settings, client, found, step, images, offer)
            _finish(settings, client, found, step, ref, recorder)
        result.discovery = _verify(settings, client, bmc, found, entries)
        result.updated = [s.component for s in todo]
        recorder.updated(bmc, todo, result.discovery)
        FIRMWARE_SECONDS.observe(time.monotonic() - began)
        return result


def _submit(settings, client, found: Discovery, step, images: dict, offer):
    """Send the update for one component the way the BMC offers, targeting its
    inventory item, else the system or manager it relates to (see :func:`.update`).

    A POST whose answer was lost is repeated only after a look at the component:
    already at its target, it counts as done (verification still follows).
    """
    key = step.component.lower()

    def settled():
        now = _reread(settings, client, found).fw.lookup.get(step.component.lower())
        return Answer(204, {}, {}) if now == step.target else None

    return update(client, offer, images[step.firmware], found.fw.targets.get(key),
                  found.fw.owners.get(key) or found.system.path, settled)


def _finish(settings, client, found: Discovery, step, ref, recorder) -> None:
    """Follow the task to its end and apply it with the reset it asks for."""
    recorder.task(client.name, step, "submitted", ref=ref.monitor or ref.task)
    outcome = follow(client, ref, settings.task_timeout, settings.poll)
    recorder.task(client.name, step, outcome.state, message=outcome.text())
    wanted = outcome.reset_request()
    if wanted is not None:
        kind = reset(client, found.system, wanted[1], wanted[0])
        recorder.task(client.name, step, "reset", reset=kind)


def _reread(settings, client, found: Discovery) -> Discovery:
    """The firmware read again (FirmwareInventory items carry the versions; only
    the fallback needs the system again)."""
    system = found.system
    if found.fw.source != INVENTORY:
        system = read_system(client, system.path)
    return replace(found, system=system, fw=read_firmware(client, system, settings.index))


def _verify(settings, client, bmc, found: Discovery, entries) -> Discovery:
    """Re-read the firmware until every component is at its baseline. BMCs lag a
    reset, and answer 5xx or nothing while they come back: such a read only saw nothing."""
    deadline, last = time.monotonic() + settings.verify_timeout, None
    for delay in settings.poll.delays():
        try:
            found = _reread(settings, client, found)
        except RedfishError as exc:
            if not passing(exc):
                raise
            last = exc
        else:
            wrong = catalog.drift(catalog.compare(bmc, entries, found.fw.lookup))
            if not wrong:
                return found
            last = VerifyFailed("after update: " + ", ".join(
                f"{s.component} is {s.current or 'unknown'}, expected {s.target}" for s in wrong),
                client.name)
        if time.monotonic() + delay > deadline:
            raise last
        time.sleep(delay)
    raise AssertionError("unreachable")


def bmcs(plan, pod: str | None = None, with_baseline: bool = False) -> list:
    nodes = [n for n in plan.select(pod, "bmc")]
    return [n for n in nodes if n.firmware] if with_baseline else nodes


def jobs_for(nodes) -> list:
    return [(n.name, n.pod) for n in nodes]


def discover_all(settings: Settings, nodes, recorder, on_done=None) -> dict:
    by_name = {n.name: n for n in nodes}

    def work(name):
        found = discover_node(settings, by_name[name])
        recorder.discovered(by_name[name], found)
        return found

    return run_bounded(jobs_for(nodes), work, settings.limits, _failing(by_name, recorder, on_done))


def apply_all(settings: Settings, nodes, images: dict, base_url: str, recorder,
              on_done=None) -> dict:
    """Rolling update of every node; returns name → ("ok", NodeResult) | ("error", exc)."""
    by_name = {n.name: n for n in nodes}
    urls = {name: Image(image_url(base_url, image), image.path) for name, image in images.items()}
    return run_bounded(jobs_for(nodes),
                       lambda name: update_node(settings, by_name[name], urls, recorder),
                       settings.limits, _failing(by_name, recorder, on_done))


def _failing(by_name, recorder, on_done):
    def done(name, outcome):
        if outcome[0] == "error":
            recorder.failed(by_name[name], outcome[1])
        if on_done:
            on_done(name, outcome)
    return done


# --- power and boot -------------------------------------------------------------

def stagger(nodes, per_second: float) -> dict:
    """Start offsets in seconds: within each pod, node i starts at i / per_second."""
    if per_second <= 0:
        raise ValueError("power_on_per_second must be positive")
    seen: dict = {}
    out = {}
    for node in nodes:
        i = seen.get(node.pod, 0)
        seen[node.pod] = i + 1
        out[node.name] = i / per_second
    return out


def pxe_boot_node(settings: Settings, bmc, uri: str | None = None) -> dict:
    """One-time boot override to PXE (UefiHttp with ``uri`` where offered), then reset or power on."""
    with settings.client(bmc) as client:
        system = find_system(client, client.endpoint.system)
        target = set_boot_once(client, system, uri)
        kind = reset(client, system)
        return {"boot": target, "reset": kind, "power_before": system.power}


def pxe_boot_all(settings: Settings, nodes, per_second: float, recorder, uri: str | None = None,
                 on_done=None, clock=time.monotonic, sleep=time.sleep) -> dict:
    """PXE-boot every node, staggered per pod so no pod boot-storms its ToR."""
    by_name = {n.name: n for n in nodes}
    offsets, start = stagger(nodes, per_second), clock()

    def work(name):
        wait = start + offsets[name] - clock()
        if wait > 0:
            sleep(wait)
        done = pxe_boot_node(settings, by_name[name], uri)
        recorder.booted(by_name[name], done)
        return done

    return run_bounded(jobs_for(nodes), work, settings.limits, _failing(by_name, recorder, on_done))
