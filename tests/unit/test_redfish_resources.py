"""Modules that mirror the Redfish tree, read from JSON recorded off sushy-emulator."""

import json
import os

import pytest

from bootstrap.redfish import systems, tasks, update_service
from bootstrap.redfish.errors import BmcRefused, TaskFailed, TaskTimeout

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "redfish")


def recorded(name):
    with open(os.path.join(DATA, f"{name}.json")) as fh:
        return json.load(fh)


def test_system_from_recorded_json():
    body = recorded("system")
    s = systems.System.from_json(body)
    assert s.path == body["@odata.id"] and s.name == "p01-u03"
    assert s.power == "Off" and s.bios_version == "1.0.0" and s.serial is None
    assert s.managers == (body["Links"]["ManagedBy"][0]["@odata.id"],)
    assert s.reset_target.endswith("/Actions/ComputerSystem.Reset")
    assert "Pxe" in s.boot_targets and "On" in s.reset_types
    assert s.nics_path.endswith("/EthernetInterfaces")


def test_members_of_a_collection():
    assert len(systems.members(recorded("systems"))) == 2
    assert systems.members({}) == []


def test_boot_choice_and_body():
    s = systems.System.from_json(recorded("system"))
    assert systems.choose_boot(s, None) == ("Pxe", None)
    # The recorded system is legacy BIOS: no UefiHttp offered, so a URI falls back to PXE.
    assert systems.choose_boot(s, "http://x/boot.efi") == ("Pxe", None)
    uefi = systems.System(**{**s.__dict__, "boot_targets": ("Pxe", "UefiHttp")})
    # HttpBootUri goes only to a BMC whose Boot object lists it
    assert systems.choose_boot(uefi, "http://x/b.efi") == ("UefiHttp", None)
    uri = systems.System(**{**uefi.__dict__, "boot_props": frozenset({"HttpBootUri"})})
    assert systems.choose_boot(uri, "http://x/b.efi") == ("UefiHttp", "http://x/b.efi")
    assert systems.boot_once_body("Pxe") == {
        "Boot": {"BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe"}}
    no_pxe = systems.System(**{**s.__dict__, "boot_targets": ("Hdd",)})
    with pytest.raises(BmcRefused):
        systems.choose_boot(no_pxe, None)


def test_reset_choice_follows_power_state():
    s = systems.System.from_json(recorded("system"))
    assert systems.choose_reset(s) == "On"
    on = systems.System(**{**s.__dict__, "power": "On"})
    assert systems.choose_reset(on) == "ForceRestart"
    stuck = systems.System(**{**s.__dict__, "power": "On", "reset_types": ("Nmi",)})
    with pytest.raises(BmcRefused):
        systems.choose_reset(stuck)


def test_inventory_item_belongs_to_its_system_only():
    item = update_service.Item.from_json(recorded("ext_inventory_item"))
    system = item.related[0]
    assert item.is_component("bios") and item.version == "1.0.0"
    assert item.belongs_to({system}) and not item.belongs_to({"/redfish/v1/Systems/other"})
    alone = update_service.Item("/x", "BIOS", "BIOS", "1", ())
    assert alone.belongs_to("/anything")   # a one-system BMC names no RelatedItem


def test_task_ref_202_monitor_and_204_location():
    r = recorded("ext_simple_update_202")
    ref = update_service.task_ref(r["status"], r["headers"], r["body"])
    assert ref.monitor == r["headers"]["location"] and ref.task == r["body"]["@odata.id"]
    r = recorded("stub_simple_update_204")
    ref = update_service.task_ref(r["status"], r["headers"], r["body"])
    assert ref == update_service.TaskRef(None, "/redfish/v1/TaskService/Tasks/42")
    assert update_service.task_ref(204, {}, {}).done


def test_outcome_of_failed_download_task():
    out = tasks.Outcome.from_task(recorded("ext_task_exception")["body"])
    assert not out.ok and out.state == "Exception"
    assert "Download of http://127.0.0.1:9/missing.bin failed" in out.text()
    assert tasks.Outcome.from_task(recorded("stub_task")).ok


def test_reset_request_from_task_messages():
    msg = {"MessageId": "Base.1.8.ResetRequired", "MessageArgs": ["/redfish/v1/Systems/1/Actions/"
                                                                  "ComputerSystem.Reset", "ForceRestart"]}
    out = tasks.Outcome("Completed", "OK", [msg])
    assert out.reset_request() == ("/redfish/v1/Systems/1/Actions/ComputerSystem.Reset", "ForceRestart")
    assert tasks.Outcome("Completed").reset_request() is None


class ScriptedBmc:
    """Answers task polls from a list (a pure stand-in for the task-following logic)."""

    name = "b"

    def __init__(self, answers):
        self.answers, self.seen = list(answers), []

    def request(self, method, path, what=None, ok=()):
        self.seen.append(path)
        status, body = self.answers.pop(0)
        from bootstrap.redfish.client import Answer
        return Answer(status, body, {})

    def get(self, path, what=None):
        return self.request("GET", path).body


def run_follow(bmc, ref, timeout=100.0):
    now = [0.0]
    return tasks.follow(bmc, ref, timeout, tasks.Backoff(1, 4), clock=lambda: now[0],
                        sleep=lambda d: now.__setitem__(0, now[0] + d))


def test_follow_polls_monitor_then_reads_task():
    running = recorded("ext_monitor_running")
    bmc = ScriptedBmc([(202, running["body"]), (202, running["body"]), (204, {}),
                       (200, {"TaskState": "Completed", "TaskStatus": "OK"})])
    out = run_follow(bmc, update_service.TaskRef("/mon/1", "/tasks/1"))
    assert out.ok and bmc.seen == ["/mon/1", "/mon/1", "/mon/1", "/tasks/1"]


def test_follow_raises_with_the_bmcs_message():
    failed = recorded("ext_task_exception")["body"]
    bmc = ScriptedBmc([(200, failed)])
    with pytest.raises(TaskFailed, match="Download of"):
        run_follow(bmc, update_service.TaskRef(None, "/tasks/1"))


def test_follow_times_out():
    bmc = ScriptedBmc([(200, {"TaskState": "Running"})] * 50)
    with pytest.raises(TaskTimeout):
        run_follow(bmc, update_service.TaskRef(None, "/tasks/1"), timeout=10)


def test_backoff_grows_to_cap():
    d = tasks.Backoff(0.5, 3, 2.0).delays()
    assert [next(d) for _ in range(5)] == [0.5, 1.0, 2.0, 3, 3]


def test_monitor_answering_with_the_task_itself():
    """Some BMCs answer the monitor with 200 + the Task once it is done."""
    bmc = ScriptedBmc([(202, {}), (200, {"TaskState": "Completed", "TaskStatus": "OK"})])
    out = run_follow(bmc, update_service.TaskRef("/mon/7", None))
    assert out.ok and bmc.seen == ["/mon/7", "/mon/7"]
    bmc = ScriptedBmc([(204, {})])                 # or 204 and no task to read: done
    assert run_follow(bmc, update_service.TaskRef("/mon/7", None)).ok
    bmc = ScriptedBmc([(404, {})])
    with pytest.raises(BmcRefused, match="vanished"):
        run_follow(bmc, update_service.TaskRef("/mon/7", None))
