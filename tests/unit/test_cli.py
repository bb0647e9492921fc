"""The CLI contract: exit codes and one-line errors, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import LAB


def zone(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "bootstrap", *args], capture_output=True,
                          text=True, cwd=cwd)


def test_validate_ok():
    result = zone("validate", LAB)
    assert result.returncode == 0 and "is valid: 1 pods, 4 servers" in result.stdout


def test_validate_broken_file_exit_2(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("zone: x\ndomain: x.example.net\nnetworks: {}\nroles: {}\npod_template: {units: []}\npods: []\nbogus: 1\n")
    result = zone("validate", str(bad))
    assert result.returncode == 2
    assert f"{bad}:7: zone file: unknown key 'bogus'" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_json_lists_problems(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("zone: [\n")
    result = zone("validate", str(bad), "--json")
    assert result.returncode == 2
    assert json.loads(result.stdout)["valid"] is False


def test_missing_file_exit_2(tmp_path):
    result = zone("plan", str(tmp_path / "nope.yml"))
    assert result.returncode == 2 and "cannot read" in result.stderr and "Traceback" not in result.stderr


def test_plan_table_and_json():
    table = zone("plan", LAB, "--pod", "p01")
    assert table.returncode == 0
    assert any(line.startswith("p01-u03 ") and "10.17.1.13" in line for line in table.stdout.splitlines())
    data = json.loads(zone("plan", LAB, "--json").stdout)
    assert {n["name"] for n in data["nodes"]} >= {"p01-u01", "p01-u01-bmc", "core-1"}


def test_unknown_pod_is_bad_input():
    result = zone("plan", LAB, "--pod", "p99")
    assert result.returncode == 2 and "no such pod" in result.stderr


def test_render_writes_files(tmp_path):
    result = zone("render", LAB, "--out", str(tmp_path / "out"))
    assert result.returncode == 0
    assert (tmp_path / "out" / "inventory" / "hosts.yml").exists()
    assert (tmp_path / "out" / "dhcp-reservations.json").exists()


def test_version_is_the_package_version(tmp_path):
    from importlib import metadata
    result = zone("--version", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stdout.strip() == f"zone {metadata.version('zone-bootstrap')}"


def test_version_without_metadata_is_the_checkout_pyproject(monkeypatch):
    import tomllib
    from importlib import metadata

    from bootstrap import resources
    from tests.conftest import ROOT

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(resources.metadata, "version", not_installed)
    with open(f"{ROOT}/pyproject.toml", "rb") as fh:
        assert resources.version() == tomllib.load(fh)["project"]["version"]
