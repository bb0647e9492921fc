"""Rolling firmware updates against sushy-emulator with the TEST EXTENSION (sushy_ext.py):
a realistic UpdateService that downloads the image, answers 202 + TaskMonitor, runs the
task, and shows the new version after the reset the task asks for."""

import functools
import http.server
import os
import shutil
import threading

import pytest

from zonelab import bmc_emulator as rf
from conftest import LAB
from bootstrap.cli import main
from bootstrap.state import Store

LAB_SYSTEMS = ["p01-u01", "p01-u02", "p01-u03", "p01-u04"]


def run(capsys, *argv):
    code = main(["firmware", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def emulator(tmp_path):
    with rf.Emulator(str(tmp_path / "emu"), LAB_SYSTEMS, extension=True, task_seconds=0.3) as emu:
        yield emu


def test_apply_downloads_runs_task_resets_and_verifies(emulator, tmp_path, capsys):
    zone = rf.zone_for(emulator, str(tmp_path), LAB)          # the lab catalog: bios-2.4.1
    state = str(tmp_path / "s.db")
    assert run(capsys, zone, "plan", "--state", state)[0] == 3
    code, out, err = run(capsys, zone, "apply", "--state", state)
    assert code == 0, out + err
    assert "p01-u03-bmc: updated BIOS 1.0.0 -> 2.4.1" in err
    tasks = emulator.stats()["tasks"]
    assert sorted(t["name"] for t in tasks) == ["p01-u03", "p01-u04"]
    assert all(t["state"] == "Completed" for t in tasks)
    assert all(t["uri"].startswith("http://127.0.0.1:") and
               t["uri"].endswith("/files/firmware/bios-2.4.1.bin") for t in tasks)
    assert emulator.system("p01-u03")["BiosVersion"] == "2.4.1"
    store = Store(state)
    states = [e["detail"]["state"] for e in store.events(node="p01-u03-bmc", kind="firmware-task")]
    assert states == ["submitted", "Completed", "reset"]
    node = store.node("p01-u03-bmc")
    assert node["state"] == "ready" and node["data"]["firmware"] == {"BIOS": "2.4.1"}
    assert node["data"]["firmware_source"] == "FirmwareInventory"
    store.close()
    with open(state, "rb") as fh:
        assert emulator.password.encode() not in fh.read()       # never stored
    assert emulator.password not in out + err
    code, out, _ = run(capsys, zone, "apply", "--state", state)     # idempotent re-run
    assert code == 0 and "2 already compliant" in out
    assert emulator.stats()["posts"] == 2
    assert run(capsys, zone, "plan", "--state", state)[0] == 0


def test_wrong_sha256_sends_nothing(emulator, tmp_path, capsys):
    def edit(zone):
        zone["firmware"]["bios-2.4.1"]["sha256"] = "0" * 64

    zone = rf.zone_for(emulator, str(tmp_path), LAB, edit=edit)
    code, _, err = run(capsys, zone, "apply", "--state", str(tmp_path / "s.db"))
    assert code == 2
    assert "sha256 is 872a5879" in err and "nothing was sent to any BMC" in err
    assert emulator.requests() == []          # not one request reached the BMC


def serve_dir(directory):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=directory)
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    return httpd


def test_missing_image_fails_that_node_only(emulator, tmp_path, capsys):
    """A mirror that lacks one image: the BMC's download fails, its task ends in
    Exception, that node is failed with the BMC's message, the others finish."""
    image, sha = rf.write_image(str(tmp_path / "bios-3.0.0.bin"), "BIOS", "3.0.0")

    def edit(zone):
        zone["firmware"]["bios-3.0.0"] = {"component": "BIOS", "version": "3.0.0",
                                          "image": image, "sha256": sha}
        zone["roles"]["storage"]["firmware"] = ["bios-3.0.0"]

    zone = rf.zone_for(emulator, str(tmp_path), LAB, edit=edit)
    mirror = tmp_path / "mirror" / "firmware"
    os.makedirs(mirror)
    shutil.copy(os.path.join(os.path.dirname(LAB), "firmware", "bios-2.4.1.bin"), mirror)
    httpd = serve_dir(str(tmp_path / "mirror"))
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        state = str(tmp_path / "s.db")
        code, out, _ = run(capsys, zone, "apply", "--image-base-url", base, "--state", state)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert code == 1
    assert "2 updated" in out and "1 failed" in out
    assert "p01-u02-bmc: FAILED update task Exception: Download of" in out and "404" in out
    store = Store(state)
    failed = store.node("p01-u02-bmc")
    assert failed["state"] == "failed" and "HTTP Error 404" in failed["reason"]
    assert store.node("p01-u04-bmc")["state"] == "ready"
    store.close()
    assert emulator.system("p01-u02")["BiosVersion"] == "1.0.0"
    assert emulator.system("p01-u03")["BiosVersion"] == "2.4.1"


def peak_overlap(intervals) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def test_parallelism_is_bounded_overall_and_per_pod(tmp_path, capsys):
    pods = [{"name": f"p0{i}", "index": i} for i in (1, 2, 3)]
    names = [f"p0{p}-u0{u}" for p in (1, 2, 3) for u in (1, 2, 3, 4)]

    def edit(zone):
        zone["pod_template"]["units"] = [{"units": "1-4", "role": "hypervisor"}]

    with rf.Emulator(str(tmp_path / "emu"), names, extension=True, task_seconds=0.3) as emu:
        zone = rf.zone_for(emu, str(tmp_path), LAB, pods=pods, edit=edit)
        code, out, err = run(capsys, zone, "apply", "--max-parallel", "4",
                             "--max-parallel-per-pod", "2", "--state", str(tmp_path / "s.db"))
        assert code == 0, out + err
        stats = emu.stats()
    assert len(stats["tasks"]) == 12
    assert 2 <= stats["max_in_flight"] <= 4          # seen by the BMC side, not by the client
    for pod in ("p01", "p02", "p03"):
        spans = [(t["started"], t["ended"]) for t in stats["tasks"] if t["name"].startswith(pod)]
        assert len(spans) == 4 and peak_overlap(spans) <= 2


def test_busy_bmc_is_retried_with_backoff(emulator, tmp_path, capsys):
    zone = rf.zone_for(emulator, str(tmp_path), LAB)
    emulator.busy(3)
    code, out, _ = run(capsys, zone, "plan", "--pod", "p01", "--max-parallel", "1",
                       "--state", str(tmp_path / "s.db"))
    assert code == 3, out                      # drift found: every BMC was read in the end
    assert [r[2] for r in emulator.requests()].count(503) == 3
    code, out, _ = run(capsys, zone, "plan", "--retries", "0", "--state", str(tmp_path / "s.db"))
    assert code == 3                           # nothing busy any more
    emulator.busy(1)
    code, out, _ = run(capsys, zone, "plan", "--retries", "0", "--max-parallel", "1",
                       "--state", str(tmp_path / "s.db"))
    assert code == 1 and "FAILED system: HTTP 503: Service temporarily busy" in out


def test_database_is_locked_is_ridden_through_and_the_bound_is_kept(emulator, tmp_path, capsys):
    """A 500 "database is locked" (what sushy-tools' state store answers under load, what
    busy iDRACs and iLOs answer too) is retried on reads: the update goes through. When
    it lasts longer than the retries, the node fails with one line naming it and the count."""
    zone = rf.zone_for(emulator, str(tmp_path), LAB)
    state = str(tmp_path / "s.db")
    emulator.busy(3, status=500, message="database is locked")
    code, out, err = run(capsys, zone, "apply", "--pod", "p01", "--max-parallel", "1",
                         "--state", state)
    assert code == 0, out + err
    assert [r[2] for r in emulator.requests()].count(500) == 3
    store = Store(state)
    assert {store.node(f"p01-u0{u}-bmc")["state"] for u in (3, 4)} == {"ready"}
    assert not store.events(kind="redfish-failed")
    store.close()
    emulator.busy(50, status=500, message="database is locked")
    code, out, _ = run(capsys, zone, "plan", "--retries", "1", "--max-parallel", "1",
                       "--state", state)
    assert code == 1
    assert "p01-u01-bmc: FAILED system: HTTP 500: database is locked (gave up after 2 attempts)" \
        in out.splitlines()
