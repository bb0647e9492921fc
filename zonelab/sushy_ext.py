"""TEST AND LAB EXTENSION of the real sushy-tools emulator — not product code, not a mock.

It lives in the package because the built-in lab (``zone up --lab``) runs the same
emulator as the tests; no appliance code path imports it.

sushy-emulator's own SimpleUpdate (libvirt driver) is a stub: it never fetches
the image, answers 204 + a fixed Task, and only bumps the BIOS minor version;
it has no FirmwareInventory and no TaskMonitor. Real BMCs do all of that, so
this module starts sushy-tools' own Flask app unchanged and only:

* replaces the SimpleUpdate handler: download ``ImageURI``, answer 202 with a
  TaskMonitor, run the task New → Running → Completed over
  ``SUSHY_EXT_TASK_SECONDS``, take the new version from the image
  (``LAB-FIRMWARE <COMPONENT> <VERSION>``), fail the task with ``Exception``
  when the download fails; with ``SUSHY_EXT_RESET_REQUIRED`` the version only
  shows after a ComputerSystem.Reset, and the task says so (Base ResetRequired);
* adds FirmwareInventory (one BIOS member per system, ``RelatedItem`` → system),
  TaskMonitor and TaskService/Tasks/<id> routes;
* adds ``/_ext/stats``: what the emulator saw (tasks in flight, their times),
  so tests can assert bounded parallelism from the BMC's side, and ``/_ext/busy``:
  answer the next N system requests with 503 + Retry-After (or another status,
  such as 500 "database is locked"), as a busy BMC does.

Run it like sushy-emulator: ``python3 sushy_ext.py --config FILE -i 127.0.0.1 -p PORT``.
"""

from __future__ import annotations

import itertools
import threading
import time
import urllib.request

import flask
from sushy_tools import error
from sushy_tools.emulator import main as emulator

app = emulator.app
SYSTEMS = "/redfish/v1/Systems/"
INVENTORY = "/redfish/v1/UpdateService/FirmwareInventory"
TERMINAL = ("Completed", "Exception")


