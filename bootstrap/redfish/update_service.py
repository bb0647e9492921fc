"""``/redfish/v1/UpdateService``: FirmwareInventory, what the service offers, and the update.

A BMC says how it wants to be updated: the SimpleUpdate target (as advertised,
trailing slash and all), its ``@Redfish.ActionInfo`` (allowable ``Targets`` and
``TransferProtocol``), ``MultipartHttpPushUri`` and ``HttpPushUri``. The update
goes the first way offered, and ``Targets`` is negotiated: the BMC's allowable
values, else the inventory item, else the system or manager it relates to, else
none, moving on when the BMC answers that a parameter or value is not supported.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import BmcRefused, ResourceMissing
from .systems import members, optional

log = logging.getLogger(__name__)

SERVICE = "/redfish/v1/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
SIMPLE_UPDATE = f"{SERVICE}/Actions/UpdateService.SimpleUpdate"

# What vendors call the image kept for rollback, beside the running one.
_STANDBY_ID = re.compile(r"(previous|backup|rollback|standby|secondary|available)", re.I)
_STANDBY_STATE = frozenset({"StandbyOffline", "StandbySpare", "Disabled", "Absent"})


@dataclass(frozen=True)
class Item:
    """One FirmwareInventory member."""

    path: str
    id: str
    name: str
    version: str | None
    related: tuple   # @odata.id of the systems/managers it belongs to; () = the whole BMC
    state: str | None = None
    updateable: bool | None = None

    @classmethod
    def from_json(cls, body: dict) -> "Item":
        related = tuple(r.get("@odata.id").rstrip("/") for r in body.get("RelatedItem") or ()
                        if isinstance(r, dict) and isinstance(r.get("@odata.id"), str))
        status = body.get("Status") if isinstance(body.get("Status"), dict) else {}
        updateable = body.get("Updateable")
        return cls(body.get("@odata.id", ""), str(body.get("Id", "")), str(body.get("Name", "")),
                   body.get("Version"), related, status.get("State"),
                   updateable if isinstance(updateable, bool) else None)

    def is_component(self, component: str) -> bool:
        wanted = component.lower()
        return wanted in (self.id.lower(), self.name.lower())

    def belongs_to(self, owners) -> bool:
        return not self.related or any(under(r, owners) for r in self.related)

    @property
    def standby(self) -> bool:
        """A previous/backup image, not the one that runs (Dell ``Previous-…``,
        Lenovo ``…-Backup``, an inactive bmcweb image)."""
        return bool(_STANDBY_ID.search(self.id)) or self.state in _STANDBY_STATE

    def rank(self) -> tuple:
        """Sort key, best first: running before standby, then Enabled, then Updateable."""
        return (self.standby, self.state not in (None, "Enabled"), self.updateable is False)


def under(path: str, owners) -> bool:
    """``path`` is one of ``owners`` or inside one (bmcweb relates the host image
    to ``Systems/system/Bios``)."""
    return any(path == o or path.startswith(o + "/") for o in owners)


def choose(items) -> dict:
    """Lower-case Name and Id → the item that stands for it: where several share a
    Name (installed and previous images), the running one."""
    chosen: dict = {}
    for item in sorted(items, key=Item.rank, reverse=True):   # the best is written last
        for key in {item.name.lower(), item.id.lower()} - {""}:
            chosen[key] = item
    return chosen


def shown(items) -> dict:
    """Component → version as recorded: the running items by Name, by Id where
    running items share a Name (bmcweb names every item "Software Inventory")."""
    running = [i for i in items if not i.standby] or list(items)
    names = [i.name for i in running]
    return {(i.name if i.name and names.count(i.name) == 1 else i.id or i.name): i.version
            for i in running}


class InventoryIndex:
    """Which FirmwareInventory members belong to which system, per Redfish service.

    A BMC lists its own few components. An emulator (or a chassis manager)
    that serves many systems lists every system's, each with ``RelatedItem``;
    reading that list once per service, not once per node, keeps a fleet run
    linear instead of quadratic. Members are re-read fresh for each node.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._by_service: dict = {}   # url → {member path: related tuple} | None (no inventory)

    def items(self, client, owners) -> list | None:
        """Fresh members for a system (``owners``: see :attr:`System.owners`), or None
        when the BMC has no FirmwareInventory. Members that vanished are skipped."""
        index = self._index(client)
        if index is None:
            return None
        paths = [p for p, related in index.items()
                 if not related or any(under(r, owners) for r in related)]
        found = (optional(client, p, "firmware inventory item") for p in paths)
        return [Item.from_json(body) for body in found if body is not None]

    def _index(self, client):
        url = client.endpoint.url
        with self._lock:
            if url not in self._by_service:
                self._by_service[url] = _read_index(client)
            return self._by_service[url]


