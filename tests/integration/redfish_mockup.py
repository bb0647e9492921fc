"""A small Redfish mockup server of ours: serves a recorded tree, acts like its BMC.

A tree is a directory in the DMTF mockup layout (``redfish/v1/Systems/1/index.json``
for ``/redfish/v1/Systems/1``) plus ``behaviour.json``, the quirks of the BMC it
stands for (not a URI: never served):

* ``targets``: the kinds of SimpleUpdate/multipart ``Targets`` the BMC takes, of
  ``item`` (a FirmwareInventory member), ``system``, ``manager``, ``none``; any
  other is a 400 with a Base registry message naming the value;
* ``image_uri``: ``scheme`` (``http://host/path``) or ``schemeless`` (``host/path``
  with ``TransferProtocol``); ``transfer_protocol``: false when it refuses that parameter;
* ``reset_required``: the task ends asking for a reset, the new version shows after it.

Actions are served only at the paths the tree advertises, exactly (a trailing slash
is part of it): the SimpleUpdate target, ``MultipartHttpPushUri``, ``HttpPushUri``,
each system's Reset target. PATCH on a system takes only the Boot properties its
Boot object lists. An unknown path is a 404 with an HTML page, as web servers in
front of BMCs answer. Every request lands in :attr:`Mockup.log`. 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import copy
import email.parser
import hashlib
import json
import os
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bootstrap.redfish.images import Background

NOT_FOUND = b"<html><head><title>404 Not Found</title></head>\n<body><h1>Not Found</h1>\n" \
            b"<p>The requested URL was not found on this server.</p>\n</body></html>\n"


def load_tree(root: str) -> dict:
    """URI path (no trailing slash) → JSON body, from a mockup directory."""
    tree = {}
    for folder, _dirs, files in os.walk(root):
        if "index.json" in files:
            uri = "/" + os.path.relpath(folder, root).replace(os.sep, "/")
            with open(os.path.join(folder, "index.json"), encoding="utf-8") as fh:
                tree[uri.rstrip("/")] = json.load(fh)
    return tree


def message(message_id: str, *args) -> dict:
    return {"error": {"code": f"Base.1.8.{message_id}", "message": f"{message_id}: {args}",
                      "@Message.ExtendedInfo": [{"MessageId": f"Base.1.8.{message_id}",
                                                 "MessageArgs": [str(a) for a in args],
                                                 "Message": f"{message_id} {list(args)}"}]}}


def write_image(path: str, component: str, version: str) -> str:
    """A test image naming its component and version (both may hold spaces); its sha256."""
    blob = f"LAB-FIRMWARE\n{component}\n{version}\n".encode()
    with open(path, "wb") as fh:
        fh.write(blob)
    return hashlib.sha256(blob).hexdigest()


def parse_image(blob: bytes) -> tuple:
    """(component, version) from a test image of :func:`write_image`."""
    lines = blob.decode("utf-8", "replace").splitlines()
    if len(lines) != 3 or lines[0] != "LAB-FIRMWARE":
        raise ValueError("not a LAB-FIRMWARE image")
    return lines[1], lines[2]


class Bmc:
    """The state of one tree and what its actions do to it; thread-safe."""

    def __init__(self, root: str, user: str, password: str):
        self.tree = load_tree(root)
        with open(os.path.join(root, "behaviour.json"), encoding="utf-8") as fh:
            self.behaviour = json.load(fh)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.lock = threading.Lock()
        self.log: list = []          # {method, path, status, body}
        self.pending: dict = {}      # system path → [(item path, version)] applied on reset
        service = self.tree.get("/redfish/v1/UpdateService", {})
        action = service.get("Actions", {}).get("#UpdateService.SimpleUpdate", {})
        self.actions = {action.get("target"): self.simple_update,
                        service.get("MultipartHttpPushUri"): self.multipart,
                        service.get("HttpPushUri"): self.push}
        for path, body in self.tree.items():
            reset = body.get("Actions", {}).get("#ComputerSystem.Reset", {}).get("target")
            if reset:
                self.actions[reset] = lambda b, h, p=path: self.reset(p, b)
        self.actions.pop(None, None)

    def get(self, path: str):
        with self.lock:
            body = self.tree.get(path.split("?")[0].rstrip("/") or "/")
            return (200, copy.deepcopy(body)) if body is not None else (404, None)

    # --- updates ----------------------------------------------------------------

    def simple_update(self, raw: bytes, headers) -> tuple:
        body = json.loads(raw or b"{}")
        uri, protocol = body.get("ImageURI"), body.get("TransferProtocol")
        if "TransferProtocol" in body and self.behaviour.get("transfer_protocol") is False:
            return 400, message("ActionParameterNotSupported", "TransferProtocol", "SimpleUpdate")
        has_scheme = isinstance(uri, str) and "://" in uri
        if self.behaviour.get("image_uri") == "schemeless" and (has_scheme or not protocol):
            return 400, message("ActionParameterValueFormatError", uri, "ImageURI", "SimpleUpdate")
        url = uri if has_scheme else f"{str(protocol).lower()}://{uri}"
        with urllib.request.urlopen(url, timeout=10) as resp:   # our own image server, loopback
            blob = resp.read()
        return self.start(blob, body.get("Targets"), "Targets" in body)

    def multipart(self, raw: bytes, headers) -> tuple:
        head = f"Content-Type: {headers.get('Content-Type')}\r\n\r\n".encode()
        parts = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                 for p in email.parser.BytesParser().parsebytes(head + raw).get_payload()}
        params = json.loads(parts.get("UpdateParameters") or b"{}")
        return self.start(parts.get("UpdateFile", b""), params.get("Targets"), "Targets" in params)

    def push(self, raw: bytes, headers) -> tuple:
        return self.start(raw, None, False)

    def start(self, blob: bytes, targets, given: bool) -> tuple:
        refusal = self.refuse_targets(targets if given else None)
        if refusal:
            return 400, refusal
        try:
            component, version = parse_image(blob)
        except ValueError as exc:
            return 400, message("ActionParameterValueError", str(exc), "ImageURI")
        item = self.item_for(component, targets or [])
        if item is None:
            return 400, message("ActionParameterValueNotInList", component, "Targets")
        return 202, self.task(item, version)

    def refuse_targets(self, targets) -> dict | None:
        accepted = self.behaviour.get("targets", ["item", "system", "manager", "none"])
        if not targets:
            return None if "none" in accepted else message("ActionParameterMissing",
                                                           "SimpleUpdate", "Targets")
        for target in targets:
            kind = ("item" if "/FirmwareInventory/" in target else
                    "system" if "/Systems/" in target else
                    "manager" if "/Managers/" in target else "?")
            if kind not in accepted or self.get(target)[0] != 200:
                return message("ActionParameterValueNotInList", target, "Targets")
        return None

    def item_for(self, component: str, targets: list) -> str | None:
        """The running inventory item the image is for (a Previous-/backup one never)."""
        wanted = component.lower()
        named = [t.rstrip("/") for t in targets if "/FirmwareInventory/" in t]
        owners = {t.rstrip("/") for t in targets} - set(named)
        for path, body in self.tree.items():
            related = {r["@odata.id"].rstrip("/") for r in body.get("RelatedItem", ())}
            if owners and related and not owners & related:
                continue
            if "/FirmwareInventory/" not in path or body.get("Status", {}).get("State") not in (
                    None, "Enabled"):
                continue
            if named and path not in named:
                continue
            if any(word in str(body.get("Id", "")) for word in ("Previous", "Backup")):
                continue    # a rollback image is never what an update writes
            if wanted in (str(body.get("Id", "")).lower(), str(body.get("Name", "")).lower()):
                return path
        return None

    def task(self, item: str, version: str) -> dict:
        with self.lock:
            tasks = [p for p in self.tree if p.startswith("/redfish/v1/TaskService/Tasks/")]
            path = f"/redfish/v1/TaskService/Tasks/{len(tasks) + 1}"
            messages = [{"MessageId": "Update.1.0.UpdateSuccessful", "Message": "done"}]
            system = self.behaviour.get("system_path", "").rstrip("/")
            if self.behaviour.get("reset_required"):
                self.pending.setdefault(system, []).append((item, version))
                target = self.tree[system]["Actions"]["#ComputerSystem.Reset"]["target"]
                messages = [{"MessageId": "Base.1.8.ResetRequired", "Message": "reset to apply",
                             "MessageArgs": [target, "ForceRestart"]}]
            else:
                self.tree[item]["Version"] = version
            self.tree[path] = {"@odata.type": "#Task.v1_4_3.Task", "@odata.id": path,
                               "Id": str(len(tasks) + 1), "Name": "Update",
                               "TaskState": "Completed", "TaskStatus": "OK", "Messages": messages}
            return self.tree[path]

    # --- system -----------------------------------------------------------------

    def reset(self, system: str, raw: bytes) -> tuple:
        kind = json.loads(raw or b"{}").get("ResetType")
        allowed = self.tree[system]["Actions"]["#ComputerSystem.Reset"].get(
            "ResetType@Redfish.AllowableValues")
        if allowed and kind not in allowed:
            return 400, message("ActionParameterValueNotInList", kind, "ResetType")
        with self.lock:
            self.tree[system]["PowerState"] = "On"
            for item, version in self.pending.pop(system, []):
                self.tree[item]["Version"] = version
        return 204, None

    def patch(self, path: str, raw: bytes) -> tuple:
        with self.lock:
            system = self.tree.get(path.rstrip("/"))
            if system is None or "/Systems/" not in path:
                return 405, message("ActionNotSupported", "PATCH")
            body = json.loads(raw or b"{}")
            boot = system.setdefault("Boot", {})
            listed = {k.split("@", 1)[0] for k in boot}
            for key, value in (body.get("Boot") or {}).items():
                if key not in listed:
                    return 400, message("PropertyUnknown", key)
                allowed = boot.get(f"{key}@Redfish.AllowableValues")
                if allowed and value not in allowed:
                    return 400, message("PropertyValueNotInList", value, key)
            boot.update(body.get("Boot") or {})
            return 204, None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self._answer(*self.server.bmc.get(self.path) if self._authorized() else (401, None))

    def do_POST(self):
        action = self.server.bmc.actions.get(self.path)
        raw = self._body()
        if not self._authorized():
            self._answer(401, None, raw)
        elif action is None:
            self._answer(404, None, raw)
        else:
            self._answer(*action(raw, self.headers), raw)

    def do_PATCH(self):
        raw = self._body()
        self._answer(*(self.server.bmc.patch(self.path, raw) if self._authorized()
                       else (401, None)), raw)

    def _authorized(self) -> bool:
        return self.headers.get("Authorization") == self.server.bmc.auth

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body, raw: bytes = b""):
        bmc = self.server.bmc
        with bmc.lock:
            bmc.log.append({"method": self.command, "path": self.path, "status": status,
                            "body": raw})
        if status == 404:
            data, kind = NOT_FOUND, "text/html"
        else:
            data, kind = (json.dumps(body).encode() if body is not None else b""), "application/json"
        self.send_response(status)
        if status == 202 and body and body.get("@odata.id"):
            self.send_header("Location", body["@odata.id"])
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        pass


class Mockup(Background):
    """``with Mockup(tree_dir) as m:`` serves the tree at ``m.url`` until the block ends."""

    def __init__(self, root: str, user: str = "admin", password: str = "mockup-secret"):
        self.user, self.password, self.tls = user, password, False
        self.bmc = Bmc(root, user, password)
        super().__init__(ThreadingHTTPServer(("127.0.0.1", 0), _Handler), "redfish-mockup")
        self.httpd.bmc = self.bmc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def log(self) -> list:
        with self.bmc.lock:
            return list(self.bmc.log)

    def resource(self, path: str) -> dict:
        return self.bmc.get(path)[1]
