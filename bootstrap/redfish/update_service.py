"""``/redfish/v1/UpdateService``: FirmwareInventory and the SimpleUpdate action."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .errors import BmcRefused, ResourceMissing
from .systems import members

SERVICE = "/redfish/v1/UpdateService"
INVENTORY = f"{SERVICE}/FirmwareInventory"
SIMPLE_UPDATE = f"{SERVICE}/Actions/UpdateService.SimpleUpdate"


@dataclass(frozen=True)
class Item:
    """One FirmwareInventory member."""

    path: str
    id: str
    name: str
    version: str | None
    related: tuple   # @odata.id of the systems/managers it belongs to; () = the whole BMC

    @classmethod
    def from_json(cls, body: dict) -> "Item":
        related = tuple(r.get("@odata.id") for r in body.get("RelatedItem") or ()
                        if isinstance(r, dict) and r.get("@odata.id"))
        return cls(body.get("@odata.id", ""), str(body.get("Id", "")), str(body.get("Name", "")),
                   body.get("Version"), related)

    def is_component(self, component: str) -> bool:
        wanted = component.lower()
        return wanted in (self.id.lower(), self.name.lower())

    def belongs_to(self, system_path: str) -> bool:
        return not self.related or system_path in self.related


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

    def items(self, client, system_path: str) -> list | None:
        """Fresh members for ``system_path``, or None when the BMC has no FirmwareInventory."""
        index = self._index(client)
        if index is None:
            return None
        paths = [p for p, related in index.items() if not related or system_path in related]
        return [Item.from_json(client.get(p, "firmware inventory item")) for p in paths]

    def _index(self, client):
        url = client.endpoint.url
        with self._lock:
            if url not in self._by_service:
                self._by_service[url] = _read_index(client)
            return self._by_service[url]


def _read_index(client, workers: int = 8) -> dict | None:
    try:
        paths = members(client.get(INVENTORY, "firmware inventory"))
    except ResourceMissing:
        return None
    # Read once per service, but a big one (hundreds of members) in parallel: the
    # whole fleet waits on this. GETs may share the client's connection pool.
    with ThreadPoolExecutor(min(workers, max(1, len(paths)))) as pool:
        items = pool.map(lambda p: Item.from_json(client.get(p, "firmware inventory item")), paths)
        return {p: item.related for p, item in zip(paths, items)}


@dataclass(frozen=True)
class TaskRef:
    """How to follow an update: a TaskMonitor URI, a Task URI, or both."""

    monitor: str | None = None
    task: str | None = None
    done: bool = False  # the BMC finished synchronously and named nothing to follow


def task_ref(status: int, headers: dict, body: dict) -> TaskRef:
    """Read a SimpleUpdate answer: 202 + TaskMonitor, or 200/204 + Location to a Task."""
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


def simple_update(client, image_uri: str, targets: list, settled=None) -> TaskRef:
    """POST SimpleUpdate with ``ImageURI`` and ``Targets``; how to follow the result.

    ``settled`` (see :meth:`BmcClient.request`) looks, before a repeat, whether
    the version already arrived; without it a 500 is not repeated.
    """
    body = {"ImageURI": image_uri, "Targets": list(targets), "TransferProtocol": _protocol(image_uri)}
    answer = client.post(SIMPLE_UPDATE, body, "SimpleUpdate", settled)
    ref = task_ref(answer.status, answer.headers, answer.body)
    if answer.status not in (200, 202, 204):
        raise BmcRefused(f"SimpleUpdate: unexpected HTTP {answer.status}", client.name)
    return ref


def _protocol(uri: str) -> str:
    return uri.split(":", 1)[0].upper()
