"""Every recorded vendor tree (tests/data/redfish/trees) through the real ``zone firmware``
CLI against our mockup server: discovery, plan, the one-time boot override and apply.

Each tree's behaviour.json names its quirks and what the flows must make of them
(update method, Targets the BMC took, MACs, boot target, whether HttpBootUri goes out)."""

import json
import logging
import os

import pytest

from zonelab import bmc_emulator as rf
from bootstrap.cli import main
from conftest import LAB
from redfish_mockup import Mockup, write_image

TREES = os.path.join(os.path.dirname(__file__), "..", "data", "redfish", "trees")
NODE = "p01-u01-bmc"
BOOT_URI = "http://192.0.2.10/boot/shim.efi"


def run(capsys, *argv):
    code = main(["firmware", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def tree_zone(mockup, tmp_path) -> str:
    """One server whose BMC is the mockup; its baseline is every component of the tree."""
    baseline = mockup.bmc.behaviour["baseline"]
    catalog = {}
    for i, (component, (_now, new)) in enumerate(baseline.items()):
        path = str(tmp_path / f"fw{i}.bin")
        sha = write_image(path, component, new)
        catalog[f"fw{i}"] = {"component": component, "version": new, "image": path, "sha256": sha}

    def edit(zone):
        zone["pod_template"]["units"] = [{"units": 1, "role": "hypervisor"}]
        zone["roles"]["hypervisor"]["firmware"] = list(catalog)
        zone["redfish"]["system"] = mockup.bmc.behaviour["system"]

    return rf.zone_for(mockup, str(tmp_path), LAB, firmware=catalog, edit=edit)


def sent(mockup, method: str, status=None) -> list:
    return [r for r in mockup.log if r["method"] == method and (status is None or r["status"] == status)]


@pytest.mark.parametrize("tree", sorted(os.listdir(TREES)))
def test_tree_discovery_plan_boot_and_apply(tree, tmp_path, capsys, caplog):
    with Mockup(os.path.join(TREES, tree)) as mockup:
        behaviour = mockup.bmc.behaviour
        expect, baseline = behaviour["expect"], behaviour["baseline"]
        zone, state = tree_zone(mockup, tmp_path), str(tmp_path / "s.db")

        code, out, err = run(capsys, zone, "plan", "--json", "--state", state)
        doc = json.loads(out)
        assert code == 3 and not doc["errors"], out + err
        steps = {s["component"]: s for s in doc["steps"]}
        assert {c: s["current"] for c, s in steps.items()} == {c: v[0] for c, v in baseline.items()}
        assert doc["bmcs"][NODE]["macs"] == expect["macs"]
        assert "<html" not in err.lower()     # the library's HTML page never reaches stderr

        code, out, err = run(capsys, zone, "boot", "--state", state, "--per-second", "50",
                             "--boot-uri", BOOT_URI)
        assert code == 0, out + err
        patch = json.loads(sent(mockup, "PATCH", 204)[-1]["body"])["Boot"]
        assert patch["BootSourceOverrideTarget"] == expect["boot"]
        assert patch["BootSourceOverrideEnabled"] == "Once"
        assert ("HttpBootUri" in patch) == expect["http_boot_uri"]
        assert sent(mockup, "POST", 204)      # the reset

        code, out, err = run(capsys, zone, "apply", "--state", state, "--verify-timeout", "30")
        assert code == 0, out + err
        updates = [r for r in sent(mockup, "POST", 202)]
        assert [_targets(r) for r in updates] == [_expected(t) for t in expect["targets"]], updates
        assert all(_method(mockup, r) == expect["method"] for r in updates)
        assert not sent(mockup, "POST", 404)   # every action at the path the BMC advertised
        schemeless = behaviour.get("image_uri") == "schemeless"
        assert all("://" not in json.loads(r["body"])["ImageURI"] for r in updates
                   if r["body"].startswith(b"{")) == schemeless or not schemeless

        assert run(capsys, zone, "plan", "--state", state)[0] == 0


def _expected(target) -> list:
    return [] if target is None else [target]


def _targets(request) -> list:
    raw = request["body"]
    if raw.startswith(b"{"):
        return json.loads(raw).get("Targets", [])
    start = raw.index(b"{")                       # the UpdateParameters part of a multipart body
    return json.loads(raw[start:raw.index(b"}", start) + 1].replace(b"]}", b"]}")).get("Targets", [])


def _method(mockup, request) -> str:
    service = mockup.resource("/redfish/v1/UpdateService")
    return "multipart" if request["path"] == service.get("MultipartHttpPushUri") else "SimpleUpdate"
