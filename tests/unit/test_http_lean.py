"""The lean WSGI path of plain ``GET /boot/ipxe``: the same answers as the Flask view."""

from __future__ import annotations

from http_helpers import from_address, kinds, make_app


U03 = "10.17.1.13"  # p01-u03's provision address in examples/lab.yml


def answers(app, address: str, path: str = "/boot/ipxe"):
    r = app.test_client().get(path, **from_address(address))
    return r.status_code, r.headers["Content-Type"], r.headers["Content-Length"], r.data


def test_lean_and_flask_answer_and_record_alike(http_plan, tmp_path):
    from bootstrap.state import Store
    seen = []
    for lean in (True, False):
        store = Store(str(tmp_path / f"lean-{lean}.db"))
        store.seed(http_plan)
        app = make_app(http_plan, store, LEAN_BOOT=lean)
        got = [answers(app, a) for a in (U03, U03, "10.16.1.13", "10.99.0.1")]
        events = [(e["kind"], e["node"], e["detail"]) for e in store.events()]
        seen.append((got, events, store.node("p01-u03")["state"]))
        store.close()
    assert seen[0] == seen[1]
    got, events, state = seen[0]
    assert got[0][:2] == (200, "text/plain; charset=utf-8") and got[0][3].startswith(b"#!ipxe")
    assert [k for k, _, _ in events] == ["ipxe-script", "state", "ipxe-script", "ipxe-no-image",
                                         "ipxe-unknown"]
    assert state == "booting"


def test_only_plain_gets_take_the_lean_path(app):
    lean, passed = app.wsgi_app, []

    def flask(environ, start_response):  # stands in for Flask: notes what reached it
        passed.append((environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"]))
        start_response("204 No Content", [])
        return []
    lean.next = flask
    client = app.test_client()
    assert client.get("/boot/ipxe", **from_address(U03)).status_code == 200
    client.head("/boot/ipxe", **from_address(U03))
    client.get("/boot/ipxe?mac=52:54:00:00:00:01")
    client.get("/healthz")
    assert passed == [("HEAD", "/boot/ipxe", ""), ("GET", "/boot/ipxe", "mac=52:54:00:00:00:01"),
                      ("GET", "/healthz", "")]


def test_a_node_installed_after_its_script_boots_from_disk_next_time(http_plan, http_store):
    """Scripts are cached per node; the state they depend on is read on every request."""
    for batch in (False, True):
        http_store.db.execute("UPDATE nodes SET state='planned' WHERE name='p01-u03'")
        app = make_app(http_plan, http_store, EVENT_BATCH=batch)
        assert b"kernel " in answers(app, U03)[3]
        assert http_store.transition("p01-u03", "installed", source="phone-home")
        body = answers(app, U03)[3].decode()
        assert "already installed" in body and "kernel" not in body
        app.extensions["zone"].close()
    assert kinds(http_store, "p01-u03").count("ipxe-local-boot") == 2


def served(status: str) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("zone_http_requests_total",
                                     {"endpoint": "/boot/ipxe", "status": status}) or 0


def test_lean_requests_are_counted_and_errors_answered_by_the_one_mapping(app, http_store):
    client = app.test_client()
    before = served("200"), served("500")
    client.get("/boot/ipxe", **from_address(U03))
    assert served("200") == before[0] + 1
    http_store.close()  # the state read fails: 500, logged, never a crash of the worker
    r = client.get("/boot/ipxe", **from_address(U03))
    assert (r.status_code, r.data) == (500, b"internal error\n")
    assert served("500") == before[1] + 1
