"""``/api/v1``: JSON views of nodes and events; the token guards every change."""

from __future__ import annotations

from http_helpers import API_TOKEN, make_app


AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_nodes_lists_plan_and_state_with_filters(client, http_store, http_plan):
    all_nodes = client.get("/api/v1/nodes").json
    assert all_nodes["count"] == len(http_plan.nodes) == 13
    http_store.transition("p01-u02", "booting")
    servers = client.get("/api/v1/nodes?pod=p01&kind=server").json["nodes"]
    assert [n["name"] for n in servers] == ["p01-u01", "p01-u02", "p01-u03", "p01-u04"]
    booting = client.get("/api/v1/nodes?state=booting").json["nodes"]
    assert [(n["name"], n["address"]) for n in booting] == [("p01-u02", "10.17.1.12")]
    page = client.get("/api/v1/nodes?kind=server&offset=1&limit=2").json
    assert page["count"] == 4 and [n["name"] for n in page["nodes"]] == ["p01-u02", "p01-u03"]


def test_node_detail_has_data_and_recent_events(client, http_store):
    http_store.update("p01-u03", serial="SN3")
    http_store.transition("p01-u03", "discovered", source="dhcp")
    body = client.get("/api/v1/nodes/p01-u03").json
    assert body["node"]["data"] == {"serial": "SN3"} and body["node"]["state"] == "discovered"
    assert body["events"][-1]["detail"]["to"] == "discovered"
    missing = client.get("/api/v1/nodes/p07-u01")
    assert missing.status_code == 404 and "p07-u01" in missing.json["error"]


def test_changes_need_the_token(client, http_store):
    assert client.patch("/api/v1/nodes/p01-u03", json={"state": "booting"}).status_code == 401
    wrong = client.patch("/api/v1/nodes/p01-u03", json={"state": "booting"},
                         headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Bearer")
    assert http_store.node("p01-u03")["state"] == "planned"
    assert [e["kind"] for e in http_store.events()] == ["api-denied"]  # throttled per client
    assert "nope" not in str(http_store.events())


def test_without_a_configured_token_the_api_is_read_only(http_plan, http_store, monkeypatch):
    monkeypatch.delenv("ZONE_API_TOKEN", raising=False)
    monkeypatch.delenv("ZONE_API_TOKEN_FILE", raising=False)
    client = make_app(http_plan, http_store, API_TOKEN=None).test_client()
    r = client.patch("/api/v1/nodes/p01-u03", json={"state": "booting"}, headers=AUTH)
    assert r.status_code == 403


def test_token_from_env_or_file(http_plan, http_store, monkeypatch, tmp_path):
    monkeypatch.setenv("ZONE_API_TOKEN", "from-env")
    client = make_app(http_plan, http_store, API_TOKEN=None).test_client()
    r = client.post("/api/v1/events", json={"kind": "note"}, headers={"X-Zone-Token": "from-env"})
    assert r.status_code == 201
    monkeypatch.delenv("ZONE_API_TOKEN")
    (tmp_path / "token").write_text("from-file\n")
    client = make_app(http_plan, http_store, API_TOKEN=None,
                      API_TOKEN_FILE=str(tmp_path / "token")).test_client()
    r = client.post("/api/v1/events", json={"kind": "note"},
                    headers={"Authorization": "Bearer from-file"})
    assert r.status_code == 201


def test_state_change_is_legal_or_409(client, http_store):
    r = client.patch("/api/v1/nodes/p01-u03", json={"state": "booting", "reason": "manual"},
                     headers=AUTH)
    assert r.status_code == 200 and r.json["node"]["state"] == "booting"
    back = client.patch("/api/v1/nodes/p01-u03", json={"state": "planned"}, headers=AUTH)
    assert back.status_code == 409 and "booting" in back.json["error"]
    mac = "aa:bb:cc:dd:ee:ff"
    data = client.post("/api/v1/nodes/p01-u03", json={"data": {"rack": "A1"}, "mac": mac},
                       headers=AUTH)
    assert data.json["node"]["data"] == {"rack": "A1"} and data.json["node"]["mac"] == mac


def test_bad_bodies_and_arguments_are_400_json(client):
    for body in (b"not json", b"[1, 2]"):
        r = client.patch("/api/v1/nodes/p01-u03", data=body, headers=AUTH,
                         content_type="application/json")
        assert r.status_code == 400 and r.json["status"] == 400
    assert client.get("/api/v1/events?since=abc").status_code == 400
    r = client.post("/api/v1/events", json={"kind": "x", "node": "nobody"}, headers=AUTH)
    assert r.status_code == 404


def test_events_since_and_limit(client, http_store):
    for i in range(5):
        http_store.event("tick", "p01-u01", "test", n=i)
    first = client.get("/api/v1/events?limit=2").json
    assert [e["detail"]["n"] for e in first["events"]] == [0, 1]
    rest = client.get(f"/api/v1/events?since={first['last']}&node=p01-u01").json["events"]
    assert [e["detail"]["n"] for e in rest] == [2, 3, 4]
    newest = client.get("/api/v1/events?newest=1&limit=1").json["events"]
    assert newest[0]["detail"]["n"] == 4


def test_posted_event_is_stored(client, http_store):
    r = client.post("/api/v1/events", json={"kind": "cabling", "node": "p01-u02",
                                            "detail": {"port": "swp2"}}, headers=AUTH)
    assert r.status_code == 201
    event = http_store.events(kind="cabling")[0]
    assert (event["node"], event["source"], event["detail"]) == ("p01-u02", "api", {"port": "swp2"})
