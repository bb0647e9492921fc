"""cloud-init NoCloud data and phone-home: only to the node itself or its token holder."""

from __future__ import annotations

import pytest
import yaml

from http_helpers import from_address, kinds, make_app, token_for, variant_plan


U03 = "10.17.1.13"


def get_yaml(client, part, address=U03, name="p01-u03"):
    r = client.get(f"/cloud-init/{name}/{part}", **from_address(address))
    assert r.status_code == 200, r.get_data(as_text=True)
    return yaml.safe_load(r.get_data(as_text=True)), r.get_data(as_text=True)


def test_meta_and_user_data_carry_the_plan_identity(client):
    meta, _ = get_yaml(client, "meta-data")
    assert meta == {"instance-id": "iid-p01-u03", "local-hostname": "p01-u03"}
    user, text = get_yaml(client, "user-data", address="10.19.1.13")
    assert text.startswith("#cloud-config\n")
    assert user["hostname"] == "p01-u03" and user["fqdn"] == "p01-u03.lab1.example.net"
    assert user["ntp"]["servers"] == ["192.0.2.123"]
    assert user["phone_home"]["url"] == "http://10.17.0.2:8080/phone-home/p01-u03"
    assert {"pub_key_rsa", "pub_key_ed25519", "instance_id"} <= set(user["phone_home"]["post"])


def test_vendor_data_writes_the_identity_file(client):
    import json
    vendor, _ = get_yaml(client, "vendor-data")
    identity = json.loads(vendor["write_files"][0]["content"])
    assert identity["unit"] == 3 and identity["groups"] == ["compute"]


def test_network_config_bonds_both_tor_links(client):
    net, _ = get_yaml(client, "network-config")
    net = net["network"]
    assert net["version"] == 2
    assert set(net["ethernets"]) == {"eno1", "eno2"}
    bond = net["bonds"]["bond0"]
    assert bond["interfaces"] == ["eno1", "eno2"]
    assert bond["addresses"] == ["10.17.1.13/24", "10.18.1.13/24", "10.19.1.13/24"]
    assert bond["routes"] == [{"to": "0.0.0.0/0", "via": "10.17.1.1"}]
    assert bond["nameservers"]["addresses"] == ["10.17.0.2"]


def test_known_macs_match_nics_and_vlans_get_interfaces(http_store, tmp_path):
    plan = variant_plan("storage:   {supernet: 10.18.0.0/16, prefix: 24}",
                        "storage:   {supernet: 10.18.0.0/16, prefix: 24, vlan: 118}")
    http_store.update("p01-u03", macs=["52:54:00:00:03:01", "52:54:00:00:03:02"])
    client = make_app(plan, http_store).test_client()
    net = get_yaml(client, "network-config")[0]["network"]
    assert net["ethernets"]["nic0"] == {"match": {"macaddress": "52:54:00:00:03:01"},
                                        "set-name": "nic0", "dhcp4": False}
    assert net["bonds"]["bond0"]["addresses"] == ["10.17.1.13/24", "10.19.1.13/24"]
    assert net["vlans"]["bond0.118"] == {"id": 118, "link": "bond0",
                                         "addresses": ["10.18.1.13/24"]}


@pytest.mark.parametrize("address", ["127.0.0.1", "10.17.1.14", "10.16.1.13"])
def test_anyone_else_is_refused_with_an_event(client, http_store, address):
    r = client.get("/cloud-init/p01-u03/user-data", **from_address(address))
    assert r.status_code == 403
    event = http_store.events(kind="cloud-init-denied")[-1]
    assert event["node"] == "p01-u03" and event["detail"]["address"] == address


def test_the_node_token_opens_it_from_anywhere(client, http_store):
    ok = client.get(f"/cloud-init/p01-u03/meta-data?token={token_for('p01-u03')}")
    assert ok.status_code == 200
    other = client.get(f"/cloud-init/p01-u03/meta-data?token={token_for('p01-u04')}")
    assert other.status_code == 403
    assert token_for("p01-u04") not in str(http_store.events())  # tokens never recorded


def test_x_forwarded_for_counts_only_when_configured(client, http_plan, http_store):
    forwarded = {"X-Forwarded-For": U03}
    assert client.get("/cloud-init/p01-u03/meta-data", headers=forwarded).status_code == 403
    behind_proxy = make_app(http_plan, http_store, TRUST_X_FORWARDED_FOR=True).test_client()
    assert behind_proxy.get("/cloud-init/p01-u03/meta-data", headers=forwarded).status_code == 200


