"""The status page at scale: the 10k-node zone plan (250 pods) through the Flask test client."""

from __future__ import annotations

import os

import pytest

from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone
from http_helpers import API_TOKEN, ROOT, make_app

ZONE_10K = os.path.join(ROOT, "examples", "zone-10k.yml")
PAGE_BYTES = 400_000  # generous: the whole zone collapsed to 250 pod rows
MAC = "52:54:00:ab:cd:ef"


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    plan = compile_plan(load_zone(ZONE_10K))
    store = Store(str(tmp_path_factory.mktemp("status") / "zone.db"))
    store.seed(plan)
    servers = [n.name for n in plan.servers()]
    failed = [servers[-1], servers[len(servers) // 2]]
    for name in failed:
        store.transition(name, "failed", reason=f"no DHCP from {MAC} within 600 s")
    store.transition(servers[0], "discovered")
    client = make_app(plan, store).test_client()
    yield plan, store, client, failed
    store.close()


def test_zone_has_250_pods_and_the_page_stays_small(big):
    plan, _store, client, _failed = big
    assert len(plan.pods) == 250
    r = client.get("/")
    assert r.status_code == 200 and len(r.data) < PAGE_BYTES, len(r.data)
    html = r.data.decode()
    assert 'id="legend"' in html and all(f'class="node s-{s}">{s}<' in html
                                         for s in ("planned", "booting", "ready", "failed"))
    assert len(client.get("/status.json").data) < PAGE_BYTES


def test_failed_nodes_come_first_with_their_reason_and_no_mac(big):
    _plan, store, client, failed = big
    status = client.get("/status.json").json
    assert sorted(n["name"] for n in status["failed"]) == sorted(failed)
    assert all(n["reason"] == "no DHCP from hidden within 600 s" for n in status["failed"])
    first_pods = {p["name"] for p in status["pods"][:2]}
    assert first_pods == {store.node(name)["pod"] for name in failed}  # failing pods lead
    html = client.get("/").data.decode()
    assert MAC not in html and "no DHCP from hidden within 600 s" in html
    with_token = client.get("/status.json", headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert MAC in with_token.data.decode()


def test_filters_by_pod_state_and_kind(big):
    _plan, store, client, failed = big
    pod = store.node(failed[0])["pod"]
    status = client.get(f"/status.json?pod={pod}").json
    assert [p["name"] for p in status["pods"]] == [pod]
    nodes = status["pods"][0]["nodes"]
    assert nodes and nodes[0] == {"name": failed[0], "kind": "server", "state": "failed",
                                  "reason": "no DHCP from hidden within 600 s"}
    assert status["shown"] == len(nodes)
    only = client.get("/status.json?state=discovered&kind=server").json
    assert only["shown"] == 1 and only["pods"][0]["nodes"][0]["state"] == "discovered"
    assert client.get("/status.json?kind=switch&state=ready").json["shown"] == 0
    html = client.get(f"/?pod={pod}").data.decode()
    assert f">{failed[0]}</span>" in html and f'value="{pod}"' in html


def test_unknown_filter_values_are_refused_clearly(big):
    client = big[2]
    for query in ("pod=nope", "state=melted", "kind=toaster", "pod=" + "x" * 5000):
        r = client.get(f"/status.json?{query}")
        assert r.status_code == 400, query
    assert b"unknown state 'melted'" in client.get("/?state=melted").data
