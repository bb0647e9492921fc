"""The HTTP service on a state store that takes no writes: answers go on, /healthz says
degraded, and a request that must write gets 503 with Retry-After, not a 500."""

from __future__ import annotations

from bootstrap import state
from http_helpers import make_app



def _refuse_writes(store) -> None:
    store.db.execute("PRAGMA query_only = ON")  # SQLite refuses writes, as on a read-only disk


def test_healthz_says_degraded_while_writes_fail_and_ok_once_they_work(client, http_store,
                                                                       monkeypatch):
    monkeypatch.setattr(state, "PROBE_INTERVAL", 0)
    assert client.get("/healthz").json["status"] == "ok"
    _refuse_writes(http_store)
    client.get("/boot/ipxe", environ_base={"REMOTE_ADDR": "10.17.1.13"})  # its event: not written
    body = client.get("/healthz")
    assert body.status_code == 200 and body.json["status"] == "degraded"
    assert "readonly database" in body.json["problems"][0]
    http_store.db.execute("PRAGMA query_only = OFF")
    assert client.get("/healthz").json["status"] == "ok"


def test_answers_from_the_zone_go_on_and_a_write_gets_503(http_plan, http_store):
    client = make_app(http_plan, http_store).test_client()
    _refuse_writes(http_store)
    node = {"REMOTE_ADDR": "10.17.1.13"}
    script = client.get("/boot/ipxe", environ_base=node)
    assert script.status_code == 200 and "p01-u03" in script.get_data(as_text=True)
    assert client.get("/cloud-init/p01-u03/user-data", environ_base=node).status_code == 200
    home = client.post("/phone-home/p01-u03", environ_base=node, data={"hostname": "p01-u03"})
    assert home.status_code == 503 and home.headers["Retry-After"] == "30"
    assert "cannot be written now" in home.get_data(as_text=True)
