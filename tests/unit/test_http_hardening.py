"""Issue 10: what a stranger can do to the HTTP service (rows 2, 13, 14, 15)."""

from __future__ import annotations

import logging
import os
import sys
import tempfile

import pytest

from bootstrap.cli import build_parser
from bootstrap.http.serving.front import resolve_front
from bootstrap.http.serving.heads import request_end
from bootstrap.http.serving.wsgi import front_folder
from bootstrap.serve import ServeOptions
from http_helpers import API_TOKEN, from_address, make_app, token_for

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_zone_serve_puts_the_nginx_front_on_by_default_when_nginx_is_there(caplog):
    args = build_parser().parse_args(["serve", "zone.yml"])
    assert args.http_front == ServeOptions().http_front == "auto"
    with caplog.at_level(logging.INFO, logger="bootstrap.http.front"):
        assert resolve_front("auto", nginx=sys.executable) == "nginx"
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "HTTP front: nginx" in caplog.text


def test_without_nginx_auto_falls_back_to_gunicorn_with_a_warning(caplog, tmp_path):
    with caplog.at_level(logging.INFO, logger="bootstrap.http.front"):
        assert resolve_front("auto", nginx=str(tmp_path / "no-nginx")) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "slow clients" in caplog.text
    assert resolve_front("gunicorn") is None and resolve_front(None) is None
    assert resolve_front("nginx") == "nginx"
    with pytest.raises(ValueError, match="unknown HTTP front"):
        resolve_front("apache")


# --- row 13: every bad input is a 4xx, never a 500; non-finite numbers refused ---

BAD_NODE_BODIES = (b'{"data": {"x": 1e999}}', b'{"data": {"x": NaN}}',
                   b'{"data": {"x": -Infinity}}',
                   b'{"state": ["a"]}', b'{"state": "booting", "reason": {"a": 1}}',
                   b'{"mac": {"a": 1}}', b'{"mac": 5}', b'{"mac": "not-a-mac"}',
                   b'{"data": {"mac": "x"}}', b'{"data": {"name": "x"}}', b'{"data": [1]}',
                   b"[" * 100_000, b"\xff\xfe", b"")
BAD_EVENT_BODIES = (b'{"kind": "x", "detail": {"a": 1e999}}', b'{"kind": "x", "node": ["a"]}',
                    b'{"kind": "x", "node": 5}', b'{"kind": ["x"]}',
                    b'{"kind": "x", "detail": {"kind": "y"}}',
                    b'{"kind": "x", "detail": {"source": "y"}}')


def test_bad_api_input_is_a_4xx_never_a_500(client, http_store):
    huge = client.get("/api/v1/events?since=99999999999999999999")  # no token needed
    assert huge.status_code == 200 and huge.json["events"] == []
    for query in ("limit=-99999999999999999999", "offset=99999999999999999999", "events=1e9"):
        assert client.get(f"/api/v1/nodes?{query}").status_code in (200, 400), query
        assert client.get(f"/api/v1/nodes/p01-u03?{query}").status_code in (200, 400), query
    for body in BAD_NODE_BODIES:
        r = client.patch("/api/v1/nodes/p01-u03", data=body, headers=AUTH,
                         content_type="application/json")
        assert r.status_code == 400 and r.json["status"] == 400, body[:40]
    for body in BAD_EVENT_BODIES:
        r = client.post("/api/v1/events", data=body, headers=AUTH,
                        content_type="application/json")
        assert r.status_code == 400, body[:40]
    assert http_store.node("p01-u03")["data"] == {} and http_store.events(kind="x") == []


JUNK = ("%00", "%ff", "%2e%2e", "a" * 5000, "\u2603", "-1", "9" * 50, "1e999", "NaN", "[]", "'")
URLS = ("/boot/ipxe?mac={}", "/boot/ipxe?uuid={}", "/boot/ipxe?serial={}", "/files/{}",
        "/cloud-init/{}/meta-data", "/onie/{}", "/ztp/sonic/{}.json", "/api/v1/nodes/{}",
        "/api/v1/nodes?limit={}", "/api/v1/nodes?offset={}", "/api/v1/events?since={}",
        "/api/v1/events?limit={}", "/api/v1/nodes/p01-u01?events={}", "/phone-home/{}")


def test_junk_in_any_url_or_body_is_never_a_500(client):
    for url in URLS:
        for junk in JUNK:
            for method in ("GET", "POST", "PATCH"):
                r = client.open(url.format(junk), method=method, headers=AUTH,
                                data=junk.encode(), content_type="application/json")
                assert r.status_code < 500, (method, url.format(junk)[:60], r.status_code)


def test_a_stored_infinity_does_not_break_later_lookups(client, http_store):
    """A database written before the API refused 1e999 may hold Infinity (not JSON)."""
    http_store.update("p01-u02", serial=float("inf"))
    http_store.update("p01-u01", serial="SN-0001")
    for query in ("uuid=abc", "serial=abc"):
        assert client.get(f"/boot/ipxe?{query}").status_code == 200, query
    assert "/cloud-init/p01-u01/" in client.get("/boot/ipxe?serial=sn-0001").text


