"""``/boot/ipxe``: the node's own script by source address, mac, uuid or serial."""

from __future__ import annotations

from http_helpers import from_address, kinds


U03 = "10.17.1.13"  # p01-u03's provision address in examples/lab.yml


def test_known_address_gets_its_install_script(client, http_store):
    r = client.get("/boot/ipxe", **from_address(U03))
    body = r.get_data(as_text=True)
    assert r.status_code == 200 and body.startswith("#!ipxe\n")
    base = "http://10.17.0.2:8080"
    assert (f"kernel {base}/files/images/debian-12/linux initrd=initrd "
            f"auto=true priority=critical ds=nocloud;s={base}/cloud-init/p01-u03/ ") in body
    assert f"initrd --name initrd {base}/files/images/debian-12/initrd.gz" in body
    assert http_store.node("p01-u03")["state"] == "booting"
    assert kinds(http_store, "p01-u03") == ["ipxe-script", "state"]


def test_other_addresses_of_the_node_identify_it_too(client):
    body = client.get("/boot/ipxe", **from_address("10.18.1.14")).get_data(as_text=True)
    assert "s=http://10.17.0.2:8080/cloud-init/p01-u04/" in body


def test_unknown_requester_waits_and_retries(client, http_store):
    r = client.get("/boot/ipxe?mac=52:54:00:00:00:99&serial=X%201", **from_address("10.99.0.5"))
    body = r.get_data(as_text=True)
    assert r.status_code == 200
    assert "sleep 30" in body and "goto retry" in body
    assert "/boot/ipxe?mac=${net0/mac}&uuid=${uuid:uristring}&serial=${serial:uristring}" in body
    event = http_store.events(kind="ipxe-unknown")[-1]
    assert event["detail"] == {"address": "10.99.0.5", "mac": "52:54:00:00:00:99",
                               "serial": "X 1"}


def test_known_mac_uuid_and_serial_identify_the_node(client, http_store):
    http_store.update("p01-u02", mac="52:54:00:aa:bb:02")
    http_store.update("p01-u01", serial="SN-0001", uuid="0C3E51A4-1111-2222-3333-444455556666")
    outside = from_address("192.0.2.9")
    cases = {"mac=52-54-00-AA-BB-02": "p01-u02", "serial=sn-0001": "p01-u01",
             "uuid=0c3e51a4-1111-2222-3333-444455556666": "p01-u01"}
    for query, name in cases.items():
        body = client.get(f"/boot/ipxe?{query}", **outside).get_data(as_text=True)
        assert f"/cloud-init/{name}/" in body, query


def test_installed_node_boots_from_disk(client, http_store):
    http_store.transition("p01-u03", "installed")
    body = client.get("/boot/ipxe", **from_address(U03)).get_data(as_text=True)
    assert "already installed" in body and body.rstrip().endswith("exit")
    assert "kernel" not in body
    assert http_store.node("p01-u03")["state"] == "installed"


def test_bmc_or_switch_address_gets_no_install(client, http_store):
    body = client.get("/boot/ipxe", **from_address("10.16.1.13")).get_data(as_text=True)
    assert "no boot image" in body and "kernel" not in body
    assert http_store.node("p01-u03-bmc")["state"] == "planned"


def test_retry_delay_is_configurable(http_plan, http_store):
    from http_helpers import make_app
    app = make_app(http_plan, http_store, RETRY_SECONDS=7)
    body = app.test_client().get("/boot/ipxe").get_data(as_text=True)
    assert "sleep 7" in body


def test_an_unknown_machine_retrying_does_not_flood_the_event_log(client, http_store):
    for _ in range(5):
        assert client.get("/boot/ipxe", **from_address("10.99.0.7")).status_code == 200
    client.get("/boot/ipxe", **from_address("10.99.0.8"))
    assert [e["detail"]["address"] for e in http_store.events(kind="ipxe-unknown")] == \
        ["10.99.0.7", "10.99.0.8"]


def test_refusals_are_throttled_per_window_by_the_shared_limiter(app, http_store):
    svc, now = app.extensions["zone"], [0.0]
    svc.throttle.clock = lambda: now[0]
    for now[0] in (0, 29, 31):
        app.test_client().get("/boot/ipxe", **from_address("10.99.0.7"))
    assert len(http_store.events(kind="ipxe-unknown")) == 2
    assert svc.throttle.suppressed == {"ipxe-unknown": 1}  # and zone_suppressed_total
