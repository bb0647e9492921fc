"""The playbooks as an Ansible engineer would check them: lint, syntax, role contracts."""

from __future__ import annotations

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
