"""Rendered files parse back to the plan they came from."""

from __future__ import annotations

import json

import yaml
from dnslib import RR

from bootstrap.render import dnszone, render_all


def test_inventory_round_trips(lab_plan, tmp_path):
    render_all(lab_plan, str(tmp_path))
    hosts = yaml.safe_load((tmp_path / "inventory" / "hosts.yml").read_text())["all"]
    servers = [n for n in lab_plan.nodes.values() if n.kind == "server"]
    for node in servers:
        hv = hosts["hosts"][node.name]
        assert hv["ansible_host"] == node.address
        assert {k: v["address"] for k, v in hv["node_addresses"].items()} == node.addresses
        assert hv["node_bmc_address"] == lab_plan.nodes[node.peer].address
        assert node.name in hosts["children"]["pod_p01"]["hosts"]
        for group in node.groups:
            assert node.name in hosts["children"][group]["hosts"]
    assert not any(n.endswith("-bmc") for n in hosts["hosts"])
    pod = yaml.safe_load((tmp_path / "inventory" / "group_vars" / "pod_p01.yml").read_text())
    assert pod["pod_switches"]["tor-a"]["addresses"]["underlay"] == "10.19.1.2"
    assert sorted(pod["pod_vteps"]) == ["10.19.1.11", "10.19.1.13", "10.19.1.14"]


def test_dns_files_round_trip(lab_plan, tmp_path):
    paths = dnszone.write(lab_plan, str(tmp_path))
    parsed = {}
    for path in paths:
        for rr in RR.fromZone(open(path).read()):
            parsed.setdefault(str(rr.rname).rstrip("."), set()).add((rr.rtype, str(rr.rdata)))
    for node in lab_plan.nodes.values():
        assert (1, node.address) in parsed[node.fqdn]  # type A
        assert (12, node.fqdn + ".") in parsed[dnszone.ptr_name(node.address)]


def test_reservations_cover_every_location(lab_plan, tmp_path):
    render_all(lab_plan, str(tmp_path))
    table = json.loads((tmp_path / "dhcp-reservations.json").read_text())
    by_name = {r["name"]: r for r in table["reservations"]}
    assert by_name["p01-u02"]["address"] == "10.17.1.12"
    assert {"switch": "p01-tor-b", "port": "swp2", "remote_id": "p01-tor-b"} in \
        by_name["p01-u02"]["locations"]
    assert len(by_name) == len(lab_plan.nodes)


def test_site_settings_reach_group_vars(tmp_path):
    """The zone's site: section gives the network role its NICs and bond mode."""
    import os

    from bootstrap.plan import compile_plan
    from bootstrap.zone import load_zone

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    plan = compile_plan(load_zone(os.path.join(root, "examples", "two-pods.yml")))
    render_all(plan, str(tmp_path))
    zone = yaml.safe_load((tmp_path / "inventory" / "group_vars" / "all.yml").read_text())
    assert zone["network_bond_interfaces"] == ["ens1f0", "ens1f1"]
    assert zone["network_bond_mode"] == "802.3ad"
    assert zone["zone_public_url"] == "http://10.42.0.2:8080"
    assert zone["zone_ssh_authorized_keys"][0].endswith(" ops@fra2")