class Tasks:
    """Every update task the emulator ran, and the most that ran at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ids = itertools.count(1000)
        self.tasks: dict = {}
        self.pending: dict = {}     # system uuid → version applied by the next reset
        self.in_flight = 0
        self.max_in_flight = 0
        self.posts = 0

    def new(self, uuid: str, name: str, uri: str) -> dict:
        with self.lock:
            task_id = str(next(self.ids))
            task = {"id": task_id, "system": uuid, "name": name, "uri": uri, "state": "New",
                    "status": "OK", "messages": [], "started": time.time(), "ended": None}
            self.tasks[task_id] = task
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return task

    def finish(self, task: dict, state: str, status: str, messages: list) -> None:
        with self.lock:
            task.update(state=state, status=status, messages=messages, ended=time.time())
            self.in_flight -= 1


TASKS = Tasks()


def task_json(task: dict) -> dict:
    return {
        "@odata.type": "#Task.v1_4_3.Task", "@odata.id": f"/redfish/v1/TaskService/Tasks/{task['id']}",
        "Id": task["id"], "Name": f"Update {task['name']}",
        "TaskMonitor": f"/redfish/v1/TaskMonitor/{task['id']}",
        "TaskState": task["state"], "TaskStatus": task["status"],
        "PercentComplete": 100 if task["state"] in TERMINAL else 0, "Messages": task["messages"]}


def _message(message_id: str, text: str, args=()) -> dict:
    return {"MessageId": message_id, "Message": text, "MessageArgs": list(args)}


def parse_image(blob: bytes) -> tuple:
    """``LAB-FIRMWARE <COMPONENT> <VERSION>`` → (component, version)."""
    words = blob.decode("ascii", "replace").split()
    if len(words) < 3 or words[0] != "LAB-FIRMWARE":
        raise ValueError("not a LAB-FIRMWARE image")
    return words[1], words[2]


def run_task(task: dict, seconds: float, reset_required: bool) -> None:
    began = time.monotonic()
    with TASKS.lock:
        task["state"] = "Running"
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(task["uri"], timeout=10) as resp:
            component, version = parse_image(resp.read())
    except Exception as exc:  # the BMC reports any download/parse failure in the task
        TASKS.finish(task, "Exception", "Critical",
                     [_message("Update.1.0.TransferFailed", f"Download of {task['uri']} failed: {exc}")])
        return
    time.sleep(max(0.0, seconds - (time.monotonic() - began)))
    messages = [_message("Update.1.0.UpdateSuccessful", f"{component} updated to {version}")]
    if reset_required:
        with TASKS.lock:
            TASKS.pending[task["system"]] = version
        target = f"{SYSTEMS}{task['system']}/Actions/ComputerSystem.Reset"
        messages.append(_message("Base.1.8.ResetRequired", "A reset applies the update",
                                 (target, "ForceRestart")))
    else:
        app.systems.set_versions(task["system"], {"BiosVersion": version})
    TASKS.finish(task, "Completed", "OK", messages)


def _system_uuid(target: str) -> str:
    """A Targets entry: a system path, or a FirmwareInventory member ``BIOS-<uuid>``."""
    name = target.rstrip("/").rsplit("/", 1)[-1]
    if target.startswith(INVENTORY):
        name = name.split("-", 1)[1]
    try:
        return app.systems.uuid(name)
    except error.AliasAccessError as exc:
        return str(exc)


def simple_update():
    body = flask.request.get_json(silent=True) or {}
    uri, targets = body.get("ImageURI"), body.get("Targets")
    if not uri or not targets:
        return flask.jsonify(emulator._render_error("Missing ImageURI and/or Targets.")), 400
    with TASKS.lock:
        TASKS.posts += 1
    try:
        uuid = _system_uuid(targets[0])
    except error.FishyError as exc:
        return flask.jsonify(emulator._render_error(f"Unknown target: {exc}")), 400
    task = TASKS.new(uuid, app.systems.name(uuid), uri)
    threading.Thread(target=run_task, daemon=True, args=(
        task, float(app.config.get("SUSHY_EXT_TASK_SECONDS", 1.0)),
        bool(app.config.get("SUSHY_EXT_RESET_REQUIRED", True)))).start()
    monitor = f"/redfish/v1/TaskMonitor/{task['id']}"
    return flask.jsonify(task_json(task)), 202, {"Location": monitor}


def task_monitor(task_id):
    task = TASKS.tasks.get(task_id)
    if task is None:
        return flask.jsonify(emulator._render_error("No such task")), 404
    if task["state"] not in TERMINAL:
        return flask.jsonify(task_json(task)), 202, {"Retry-After": "1"}
    return "", 204


def task_resource(task_id):
    task = TASKS.tasks.get(task_id)
    if task is None:
        return flask.jsonify(emulator._render_error("No such task")), 404
    return flask.jsonify(task_json(task))


def inventory():
    members = [{"@odata.id": f"{INVENTORY}/BIOS-{uuid}"} for uuid in app.systems.systems]
    return flask.jsonify({"@odata.id": INVENTORY, "@odata.type":
                          "#SoftwareInventoryCollection.SoftwareInventoryCollection",
                          "Name": "Firmware Inventory", "Members": members,
                          "Members@odata.count": len(members)})


def inventory_item(item):
    if not item.startswith("BIOS-"):
        return flask.jsonify(emulator._render_error("No such item")), 404
    uuid = app.systems.uuid(item[5:])
    version = app.systems.get_versions(uuid).get("BiosVersion")
    return flask.jsonify({"@odata.id": f"{INVENTORY}/{item}", "@odata.type":
                          "#SoftwareInventory.v1_2_0.SoftwareInventory", "Id": item,
                          "Name": "BIOS", "SoftwareId": "BIOS", "Version": version,
                          "Updateable": True, "RelatedItem": [{"@odata.id": f"{SYSTEMS}{uuid}"}]})


def stats():
    with TASKS.lock:
        tasks = [dict(t, messages=None) for t in TASKS.tasks.values()]
        return flask.jsonify({"max_in_flight": TASKS.max_in_flight, "in_flight": TASKS.in_flight,
                              "posts": TASKS.posts, "tasks": tasks})


BUSY = {"left": 0, "status": 503, "message": "Service temporarily busy"}


def set_busy():
    """Make the next ``count`` system requests fail as a busy BMC's do: ``status``
    503 (with Retry-After) by default, or e.g. 500 with ``message`` "database is
    locked", as sushy-tools' own state store answers under load. The client must
    back off and retry, not fail."""
    body = flask.request.get_json(silent=True) or {}
    BUSY.update(left=int(body.get("count", 0)), status=int(body.get("status", 503)),
                message=str(body.get("message", "Service temporarily busy")))
    return "", 204


def busy_gate():
    if BUSY["left"] > 0 and flask.request.path.startswith("/redfish/v1/Systems"):
        BUSY["left"] -= 1
        headers = {"Retry-After": "0"} if BUSY["status"] == 503 else {}
        return flask.jsonify(emulator._render_error(BUSY["message"])), BUSY["status"], headers
    return None


def _apply_pending_on_reset(original):
    def reset(identity):
        answer = original(identity)
        uuid = app.systems.uuid(identity)
        with TASKS.lock:
            version = TASKS.pending.pop(uuid, None)
        if version is not None:
            app.systems.set_versions(uuid, {"BiosVersion": version})
        return answer
    return reset


def extend(flask_app) -> None:
    """Swap SimpleUpdate and add the routes; everything else stays sushy-tools' own."""
    flask_app.view_functions["UpdateService.update_service_simple_update"] = simple_update
    flask_app.view_functions["system_reset_action"] = _apply_pending_on_reset(
        flask_app.view_functions["system_reset_action"])
    flask_app.add_url_rule("/redfish/v1/TaskMonitor/<task_id>", "ext_monitor", task_monitor)
    flask_app.add_url_rule("/redfish/v1/TaskService/Tasks/<task_id>", "ext_task", task_resource)
    flask_app.add_url_rule(INVENTORY, "ext_inventory", inventory)
    flask_app.add_url_rule(f"{INVENTORY}/<item>", "ext_inventory_item", inventory_item)
    flask_app.add_url_rule("/_ext/stats", "ext_stats", stats)
    flask_app.add_url_rule("/_ext/busy", "ext_busy", set_busy, methods=["POST"])
    flask_app.before_request(busy_gate)


if __name__ == "__main__":
    extend(app)
    raise SystemExit(emulator.main())
