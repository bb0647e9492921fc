"""The HTTP service under real gunicorn, spoken to by real curl from nodes' own addresses."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from prometheus_client.parser import text_string_to_metric_families

from bootstrap import metrics as shared
from bootstrap.http.core.identify import node_token
from bootstrap.http.serving.wsgi import HttpServer
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone
from http_peers import (API_TOKEN, INITRD, KERNEL, LAB, SECRET, curl, eventually, free_port,
                        gunicorn_zone, loopback_zone, wait_until_up)

U03 = "127.17.1.13"   # p01-u03's provision address in the loopback zone


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with gunicorn_zone(tmp_path_factory.mktemp("http")) as served:
        yield served


def body(*args, **kw) -> str:
    return curl(*args, **kw).stdout.decode()


def test_served_by_gunicorn(live):
    base, _, _ = live
    headers = body("-i", base + "/healthz")
    assert re.search(r"^Server: gunicorn", headers, re.M | re.I)


def test_node_boots_by_its_source_address_and_fetches_what_the_script_names(live):
    base, _, state = live
    script = body(base + "/boot/ipxe", source=U03)
    kernel = re.search(r"^kernel (\S+) ", script, re.M).group(1)
    initrd = re.search(r"^initrd --name initrd (\S+)", script, re.M).group(1)
    assert f"ds=nocloud;s={base}/cloud-init/p01-u03/" in script
    assert curl(kernel, source=U03).stdout == KERNEL
    assert curl(initrd, source=U03).stdout == INITRD
    assert eventually(lambda: Store(state).node("p01-u03")["state"] == "booting")


def test_a_stopping_worker_writes_every_event_it_holds(tmp_path):
    """Workers queue their events for a writer thread; a graceful stop flushes the queue."""
    with gunicorn_zone(tmp_path, workers=1) as (base, _, state):
        for _ in range(20):
            body(base + "/boot/ipxe", source="127.17.1.12")
    events = Store(state).events(node="p01-u02")
    assert [e["kind"] for e in events].count("ipxe-script") == 20
    assert {e["detail"]["address"] for e in events if e["kind"] == "ipxe-script"} == \
        {"127.17.1.12"}


def test_unknown_machine_gets_the_retry_script(live):
    script = body(live[0] + "/boot/ipxe?mac=52:54:00:00:00:01")
    assert script.startswith("#!ipxe") and "sleep 30" in script


def test_cloud_init_only_to_the_node_or_its_token(live):
    base, _, state = live
    ok = curl("-f", base + "/cloud-init/p01-u04/meta-data", source="127.18.1.14")
    assert b"local-hostname: \"p01-u04\"" in ok.stdout
    denied = curl("-o", "/dev/null", "-w", "%{http_code}", base + "/cloud-init/p01-u04/user-data",
                  source=U03)
    assert denied.stdout == b"403"
    token = node_token(SECRET.encode(), "p01-u04")
    assert curl("-f", f"{base}/cloud-init/p01-u04/user-data?token={token}").returncode == 0
    denied_events = eventually(lambda: Store(state).events(kind="cloud-init-denied"))
    assert [(e["node"], e["detail"]["address"]) for e in denied_events] == [("p01-u04", U03)]


def test_phone_home_as_cloud_init_posts_it(live):
    base, _, state = live
    out = body("-f", "-X", "POST", "--data-urlencode", "pub_key_ed25519=ssh-ed25519 AAAAC3Nz u03",
               "--data-urlencode", "instance_id=iid-p01-u03",
               "--data-urlencode", "hostname=p01-u03",
               base + "/phone-home/p01-u03", source=U03)
    assert '"state":"installed"' in out.replace(" ", "")
    node = Store(state).node("p01-u03")
    assert node["state"] == "installed"
    assert node["data"]["ssh_host_keys"] == {"pub_key_ed25519": "ssh-ed25519 AAAAC3Nz u03"}
    for _ in range(4):  # every worker, whatever it cached, now sends it to its disk
        script = body(base + "/boot/ipxe", source=U03)
        assert "already installed" in script and "kernel" not in script


def test_range_and_etag_with_curl(live):
    base = live[0]
    url = base + "/files/images/debian-12/linux"
    part = curl("-f", "-r", "1000-1999", url)
    assert part.stdout == KERNEL[1000:2000]
    headers = body("-I", url)
    etag = re.search(r"^etag: (\S+)", headers, re.M | re.I).group(1)
    again = curl("-o", "/dev/null", "-w", "%{http_code}", "-H", f"If-None-Match: {etag}", url)
    assert again.stdout == b"304"
    full = curl("-f", url).stdout
    assert hashlib.sha256(full).digest() == hashlib.sha256(KERNEL).digest()
    climb = curl("-o", "/dev/null", "-w", "%{http_code}", "--path-as-is",
                 base + "/files/images/../lab.yml")
    assert climb.stdout == b"403"


def test_api_changes_need_the_token_over_the_wire(live):
    base = live[0]
    url = base + "/api/v1/nodes/p01-u02"
    data = ["-H", "Content-Type: application/json", "-X", "PATCH", "-d", '{"state": "discovered"}']
    refused = curl("-o", "/dev/null", "-w", "%{http_code}", *data, url)
    assert refused.stdout == b"401"
    done = body("-f", *data, "-H", f"Authorization: Bearer {API_TOKEN}", url)
    assert '"state":"discovered"' in done.replace(" ", "")


def test_metrics_over_the_wire_include_the_parent_process_counters(live):
    """DHCP counts in zone serve's process; the gunicorn child's /metrics shows them too."""
    shared.DHCP_ANSWERS.labels(type="http-test-offer").inc(3)
    text = body("-f", live[0] + "/metrics")
    assert 'zone_nodes{kind="server",state="planned"}' in text
    assert "zone_http_requests_total{" in text
    assert 'zone_dhcp_answers_total{type="http-test-offer"} 3.0' in text
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), " ".join(sorted(names))  # each family once: valid


ORPHAN_CHECK = """
import sys, threading
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone
from bootstrap.http.serving.wsgi import HttpServer
plan = compile_plan(load_zone(sys.argv[1]))
server = HttpServer(plan, Store(sys.argv[2]), "127.0.0.1", int(sys.argv[3]))
threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Event().wait()
"""


def test_gunicorn_does_not_outlive_a_killed_zone_serve(tmp_path):
    """zone serve killed with SIGKILL cannot stop its HTTP child: the child stops itself."""
    port = free_port()
    zone = loopback_zone(tmp_path, port)
    parent = subprocess.Popen([sys.executable, "-c", ORPHAN_CHECK, zone,
                               str(tmp_path / "zone.db"), str(port)])
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        children = subprocess.run(["pgrep", "-P", str(parent.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert len(children) == 1
        parent.kill()
        parent.wait()
        child = int(children[0])
        for _ in range(300):  # bounded wait, not a timing assertion
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            if open(f"/proc/{child}/stat").read().split()[2] == "Z":
                break
            time.sleep(0.05)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError("the gunicorn master outlived its parent")
        assert curl("-o", "/dev/null", f"http://127.0.0.1:{port}/healthz", check=False).returncode
    finally:
        if parent.poll() is None:
            parent.kill()


def test_the_gunicorn_command_line_entry(tmp_path):
    """``gunicorn 'bootstrap.http.wsgi:app_from_env()'`` as an operator would run it."""
    port = free_port()
    env = dict(os.environ, ZONE_FILE=loopback_zone(tmp_path, port),
               ZONE_STATE=str(tmp_path / "zone.db"))
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w", "1",
                             "bootstrap.http.wsgi:app_from_env()"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        script = body(f"http://127.0.0.1:{port}/boot/ipxe", source=U03)
        assert "/cloud-init/p01-u03/" in script
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_standalone_entry_registers_the_service_with_the_zone_digest(tmp_path):
    """``python3 -m bootstrap.http.wsgi ZONE`` records itself for ``zone status``."""
    port = free_port()
    zone = loopback_zone(tmp_path, port)
    state = str(tmp_path / "zone.db")
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.http.wsgi", zone, "--state", state,
                             "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        digest = body(f"http://127.0.0.1:{port}/healthz")
        services = Store(state).services()
        assert [(s["kind"], s["address"]) for s in services] == [("http", f"127.0.0.1:{port}")]
        assert services[0]["zone_digest"] in digest
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0  # SIGTERM: a clean, graceful stop


def test_in_memory_store_is_served_on_a_thread():
    plan = compile_plan(load_zone(LAB))
    store = Store(":memory:")
    store.seed(plan)
    server = HttpServer(plan, store, "127.0.0.1", free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        wait_until_up(f"http://127.0.0.1:{server.port}/healthz")
        assert server.proc is None and server.local is not None
    finally:
        server.shutdown()
        thread.join(timeout=10)
    assert not thread.is_alive()
