"""The playbooks as an Ansible engineer would check them: lint, syntax, role contracts."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from bootstrap.cli import main

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
ROLES = sorted(p.name for p in (PLAYBOOKS / "roles").iterdir() if p.is_dir())


def test_every_role_is_there():
    assert ROLES == ["common", "compute", "network", "sdn", "storage"]


@pytest.mark.skipif(not shutil.which("ansible-lint"), reason="ansible-lint is a test extra")
def test_ansible_lint_production_profile_is_clean():
    out = subprocess.run(["ansible-lint", "--profile", "production", "--nocolor"], cwd=PLAYBOOKS,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_syntax_check_with_the_rendered_inventory(lab_plan, tmp_path):
    assert main(["render", lab_plan.zone.source, "--out", str(tmp_path)]) == 0
    out = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(tmp_path / "inventory"),
                          str(PLAYBOOKS / "site.yml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("role", ROLES)
def test_role_variables_are_prefixed_specified_and_documented(role):
    base = PLAYBOOKS / "roles" / role
    defaults = yaml.safe_load((base / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((base / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    readme = (base / "README.md").read_text()
    assert all(name.startswith(f"{role}_") for name in defaults)
    assert set(defaults) <= set(options), set(defaults) - set(options)
    assert all(name.startswith(f"{role}_") for name in options)
    for name in options:
        assert f"`{name}`" in readme, name
    internal = yaml.safe_load((base / "vars" / "main.yml").read_text()) or {}
    assert all(name.startswith(f"__{role}_") for name in internal)


def test_site_is_a_list_of_roles_by_group():
    plays = yaml.safe_load((PLAYBOOKS / "site.yml").read_text())
    assert all(set(play) <= {"name", "hosts", "become", "roles"} for play in plays)
    used = {r["role"] for play in plays for r in play["roles"]}
    assert used == set(ROLES)
    assert re.fullmatch(r"kind_server", plays[0]["hosts"])


VLAN_PLAY = """
- hosts: localhost
  gather_facts: false
  vars_files: [{role}/defaults/main.yml, {role}/vars/main.yml]
  vars:
    item: "{{{{ __network_tagged | product(['netdev']) | first }}}}"
  tasks:
    - ansible.builtin.copy:
        content: "{{{{ {{'files': __network_files,
                        'bond': lookup('template', '{role}/templates/bond.network.j2'),
                        'vlan': lookup('template', '{role}/templates/vlan.network.j2')}} | to_json }}}}"
        dest: "{out}"
        mode: "0644"
"""


def test_network_role_puts_tagged_networks_on_vlan_interfaces(tmp_path):
    """The lab has no VLANs, so the converge never sees this branch: render it here."""

    role, out = PLAYBOOKS / "roles" / "network", tmp_path / "out.json"
    (tmp_path / "play.yml").write_text(VLAN_PLAY.format(role=role, out=out))
    (tmp_path / "vars.yml").write_text(yaml.safe_dump({"network_networks": {
        "provision": {"address": "10.17.1.13", "prefix": 24, "gateway": "10.17.1.1", "vlan": None,
                      "cidr": "10.17.1.0/24"},
        "storage": {"address": "10.18.1.13", "prefix": 24, "gateway": "10.18.1.1", "vlan": 218,
                    "cidr": "10.18.1.0/24"}}}))
    done = subprocess.run(["ansible-playbook", str(tmp_path / "play.yml"), "-e",
                           f"@{tmp_path / 'vars.yml'}"], capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_LOCALHOST_WARNING="0"))
    assert done.returncode == 0, done.stdout + done.stderr
    got = json.loads(out.read_text())
    assert got["files"] == ["50-zone-bond0.netdev", "50-zone-bond0.network",
                            "50-zone-bond0.218.netdev", "50-zone-bond0.218.network"]
    assert "VLAN=bond0.218" in got["bond"] and "Address=10.17.1.13/24" in got["bond"]
    assert "10.18.1.13" not in got["bond"]
    assert "Name=bond0.218" in got["vlan"] and "Address=10.18.1.13/24" in got["vlan"]
    assert "Gateway" not in got["vlan"]