def test_a_repeating_failure_logs_a_few_lines_not_one_per_request(http_plan, http_store, caplog):
    app = make_app(http_plan, http_store, TEMPLATES_DIR="/nonexistent")
    with caplog.at_level(logging.ERROR, logger="bootstrap.http"):
        for _ in range(50):
            assert app.test_client().get("/boot/ipxe", **from_address("192.0.2.50")).status_code \
                == 500
    assert 1 <= len(caplog.records) <= 10


# --- row 14: MACs only with the token; a state move only by the node or a token ---

MAC = "52:54:00:aa:bb:03"


def test_reads_without_the_token_show_no_mac_address(client, http_store):
    http_store.update("p01-u03", mac=MAC, macs=[MAC, "52:54:00:aa:bb:04"])
    http_store.event("lease", "p01-u03", "dhcp", mac=MAC, note=f"client {MAC.upper()} asked")
    for path in ("/api/v1/events", "/api/v1/nodes", "/api/v1/nodes/p01-u03", "/status.json",
                 "/"):
        anonymous = client.get(path).get_data(as_text=True).lower()
        assert "aa:bb:03" not in anonymous and "aa:bb:04" not in anonymous, path
    for path in ("/api/v1/events", "/api/v1/nodes", "/api/v1/nodes/p01-u03", "/status.json"):
        assert MAC in client.get(path, headers=AUTH).get_data(as_text=True).lower(), path


def test_boot_by_mac_from_a_stranger_moves_no_state(client, http_store):
    http_store.update("p01-u03", mac=MAC)
    stranger = from_address("192.0.2.9")
    for _ in range(5):
        body = client.get(f"/boot/ipxe?mac={MAC}", **stranger).text
        assert "/cloud-init/p01-u03/" in body  # still answered: it names itself
    assert http_store.node("p01-u03")["state"] == "planned"
    assert len(http_store.events(kind="ipxe-script")) == 1  # throttled
    client.get(f"/boot/ipxe?mac={MAC}&token={token_for('p01-u03')}", **stranger)
    assert http_store.node("p01-u03")["state"] == "booting"


def test_boot_by_mac_moves_the_node_from_its_own_address_or_with_the_api_token(client,
                                                                               http_store):
    http_store.update("p01-u03", mac=MAC)
    http_store.update("p01-u04", mac="52:54:00:aa:bb:04")
    client.get(f"/boot/ipxe?mac={MAC}", **from_address("10.17.1.13"))
    client.get("/boot/ipxe?mac=52:54:00:aa:bb:04", headers=AUTH, **from_address("192.0.2.9"))
    assert [http_store.node(n)["state"] for n in ("p01-u03", "p01-u04")] == ["booting"] * 2


def test_ztp_from_a_stranger_moves_no_state(client, http_store):
    for _ in range(5):
        r = client.get("/ztp/sonic/p01-tor-a.json", **from_address("192.0.2.9"))
        assert r.status_code == 200
    assert client.get("/onie/p01-lom", **from_address("192.0.2.9")).status_code == 200
    assert http_store.node("p01-tor-a")["state"] == "planned"
    assert http_store.node("p01-lom")["state"] == "planned"
    assert len(http_store.events(node="p01-tor-a", kind="ztp-served")) == 1  # throttled
    client.get("/ztp/sonic/p01-tor-a.json", **from_address("10.15.1.2"))  # the switch itself
    assert http_store.node("p01-tor-a")["state"] == "ztp"


# --- row 15: no redirect built from the Host header ---

def test_a_doubled_slash_is_not_redirected_to_the_requests_host(client):
    for path in ("/boot//ipxe", "/api/v1//nodes", "/files//ipxe.efi", "/cloud-init/p01-u03//x"):
        r = client.get(path, headers={"Host": "evil.example"})
        assert r.status_code == 404 and "Location" not in r.headers, path
        assert "evil.example" not in r.get_data(as_text=True)


def test_the_gunicorn_worker_hands_over_only_whole_requests():
    head = b"GET /boot/ipxe HTTP/1.1\r\nHost: x\r\n\r\n"
    assert request_end(head[:-1]) is None and request_end(head) == len(head)
    post = b"POST /phone-home/a HTTP/1.1\r\nContent-Length: 5\r\n\r\n"
    assert request_end(post + b"abc") is None and request_end(post + b"abcde") == len(post) + 5
    assert request_end(post + b"abcde" + head) == len(post) + 5  # pipelined: one at a time
    assert request_end(b"G" * (64 * 1024 + 1)) == 64 * 1024 + 1  # gunicorn refuses it
    assert request_end(b"GET / HTTP/1.0\n\nrest") == 16  # bare LF: gunicorn answers 400
    huge = b"POST / HTTP/1.1\r\ncontent-length: 99999999\r\n\r\nab"
    assert request_end(huge) == len(huge)  # too big to hold: the thread streams it


def test_the_front_folder_falls_back_to_the_temp_dir_when_the_state_disk_refuses(tmp_path):
    beside = front_folder(str(tmp_path / "zone.db"))
    assert os.path.dirname(beside) == str(tmp_path)
    elsewhere = front_folder(str(tmp_path / "missing" / "zone.db"))  # mkdtemp there fails
    try:
        assert os.path.dirname(elsewhere) == tempfile.gettempdir()
    finally:
        os.rmdir(elsewhere)
    os.rmdir(beside)