def _read_index(client, workers: int = 8) -> dict | None:
    service = optional(client, SERVICE, "update service") or {}
    listing = optional(client, _link(service, "FirmwareInventory") or INVENTORY, "firmware inventory")
    if listing is None:
        return None
    paths = members(listing)
    # Read once per service, but a big one (hundreds of members) in parallel: the
    # whole fleet waits on this. GETs may share the client's connection pool.
    with ThreadPoolExecutor(min(workers, max(1, len(paths)))) as pool:
        bodies = pool.map(lambda p: optional(client, p, "firmware inventory item"), paths)
        return {p: Item.from_json(b).related for p, b in zip(paths, bodies) if b is not None}


def _link(body: dict, name: str) -> str | None:
    link = body.get(name)
    return link.get("@odata.id") if isinstance(link, dict) else None


# --- what the service offers -----------------------------------------------------

@dataclass(frozen=True)
class Offer:
    """How one BMC takes an update, as its UpdateService says."""

    simple_update: str | None = None   # the SimpleUpdate target, exactly as advertised
    targets: tuple | None = None       # allowable Targets; None: the BMC does not say
    protocols: tuple | None = None     # allowable TransferProtocol; None: not said
    multipart: str | None = None       # MultipartHttpPushUri
    push: str | None = None            # HttpPushUri
    schemeless: bool = False           # ImageURI without its scheme (Cisco CIMC)

    @property
    def method(self) -> str | None:
        if self.simple_update:
            return "SimpleUpdate"
        return "multipart" if self.multipart else ("push" if self.push else None)


def read_offer(client) -> Offer:
    """The UpdateService's capabilities; no UpdateService offers nothing."""
    service = optional(client, SERVICE, "update service") or {}
    action = (service.get("Actions") or {}).get("#UpdateService.SimpleUpdate") or {}
    info = _action_info(client, action.get("@Redfish.ActionInfo"))
    return Offer(
        simple_update=action.get("target") if isinstance(action.get("target"), str) else None,
        targets=_allowed(action, info, "Targets"),
        protocols=_allowed(action, info, "TransferProtocol"),
        multipart=_str(service.get("MultipartHttpPushUri")),
        push=_str(service.get("HttpPushUri")),
        schemeless=_wants_no_scheme(client))


def _str(value) -> str | None:
    return value if isinstance(value, str) and value.startswith("/") else None


def _action_info(client, path) -> dict:
    """ActionInfo ``Parameters`` by name; a missing ActionInfo says nothing."""
    body = optional(client, path if isinstance(path, str) else None, "action info") or {}
    return {p.get("Name"): p for p in body.get("Parameters") or () if isinstance(p, dict)}


def _allowed(action: dict, info: dict, name: str) -> tuple | None:
    values = action.get(f"{name}@Redfish.AllowableValues")
    if values is None:
        values = (info.get(name) or {}).get("AllowableValues")
    return tuple(str(v) for v in values) if isinstance(values, list) else None


def _wants_no_scheme(client) -> bool:
    """Cisco CIMC documents ImageURI as host/path with the scheme in TransferProtocol."""
    root = optional(client, "/redfish/v1", "service root") or {}
    oem = root.get("Oem") if isinstance(root.get("Oem"), dict) else {}
    return str(root.get("Vendor", "")).lower() == "cisco" or "Cisco" in oem


# --- the update -----------------------------------------------------------------

@dataclass(frozen=True)
class TaskRef:
    """How to follow an update: a TaskMonitor URI, a Task URI, or both."""

    monitor: str | None = None
    task: str | None = None
    done: bool = False  # the BMC finished synchronously and named nothing to follow


def task_ref(status: int, headers: dict, body: dict) -> TaskRef:
    """Read an update's answer: 202 + TaskMonitor, or 200/201/204 + Location to a Task."""
    location = headers.get("location")
    task = body.get("@odata.id") if body.get("@odata.type", "").startswith("#Task.") else None
    if status == 202:
        monitor = location or body.get("TaskMonitor")
        return TaskRef(monitor, task or (location if location and "/Tasks/" in location else None))
    if location:
        return TaskRef(None, location)
    if task:
        return TaskRef(None, task)
    return TaskRef(done=True)


