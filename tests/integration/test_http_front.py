"""The nginx front under real nginx and gunicorn, spoken to by real curl from nodes' addresses."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading

import pytest

from bootstrap.errors import WorkError
from bootstrap.http import create_app
from bootstrap.http.serving.front import LogFollower, parse_line
from bootstrap.http.serving.wsgi import HttpServer
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone
from http_peers import (API_TOKEN, SECRET, curl, eventually, free_port, loopback_zone, served_zone,
                        wait_until_up)

NGINX = "/usr/sbin/nginx"
U02, U03, U04 = "127.17.1.12", "127.17.1.13", "127.17.1.14"
pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="needs Debian nginx-light")


@pytest.fixture(scope="module")
def fronted(tmp_path_factory):
    """The loopback lab zone behind nginx; yields (base URL, server, state path, plan)."""
    with served_zone(tmp_path_factory.mktemp("front"), workers=1, front="nginx") as served:
        base, server, plan, state = served
        yield base, server, state, plan
    assert server.nginx.proc.poll() is not None and not os.path.exists(server.nginx.folder)


def get(url: str, source: str | None = None) -> tuple[str, str]:
    """(headers, body) of a GET."""
    out = curl("-i", url, source=source).stdout.decode()
    head, _, body = out.partition("\r\n\r\n")
    return head, body


def flask_script(plan, address: str) -> str:
    """What the app itself answers for ``address`` while its node is still planned."""
    store = Store(":memory:")
    store.seed(plan)
    app = create_app(plan, store, {"NODE_SECRET": SECRET})
    return app.test_client().get("/boot/ipxe", environ_base={"REMOTE_ADDR": address}).text


def test_nginx_serves_the_flask_script_and_the_follower_records_the_boot(fronted):
    base, server, state, plan = fronted
    expected = flask_script(plan, U02)
    head, body = get(base + "/boot/ipxe", source=U02)
    assert re.search(r"^Server: nginx", head, re.M | re.I)
    assert body == expected and "/cloud-init/p01-u02/" in body
    with open(os.path.join(server.nginx.folder, "boot.log")) as fh:  # nginx answered it
        assert f"{U02} 200\n" in fh.read()
    assert eventually(lambda: Store(state).node("p01-u02")["state"] == "booting")
    events = eventually(lambda: Store(state).events(node="p01-u02", kind="ipxe-script"))
    assert [e["detail"]["address"] for e in events] == [U02]
    assert events[0]["source"] == "http"


def test_unknown_address_and_query_string_fall_through_to_flask(fronted):
    base, server, state, _ = fronted
    head, body = get(base + "/boot/ipxe", source="127.17.9.99")
    assert "sleep 30" in body and re.search(r"^Server: nginx", head, re.M | re.I)
    unknown = eventually(lambda: Store(state).events(kind="ipxe-unknown"))
    assert [e["detail"]["address"] for e in unknown] == ["127.17.9.99"]  # the client, via XFF
    with open(os.path.join(server.nginx.folder, "boot.log")) as fh:  # not answered by nginx
        assert "127.17.9.99" not in fh.read()
    _, body = get(base + "/boot/ipxe?mac=52:54:00:00:00:01", source=U04)
    assert body.startswith("#!ipxe") and "/cloud-init/p01-u04/" in body  # by address, in Flask
    assert curl("-f", base + "/healthz").returncode == 0


def test_after_phone_home_nginx_serves_the_local_boot_script(fronted):
    base, server, state, _ = fronted
    assert "kernel" in get(base + "/boot/ipxe", source=U03)[1]
    out = curl("-f", "-X", "POST", "--data-urlencode", "hostname=p01-u03",
               base + "/phone-home/p01-u03", source=U03).stdout.decode()
    assert '"state":"installed"' in out.replace(" ", "")
    head, body = get(base + "/boot/ipxe", source=U03)
    assert re.search(r"^Server: nginx", head, re.M | re.I)
    assert "already installed" in body and "kernel" not in body
    with open(os.path.join(server.nginx.scripts, U03)) as fh:  # served from its file
        assert fh.read() == body
    assert eventually(lambda: Store(state).events(node="p01-u03", kind="ipxe-local-boot"))


def test_follower_survives_bad_lines_truncation_and_rotation(tmp_path):
    path = tmp_path / "boot.log"
    seen, failed = [], []

    def on_boot(address):
        if address == "127.0.0.66":
            failed.append(address)
            raise RuntimeError("a failing handler is skipped too")
        seen.append(address)
    follower = LogFollower(str(path), on_boot, interval=0.01).start()
    try:
        path.write_bytes(b"127.0.0.1 200\n\xff\xfe garbage\nnonsense\n127.0.0.66 200\n"
                         b"127.0.0.2 404\n127.0.0.3 200\n")
        assert eventually(lambda: seen == ["127.0.0.1", "127.0.0.3"])
        path.write_bytes(b"127.0.0.4 200\n")  # truncated and written again
        assert eventually(lambda: seen[-1:] == ["127.0.0.4"])
        os.rename(path, tmp_path / "boot.log.1")  # rotated: a new file at the path
        path.write_bytes(b"127.0.0.5 200\n127.0.0.6 2")
        assert eventually(lambda: seen[-1:] == ["127.0.0.5"])
        with open(path, "ab") as fh:  # the rest of a line written in two pieces
            fh.write(b"00\n")
        assert eventually(lambda: seen[-1:] == ["127.0.0.6"])
    finally:
        follower.stop()
    assert failed == ["127.0.0.66"] and follower.skipped == 4
    assert not follower.thread.is_alive()


def test_parse_line():
    assert parse_line("10.0.0.1 200") == "10.0.0.1"
    assert parse_line("10.0.0.1 404") is None
    assert parse_line("../etc 200") is None and parse_line("") is None


def test_zone_serve_with_the_nginx_front_stops_with_it(tmp_path):
    """``zone serve --http-front nginx``: nginx answers boots; SIGTERM stops nginx too."""
    port = free_port()
    zone = loopback_zone(tmp_path, port)
    state = str(tmp_path / "state" / "zone.db")
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.cli", "serve", zone, "--state", state,
                             "--bind", "127.0.0.1", "--http-port", str(port),
                             "--http-front", "nginx",
                             "--no-dhcp", "--no-tftp", "--no-dns"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        head, body = get(f"http://127.0.0.1:{port}/boot/ipxe", source=U04)
        assert re.search(r"^Server: nginx", head, re.M | re.I) and "/cloud-init/p01-u04/" in body
        assert eventually(lambda: Store(state).node("p01-u04")["state"] == "booting")
        nginx = [int(p) for p in subprocess.run(["pgrep", "-f", f"nginx: master.*{tmp_path}"],
                                                capture_output=True, text=True).stdout.split()]
        assert len(nginx) == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    assert eventually(lambda: not os.path.exists(f"/proc/{nginx[0]}") or
                      open(f"/proc/{nginx[0]}/stat").read().split()[2] == "Z")
    assert not [p for p in os.listdir(tmp_path / "state") if p.startswith("zone-front-")]


def fronted_server(tmp_path, port: int) -> HttpServer:
    """An HttpServer with the nginx front for the loopback lab zone, not yet started."""
    plan = compile_plan(load_zone(loopback_zone(tmp_path, port)))
    store = Store(str(tmp_path / "zone.db"))
    store.seed(plan)
    return HttpServer(plan, store, "127.0.0.1", port, workers=1, front="nginx",
                      config={"NODE_SECRET": SECRET})


def test_nginx_that_cannot_listen_fails_the_service_with_its_reason(tmp_path):
    port = free_port()
    server = fronted_server(tmp_path, port)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))  # bound, not listening: nginx's bind fails
        try:
            with pytest.raises(WorkError, match="nginx did not start.*(in use|bind)"):
                server.serve_forever()
        finally:
            server.shutdown()
    assert server.proc is None and server.nginx.proc.poll() is not None
    assert not os.path.exists(server.nginx.folder)


def test_nginx_dying_while_serving_stops_the_service_with_an_error(tmp_path):
    port = free_port()
    server = fronted_server(tmp_path, port)
    errors = []

    def run():
        try:
            server.serve_forever()
        except WorkError as exc:
            errors.append(exc)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz")
        server.nginx.proc.kill()
        thread.join(timeout=30)
        assert errors and server.proc.poll() is not None  # gunicorn stopped with it
    finally:
        server.shutdown()
        thread.join(timeout=20)


def test_a_state_moved_by_the_api_reaches_the_file_on_its_next_hit(fronted):
    base, server, state, _ = fronted
    auth = ["-H", f"Authorization: Bearer {API_TOKEN}", "-H", "Content-Type: application/json"]
    curl("-f", *auth, "-X", "PATCH", "-d", '{"state": "booting"}', base + "/api/v1/nodes/p01-u01")
    curl("-f", *auth, "-X", "PATCH", "-d", '{"state": "installed"}', base + "/api/v1/nodes/p01-u01")
    assert Store(state).node("p01-u01")["state"] == "installed"
    path = os.path.join(server.nginx.scripts, "127.17.1.11")
    get(base + "/boot/ipxe", source="127.17.1.11")  # may still be the stale install script

    def rewritten():
        with open(path) as fh:
            return "already installed" in fh.read()
    assert eventually(rewritten)
    assert "already installed" in get(base + "/boot/ipxe", source="127.17.1.11")[1]
