"""Redfish against the stock sushy-emulator (libvirt test driver): discovery, the stub
update path, one-time PXE + reset, wrong password, TLS with a private CA, a BMC that is down."""

import os
import socket

import pytest

from zonelab import bmc_emulator as rf
from conftest import LAB
from bootstrap.cli import main
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone

LAB_SYSTEMS = ["p01-u01", "p01-u02", "p01-u03", "p01-u04"]
SIMPLE_UPDATE = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"


def run(capsys, *argv):
    code = main(["firmware", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def emulator(tmp_path):
    with rf.Emulator(str(tmp_path / "emu"), LAB_SYSTEMS) as emu:
        yield emu


def answered(requests) -> int:
    """How many succeeded (204); the rest may only be 5xx a busy emulator answered,
    which the client repeated after checking it was safe to."""
    assert all(r[2] == 204 or r[2] >= 500 for r in requests), requests
    return sum(r[2] == 204 for r in requests)


def stub_zone(emu, tmp_path, **kw):
    """The stock stub bumps BIOS 1.0.0 to 1.1.0 without fetching anything: baseline 1.1.0."""
    path, sha = rf.write_image(str(tmp_path / "bios-1.1.0.bin"), "BIOS", "1.1.0")
    fw = {"bios-1.1.0": {"component": "BIOS", "version": "1.1.0", "image": path, "sha256": sha}}

    def edit(zone):
        zone["roles"]["hypervisor"]["firmware"] = ["bios-1.1.0"]

    return rf.zone_for(emu, str(tmp_path), LAB, firmware=fw, edit=edit, **kw)


def test_plan_discovers_and_records_what_the_bmc_reports(emulator, tmp_path, capsys):
    zone = stub_zone(emulator, tmp_path)
    state = str(tmp_path / "s.db")
    code, out, _ = run(capsys, zone, "plan", "--state", state)
    assert code == 3, out
    assert "p01-u03-bmc  BIOS       1.0.0    1.1.0     update" in out
    store = Store(state)
    bmc, server = store.node("p01-u03-bmc"), store.node("p01-u03")
    assert bmc["state"] == "discovered"
    assert bmc["data"]["firmware"] == {"BIOS": "1.0.0", "BMC": "1.00"}
    assert bmc["data"]["firmware_source"] == "system/manager"   # the stub has no FirmwareInventory
    assert server["data"]["macs"] == [rf.mac_for("p01-u03")] and server["data"]["power"] == "Off"
    seen = store.events(kind="bmc-discovered")
    assert {e["node"] for e in seen} == {f"{s}-bmc" for s in LAB_SYSTEMS}
    store.close()


def test_stub_update_verifies_and_rerun_sends_nothing(emulator, tmp_path, capsys):
    zone = stub_zone(emulator, tmp_path)
    state = str(tmp_path / "s.db")
    code, out, err = run(capsys, zone, "apply", "--state", state)
    assert code == 0, out + err
    assert "2 updated" in out and "p01-u03-bmc: updated BIOS 1.0.0 -> 1.1.0" in err
    posts = [r for r in emulator.requests() if r[:2] == ("POST", SIMPLE_UPDATE)]
    assert answered(posts) == 2, posts
    assert emulator.system("p01-u04")["BiosVersion"] == "1.1.0"
    store = Store(state)
    assert store.node("p01-u03-bmc")["state"] == "ready"
    assert store.node("p01-u01-bmc")["state"] == "planned"   # no baseline: not touched by apply
    store.close()
    code, out, _ = run(capsys, zone, "apply", "--state", state)
    assert code == 0 and "2 already compliant" in out
    assert [r for r in emulator.requests() if r[:2] == ("POST", SIMPLE_UPDATE)] == posts
    assert run(capsys, zone, "plan", "--state", state)[0] == 0


def test_one_time_pxe_and_reset(emulator, tmp_path, capsys):
    zone = stub_zone(emulator, tmp_path)
    state = str(tmp_path / "s.db")
    code, out, _ = run(capsys, zone, "boot", "--state", state, "--per-second", "50")
    assert code == 0, out
    for name in LAB_SYSTEMS:
        system = emulator.system(name)
        assert system["Boot"]["BootSourceOverrideTarget"] == "Pxe" and system["PowerState"] == "On"
    patches = [r for r in emulator.requests() if r[0] == "PATCH"]
    assert answered(patches) == 4 and len({r[1] for r in patches}) == 4, patches
    store = Store(state)
    assert {e["node"] for e in store.events(kind="pxe-boot")} == {f"{s}-bmc" for s in LAB_SYSTEMS}
    assert store.events(kind="pxe-boot")[0]["detail"]["reset"] == "On"
    store.close()


def test_wrong_password_is_a_clear_error_and_not_retried(emulator, tmp_path, capsys):
    zone = stub_zone(emulator, tmp_path, password="not-the-password")
    code, out, _ = run(capsys, zone, "plan", "--state", str(tmp_path / "s.db"))
    assert code == 1
    assert "p01-u01-bmc: FAILED system: HTTP 401: credentials refused" in out
    assert "not-the-password" not in out
    refused = [r for r in emulator.requests() if r[2] == 401]
    assert len(refused) == 4   # one login attempt per BMC, no retries


def test_tls_with_a_private_ca(tmp_path, capsys):
    certs = rf.self_signed(str(tmp_path))
    with rf.Emulator(str(tmp_path / "emu"), LAB_SYSTEMS, tls=(certs["cert"], certs["key"])) as emu:
        trusted = stub_zone(emu, tmp_path, ca_file=certs["ca"])
        code, out, _ = run(capsys, trusted, "plan", "--state", str(tmp_path / "a.db"))
        assert code == 3 and "p01-u03-bmc  BIOS" in out
        os.makedirs(tmp_path / "b")
        untrusted = stub_zone(emu, tmp_path / "b")        # verify on, default CA bundle
        code, out, _ = run(capsys, untrusted, "plan", "--state", str(tmp_path / "b.db"))
        assert code == 1 and "TLS failure (certificate verify failed)" in out
        code, out, _ = run(capsys, untrusted, "plan", "--insecure", "--state", str(tmp_path / "c.db"))
        assert code == 3


def test_bmc_that_never_answers_times_out_clearly(tmp_path, capsys):
    emu = rf.Emulator(str(tmp_path / "emu"), [])          # not started: only its zone is used
    with socket.socket() as silent:                      # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        zone = stub_zone(emu, tmp_path, url=f"http://127.0.0.1:{silent.getsockname()[1]}")
        code, out, _ = run(capsys, zone, "plan", "--pod", "p01", "--timeout", "0.3",
                           "--retries", "1", "--state", str(tmp_path / "s.db"))
    assert code == 1
    assert "p01-u03-bmc: FAILED system: timed out" in out
    plan = compile_plan(load_zone(zone))
    store = Store(str(tmp_path / "s.db"))
    assert all(store.node(n.name)["state"] == "failed" for n in plan.select("p01", "bmc"))
    store.close()


def test_bmc_with_nothing_listening(tmp_path, capsys):
    emu = rf.Emulator(str(tmp_path / "emu"), [])
    zone = stub_zone(emu, tmp_path, url=f"http://127.0.0.1:{rf.free_port()}")
    code, out, _ = run(capsys, zone, "apply", "--retries", "0", "--state", str(tmp_path / "s.db"))
    assert code == 1 and "cannot connect (Connection refused)" in out


def test_emulator_for_the_lab_zone(tmp_path, capsys):
    """The helper the lab uses: the lab zone's own port, credentials and server names."""
    zone = load_zone(LAB)
    emu = rf.Emulator.for_zone(zone, compile_plan(zone), str(tmp_path / "emu"),
                               port=rf.free_port())     # not 8000: the lab may be running
    assert emu.systems == LAB_SYSTEMS and emu.user == "admin"
    with emu:
        assert emu.system("p01-u04")["Name"] == "p01-u04"
        assert emu.get("/redfish/v1/Systems")["Members@odata.count"] == 4


def test_version_that_does_not_arrive_fails_verification(emulator, tmp_path, capsys):
    """The stub's task completes but bumps BIOS to 1.1.0, not the lab baseline 2.4.1."""
    zone = rf.zone_for(emulator, str(tmp_path), LAB)
    state = str(tmp_path / "s.db")
    code, out, _ = run(capsys, zone, "apply", "--verify-timeout", "0.5", "--state", state)
    assert code == 1
    assert "p01-u03-bmc: FAILED after update: BIOS is 1.1.0, expected 2.4.1" in out
    store = Store(state)
    assert store.node("p01-u04-bmc")["state"] == "failed"
    assert [e["detail"]["state"] for e in store.events(node="p01-u04-bmc", kind="firmware-task")] \
        == ["submitted", "Completed"]
    store.close()


def test_plan_json_carries_what_each_bmc_reported(emulator, tmp_path, capsys):
    import json

    zone = stub_zone(emulator, tmp_path)
    code, out, _ = run(capsys, zone, "plan", "--json", "--state", str(tmp_path / "s.db"))
    doc = json.loads(out)
    assert code == 3 and doc["summary"] == {"nodes": 4, "compliant": 2, "drift": 2, "failed": 0}
    assert doc["bmcs"]["p01-u02-bmc"]["macs"] == [rf.mac_for("p01-u02")]
    assert {s["node"] for s in doc["steps"] if s["action"] == "update"} == {"p01-u03-bmc",
                                                                           "p01-u04-bmc"}


def test_power_on_is_staggered_per_pod(tmp_path):
    """Each pod's BMCs are started 1/rate apart, pods side by side (the waits are
    taken from an injected clock, so nothing here depends on real timing)."""
    from bootstrap.redfish.fleet import Settings, bmcs, pxe_boot_all
    from bootstrap.redfish.recording import NullRecorder

    names = [f"p0{p}-u0{u}" for p in (1, 2) for u in (1, 2, 3, 4)]
    with rf.Emulator(str(tmp_path / "emu"), names) as emu:
        zone = load_zone(stub_zone(emu, tmp_path, pods=[{"name": "p01", "index": 1},
                                                        {"name": "p02", "index": 2}]))
        nodes = bmcs(compile_plan(zone))
        waits = []
        results = pxe_boot_all(Settings.for_zone(zone), nodes, 2.0, NullRecorder(),
                               clock=lambda: 0.0, sleep=waits.append)
        assert all(kind == "ok" for kind, _ in results.values())
        assert sorted(waits) == [0.5, 0.5, 1.0, 1.0, 1.5, 1.5]
        assert all(emu.system(n)["PowerState"] == "On" for n in names)
