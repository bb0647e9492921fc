"""Real tools accept the rendered output: ansible-inventory and named-checkzone."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from bootstrap.cli import main


def render(zone: str, out) -> None:
    assert main(["render", zone, "--out", str(out)]) == 0


def test_ansible_inventory_sees_every_host_and_group(lab_plan, tmp_path):
    render(lab_plan.zone.source, tmp_path)
    out = subprocess.run(["ansible-inventory", "-i", str(tmp_path / "inventory" / "hosts.yml"),
                          "--list"], capture_output=True, text=True, check=True).stdout
    inv = json.loads(out)
    hostvars = inv["_meta"]["hostvars"]
    for node in lab_plan.nodes.values():
        if node.kind != "bmc":
            assert hostvars[node.name]["ansible_host"] == node.address
    assert set(inv["compute"]["hosts"]) == {"p01-u03", "p01-u04"}
    assert inv["pod_p01"]["hosts"][0] == "p01-tor-a"
    assert hostvars["p01-u01"]["zone_domain"] == "lab1.example.net"  # group_vars/all.yml


@pytest.mark.parametrize("zone", ["lab.yml", "zone-10k.yml"])
def test_named_checkzone_accepts_every_zone_file(zone, tmp_path):
    root = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
    render(os.path.join(root, zone), tmp_path)
    files = sorted((tmp_path / "dns").iterdir())
    assert len(files) == 6
    for path in files:
        origin = path.name[len("db."):]
        result = subprocess.run(["named-checkzone", "-q", origin, str(path)], capture_output=True,
                                text=True)
        assert result.returncode == 0, (path.name, result.stdout, result.stderr)
