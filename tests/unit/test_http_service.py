"""Metrics, health, the status page, the template context and the error mapping."""

from __future__ import annotations

import time

import pytest
from jinja2 import UndefinedError
from werkzeug.exceptions import MethodNotAllowed

from bootstrap.errors import InputError, WorkError
from bootstrap.http.core.context import build_context
from bootstrap.http.core.problems import Conflict, Forbidden, status_of
from http_helpers import make_app



def sample(text: str, name: str, **labels) -> float | None:
    """The value of one Prometheus sample in an exposition text, or None."""
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_count_requests_and_nodes_by_state(client, http_store):
    before = sample(client.get("/metrics").get_data(as_text=True), "zone_http_requests_total",
                    endpoint="/healthz", status="200") or 0
    client.get("/healthz")
    client.get("/nope")
    http_store.transition("p01-u01", "booting")
    text = client.get("/metrics").get_data(as_text=True)
    assert sample(text, "zone_http_requests_total", endpoint="/healthz", status="200") == before + 1
    assert sample(text, "zone_http_requests_total", endpoint="unmatched", status="404") >= 1
    assert sample(text, "zone_nodes", kind="server", state="booting") == 1
    assert sample(text, "zone_nodes", kind="server", state="planned") == 3
    assert sample(text, "zone_nodes", kind="switch", state="planned") == 5
    assert "zone_dhcp_answers_total" in text


def test_healthz_ok_and_unhealthy_when_the_store_is_gone(client, http_store):
    body = client.get("/healthz").json
    assert body["status"] == "ok" and body["nodes"] == 13
    http_store.close()
    assert client.get("/healthz").status_code == 503


def test_status_page_lists_pods_nodes_and_events(client, http_store):
    http_store.transition("p01-u04", "booting", source="dhcp")
    html = client.get("/").get_data(as_text=True)
    for name in ("p01-u01", "p01-u04", "p01-tor-a", "core-1"):
        assert f">{name}</span>" in html
    assert 'class="node s-booting" title="server: booting">p01-u04<' in html
    assert "status.json" in html and "setInterval(poll, 2000)" in html
    status = client.get("/status.json").json
    pod = {p["name"]: p for p in status["pods"]}["p01"]
    assert pod["counts"] == {"planned": 10, "booting": 1}
    assert status["events"][-1]["node"] == "p01-u04"


def test_big_zones_show_counts_not_every_node(http_plan, http_store):
    client = make_app(http_plan, http_store, STATUS_NODE_LIMIT=5).test_client()
    status = client.get("/status.json").json
    assert all(p["nodes"] == [] for p in status["pods"]) and status["total"] == 13


def test_status_page_escapes_what_it_shows(client, http_store):
    http_store.event("<script>alert(1)</script>", "p01-u01", "test")
    html = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


def test_context_is_built_in_one_place(http_plan):
    from bootstrap.http.core.settings import DEFAULTS, site_settings
    settings = {**DEFAULTS, **site_settings(http_plan.zone)}   # as the app factory layers them
    node = http_plan.nodes["p01-u03"]
    ctx = build_context(http_plan, settings, "http://c:8080", node, {"state": "booting"})
    assert ctx["urls"]["seed"] == "http://c:8080/cloud-init/p01-u03/"
    assert ctx["image"]["kernel"] == "http://c:8080/files/images/debian-12/linux"
    assert ctx["subnets"]["provision"]["gateway"] == "10.17.1.1"
    assert ctx["state"] == "booting" and ctx["zone"]["dns"] == []  # "c" is not an address
    assert "node" not in build_context(http_plan, settings, "http://c")


def test_templates_are_strict(app):
    with app.app_context():
        template = app.jinja_env.from_string("{{ node.no_such_key }}")
        with pytest.raises(UndefinedError):
            template.render(node={"name": "x"})


def test_one_mapping_from_errors_to_status():
    assert status_of(Forbidden("x")) == 403 and status_of(Conflict("x")) == 409
    assert status_of(InputError("x")) == 400 and status_of(WorkError("x")) == 502
    assert status_of(MethodNotAllowed()) == 405 and status_of(KeyError("x")) == 500


def test_a_failing_view_is_a_500_text_answer_not_a_crash(http_plan, http_store):
    app = make_app(http_plan, http_store, TEMPLATES_DIR="/nonexistent")
    r = app.test_client().get("/boot/ipxe")
    assert r.status_code == 500 and r.get_data(as_text=True) == "internal error\n"
    assert app.test_client().get("/healthz").status_code == 200


def test_metrics_still_answer_when_the_parent_exporter_is_gone(http_plan, http_store):
    client = make_app(http_plan, http_store,
                      PARENT_METRICS_URL="http://127.0.0.1:1/metrics").test_client()
    r = client.get("/metrics")
    assert r.status_code == 200 and b'zone_nodes{kind="bmc",state="planned"} 4.0' in r.data


