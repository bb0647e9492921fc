"""Switch ZTP answers (SONiC, Cumulus, Arista, ONIE), each rendered with the switch's identity."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from http_helpers import from_address, kinds, make_app, variant_plan



def test_sonic_ztp_json_points_at_its_config_db(client, http_store):
    r = client.get("/ztp/sonic/p01-tor-a.json", **from_address("10.15.1.2"))  # the switch
    assert r.status_code == 200 and r.mimetype == "application/json"
    section = json.loads(r.data)["ztp"]["01-configdb-json"]
    assert section["url"]["source"] == "http://10.17.0.2:8080/ztp/sonic/p01-tor-a/config_db.json"
    db = json.loads(client.get("/ztp/sonic/p01-tor-a/config_db.json").data)
    assert db["DEVICE_METADATA"]["localhost"]["hostname"] == "p01-tor-a"
    assert db["MGMT_INTERFACE"] == {"eth0|10.15.1.2/24": {"gwaddr": "10.15.1.1"}}
    assert http_store.node("p01-tor-a")["state"] == "ztp"
    assert kinds(http_store, "p01-tor-a") == ["ztp-served", "state"]


def test_wrong_kind_or_not_a_switch_is_404(client):
    assert client.get("/ztp/cumulus/p01-tor-a").status_code == 404   # a SONiC switch
    assert client.get("/ztp/sonic/p01-u03.json").status_code == 404  # a server
    assert client.get("/onie/nope").status_code == 404


@pytest.fixture
def other_nos(http_store):
    plan = variant_plan("tor:        {kind: switch, ztp: sonic}",
                        "tor:        {kind: switch, ztp: cumulus}")
    plan.zone.roles["lom-switch"] = type(plan.zone.roles["lom-switch"])(
        "lom-switch", "switch", ztp="arista")
    for name in ("p01-lom",):
        plan.nodes[name].ztp = "arista"
    return make_app(plan, http_store).test_client()


def test_cumulus_script_has_the_marker_and_parses(other_nos, tmp_path):
    body = other_nos.get("/ztp/cumulus/p01-tor-b").get_data(as_text=True)
    assert "# CUMULUS-AUTOPROVISIONING" in body.splitlines()[:3]
    assert "NAME=p01-tor-b" in body and "MGMT=10.15.1.3/24" in body
    script = tmp_path / "ztp.sh"
    script.write_text(body)
    subprocess.run(["bash", "-n", str(script)], check=True)  # bash accepts it


def test_arista_bootstrap_writes_startup_config(other_nos, tmp_path):
    body = other_nos.get("/ztp/arista/p01-lom").get_data(as_text=True)
    target = tmp_path / "startup-config"
    code = body.replace("/mnt/flash/startup-config", str(target))
    exec(compile(code, "bootstrap", "exec"), {"__name__": "__main__"})  # noqa: S102
    config = target.read_text()
    assert "hostname p01-lom\n" in config and "   ip address 10.15.1.4/24\n" in config
    assert "ip route 0.0.0.0/0 10.15.1.1\n" in config


def test_onie_without_installer_gets_a_script_that_fails_so_onie_retries(client, tmp_path):
    body = client.get("/onie/p01-lom").get_data(as_text=True)
    assert body.startswith("#!/bin/sh") and "exit 1" in body
    if shutil.which("sh"):
        script = tmp_path / "onie.sh"
        script.write_text(body)
        assert subprocess.run(["sh", str(script)], capture_output=True).returncode == 1


def test_onie_redirects_to_the_most_specific_installer(http_plan, http_store, tmp_path):
    (tmp_path / "onie").mkdir()
    (tmp_path / "onie" / "lom-switch.bin").write_bytes(b"role installer")
    client = make_app(http_plan, http_store, FILES_ROOT=str(tmp_path)).test_client()
    r = client.get("/onie/p01-lom")
    assert r.status_code == 302
    assert r.headers["Location"] == "http://10.17.0.2:8080/files/onie/lom-switch.bin"
    (tmp_path / "onie" / "p01-lom.bin").write_bytes(b"node installer")
    assert client.get("/onie/p01-lom").headers["Location"].endswith("/onie/p01-lom.bin")
    assert client.get("/files/onie/p01-lom.bin").data == b"node installer"