@dataclass(frozen=True)
class Image:
    """What one update sends: the URL the BMC fetches, and the checked file for a push."""

    url: str
    path: str | None = None


# The BMC's words for "that parameter or value is not one I take" (Base registry).
REFUSALS = frozenset({"ActionParameterNotSupported", "ActionParameterUnknown",
                      "ActionParameterValueNotInList", "ActionParameterValueError",
                      "ActionParameterValueFormatError", "ActionParameterValueTypeError",
                      "PropertyValueNotInList", "PropertyUnknown", "PropertyNotWritable",
                      "PropertyValueFormatError", "PropertyValueTypeError",
                      "PropertyValueIncorrect", "PropertyValueError"})


def target_choices(offer: Offer, item: str | None, owner: str | None) -> list:
    """Targets to try, in order: what the ActionInfo allows (the item or owner
    when listed), else the item, the related system or manager, none."""
    if offer.targets:
        listed = [t for t in (item, owner) if t and t.rstrip("/") in
                  {a.rstrip("/") for a in offer.targets}]
        return [[t] for t in listed] or [[]]   # never a target the flow did not name
    choices = [[t] for t in dict.fromkeys(t for t in (item, owner) if t)]
    return choices + [[]]


def update(client, offer: Offer, image: Image, item: str | None, owner: str | None,
           settled=None) -> TaskRef:
    """Send one update the way the BMC offers, negotiating Targets (see module doc)."""
    method = offer.method
    if method is None:
        raise BmcRefused("the UpdateService offers no update method (no SimpleUpdate, "
                         "MultipartHttpPushUri or HttpPushUri)", client.name)
    protocol = image.url.split(":", 1)[0].upper()
    if method == "SimpleUpdate" and offer.protocols is not None and protocol not in offer.protocols:
        raise BmcRefused(f"SimpleUpdate takes TransferProtocol {', '.join(offer.protocols)}; "
                         f"the image is served over {protocol}", client.name)
    if method == "push":
        return _answered(client, "HttpPushUri", client.post(
            offer.push, _read(image), "HttpPushUri", settled))
    form = {"schemeless": offer.schemeless, "protocol": True}
    choices = target_choices(offer, item, owner)
    while True:
        try:
            return _send(client, offer, image, choices[0], form, settled)
        except BmcRefused as exc:
            if not _negotiate(exc, choices, form):
                raise
            log.debug("%s: %s; trying %s", client.name, exc.message, choices[0])


def _negotiate(exc, choices: list, form: dict) -> bool:
    """Change what the refusal names; False when nothing is left to change."""
    if exc.status != 400 or (exc.messages and not exc.says(REFUSALS)):
        return False
    if exc.names("TransferProtocol") and form["protocol"] and not form["schemeless"]:
        form["protocol"] = False
        return True
    if exc.names("ImageURI") and not form["schemeless"]:
        form["schemeless"] = form["protocol"] = True
        return True
    if len(choices) > 1:
        choices.pop(0)
        return True
    return False


def _send(client, offer: Offer, image: Image, targets: list, form: dict, settled):
    if offer.method == "multipart":
        params = {"Targets": targets} if targets else {}
        parts = {"UpdateParameters": (None, json.dumps(params), "application/json"),
                 "UpdateFile": (os.path.basename(image.path or "image"), _read(image),
                                "application/octet-stream")}
        answer = client.post(offer.multipart, parts, "multipart update", settled,
                             headers={"Content-Type": "multipart/form-data"})
        return _answered(client, "multipart update", answer)
    body = simple_update_body(image.url, targets, form)
    return _answered(client, "SimpleUpdate", client.post(offer.simple_update, body,
                                                          "SimpleUpdate", settled))


def simple_update_body(url: str, targets: list, form: dict) -> dict:
    """``ImageURI`` in the BMC's form, ``TransferProtocol`` where it is taken."""
    body = {"ImageURI": url.split("://", 1)[1] if form["schemeless"] else url}
    if targets:
        body["Targets"] = list(targets)
    if form["protocol"] or form["schemeless"]:
        body["TransferProtocol"] = url.split(":", 1)[0].upper()
    return body


def _answered(client, what: str, answer) -> TaskRef:
    if answer.status not in (200, 201, 202, 204):
        raise BmcRefused(f"{what}: unexpected HTTP {answer.status}", client.name)
    return task_ref(answer.status, answer.headers, answer.body)


def _read(image: Image) -> bytes:
    if not image.path:
        raise BmcRefused("a push update needs the image file, and none was given")
    with open(image.path, "rb") as fh:
        return fh.read()