def test_unknown_node_part_or_kind_is_404(client):
    assert client.get("/cloud-init/p09-u01/meta-data").status_code == 404
    assert client.get("/cloud-init/p01-u03/secrets", **from_address(U03)).status_code == 404
    assert client.get("/cloud-init/p01-tor-a/meta-data",
                      **from_address("10.15.1.2")).status_code == 404


KEYS = {"pub_key_rsa": "ssh-rsa AAAArsa root@p01-u03",
        "pub_key_ed25519": "ssh-ed25519 AAAAed root@p01-u03",
        "instance_id": "iid-p01-u03", "hostname": "p01-u03"}


def test_phone_home_records_keys_and_installs(client, http_store):
    http_store.transition("p01-u03", "booting")
    r = client.post("/phone-home/p01-u03", data=KEYS, **from_address(U03))
    assert r.status_code == 200 and r.json["state"] == "installed"
    data = http_store.node("p01-u03")["data"]
    assert data["ssh_host_keys"] == {"pub_key_rsa": KEYS["pub_key_rsa"],
                                     "pub_key_ed25519": KEYS["pub_key_ed25519"]}
    assert data["instance_id"] == "iid-p01-u03"
    assert kinds(http_store, "p01-u03")[-2:] == ["phone-home", "state"]


def test_phone_home_from_planned_goes_straight_to_installed(client, http_store):
    r = client.post(f"/phone-home/p01-u04?token={token_for('p01-u04')}", data=KEYS)
    assert r.status_code == 200 and http_store.node("p01-u04")["state"] == "installed"


def test_phone_home_never_moves_a_node_backwards(client, http_store):
    http_store.transition("p01-u03", "ready")
    r = client.post("/phone-home/p01-u03", data=KEYS, **from_address(U03))
    assert r.json["state"] == "ready"
    assert "illegal-transition" not in kinds(http_store, "p01-u03")


def test_phone_home_from_elsewhere_is_refused(client, http_store):
    r = client.post("/phone-home/p01-u03", data=KEYS, **from_address("10.17.1.14"))
    assert r.status_code == 403
    assert http_store.node("p01-u03")["state"] == "planned"
    assert kinds(http_store, "p01-u03") == ["phone-home-denied"]


def test_zone_node_token_prints_the_token_the_service_accepts(http_plan, tmp_path, capsys):
    from bootstrap.cli import main
    from bootstrap.state import Store
    state = str(tmp_path / "state" / "zone.db")
    store = Store(state)
    store.seed(http_plan)
    app = make_app(http_plan, store, NODE_SECRET=None)  # the secret file beside the state
    assert main(["node-token", http_plan.zone.source, "p01-u03", "--state", state]) == 0
    token = capsys.readouterr().out.strip()
    r = app.test_client().get(f"/cloud-init/p01-u03/meta-data?token={token}")
    assert r.status_code == 200
    assert main(["node-token", http_plan.zone.source, "p09-u99", "--state", state]) == 2


KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIEdtrq+BamXi3qOgNK2cDHqCGuseKM/EgNRa+l73yr0 "
       "ops@example")


def test_site_section_reaches_user_data_and_network_config(http_store):
    """site: in the zone file, not app settings: the keys, the NIC names and the bond mode."""
    plan = variant_plan("naming:", f'site: {{ssh_authorized_keys: ["{KEY}"], nics: [ens1f0, '
                        'ens1f1], bond_mode: balance-xor}\nnaming:')
    client = make_app(plan, http_store).test_client()
    user, text = get_yaml(client, "user-data")
    assert user["ssh_authorized_keys"] == [KEY]
    net = get_yaml(client, "network-config")[0]["network"]
    assert net["bonds"]["bond0"]["interfaces"] == ["ens1f0", "ens1f1"]
    assert net["bonds"]["bond0"]["parameters"]["mode"] == "balance-xor"


def test_lab_has_no_keys_and_the_default_bond(client):
    user, _ = get_yaml(client, "user-data")
    assert "ssh_authorized_keys" not in user
    bond = get_yaml(client, "network-config")[0]["network"]["bonds"]["bond0"]
    assert bond["parameters"]["mode"] == "802.3ad"