def test_parent_families_leave_out_what_this_process_owns():
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from bootstrap.http.views.metrics import foreign_families
    reg = CollectorRegistry()
    Counter("zone_http_requests_total", "x", ["endpoint"], registry=reg).labels("/").inc()
    Counter("zone_dhcp_answers_total", "x", ["type"], registry=reg).labels("offer").inc(2)
    Counter("other_total", "x", registry=reg).inc()
    names = {f.name for f in foreign_families(generate_latest(reg).decode())}
    assert names == {"zone_dhcp_answers", "zone_dhcp_answers_created"}


def test_batched_events_are_written_by_a_thread_and_flushed_on_close(http_plan, http_store):
    from http_helpers import from_address, kinds
    app = make_app(http_plan, http_store, EVENT_BATCH=True)
    for _ in range(3):
        assert app.test_client().get("/boot/ipxe", **from_address("10.17.1.13")).status_code == 200
    svc = app.extensions["zone"]
    assert svc.events.writer is not None and svc.events.writer.store is not http_store
    svc.close()
    events = http_store.events(node="p01-u03")
    assert sorted(e["kind"] for e in events) == ["ipxe-script"] * 3 + ["state"]
    # a request may see "planned" before the move it queued landed: still one move is made
    assert [e["detail"] for e in events if e["kind"] == "state"] == \
        [{"from": "planned", "to": "booting", "by": "address"}]
    assert http_store.node("p01-u03")["state"] == "booting"
    svc.event("after-close", "p01-u03", address=None)  # straight to the store once closed
    assert kinds(http_store, "p01-u03")[-1] == "after-close"


def test_a_memory_store_is_never_batched(http_plan):
    from bootstrap.http.core.service import EventSink
    from bootstrap.state import Store
    assert EventSink(Store(":memory:"), batch=True).batch is False


def test_warmed_scripts_are_what_workers_serve(http_plan, http_store):
    from bootstrap.http.serving.wsgi import _worker_factory
    from http_helpers import from_address
    scripts = make_app(http_plan, http_store).extensions["zone"].warm()
    servers = [n.name for n in http_plan.servers() if n.image]
    assert sorted(name for _, name, *_ in scripts) == sorted(servers) and len(servers) == 4
    fresh = make_app(http_plan, http_store).test_client()
    assert fresh.get("/boot/ipxe", **from_address("10.17.1.13")).get_data(as_text=True) == \
        scripts[("ipxe.ipxe", "p01-u03")]
    marked = {key: "#!ipxe\n# from the master\n" for key in scripts}
    worker = _worker_factory(http_plan, http_store.path, {"NODE_SECRET": "s"}, marked)()
    body = worker.test_client().get("/boot/ipxe", **from_address("10.17.1.14")).get_data()
    assert body == b"#!ipxe\n# from the master\n"
    worker.extensions["zone"].close()
    worker.extensions["zone"].store.close()


def test_a_fronted_workers_phone_home_rewrites_the_nodes_file(http_plan, http_store, tmp_path):
    """The view only announces the move (on_state_change); the serving layer's hook
    writes the file nginx answers from, and only behind a front."""
    from bootstrap.http.serving.wsgi import _worker_factory
    from http_helpers import from_address
    assert make_app(http_plan, http_store).extensions["zone"].on_state_change == []
    config = {"NODE_SECRET": "s", "FRONT_DIR": str(tmp_path)}
    worker = _worker_factory(http_plan, http_store.path, config, {})()
    r = worker.test_client().post("/phone-home/p01-u03", data={"hostname": "u03"},
                                  **from_address("10.17.1.13"))
    assert r.status_code == 200 and r.get_json()["state"] == "installed"
    assert "exit" in (tmp_path / "10.17.1.13").read_text()  # the local-boot script
    worker.extensions["zone"].close()
    worker.extensions["zone"].store.close()


def test_a_workers_events_are_written_in_paced_batches(http_store):
    """The writer takes what is queued as soon as one event arrives; the pause after each
    batch is what lets events pile up (else a transaction per request)."""
    from bootstrap.http.core.service import _Batches
    from bootstrap.state import EventWriter
    sizes = []

    class Counting(_Batches):
        def add_events(self, items):
            sizes.append(len(items))
            super().add_events(items)

    writer = EventWriter(Counting(http_store, pace=0.5))
    for i in range(50):  # requests a few ms apart, as a busy worker's
        writer.put("ipxe-script", "p01-u01", "http", n=i)
        time.sleep(0.002)
    writer.close()
    assert sum(sizes) == 50 and len(sizes) <= 3, sizes
    assert [e["detail"]["n"] for e in http_store.events(kind="ipxe-script")] == list(range(50))
