"""Credentials, TLS settings, endpoints, retry policy and images: no BMC needed."""

import hashlib
import urllib.error
import urllib.request

import pytest
import requests

from bootstrap.errors import InputError
from bootstrap.redfish import client as rc
from bootstrap.redfish import images
from bootstrap.redfish.errors import ImageMismatch
from bootstrap.zone import parse_zone_text


def zone_with(lab_text, tmp_path, credentials, redfish=None):
    text = lab_text.replace("  bmc: {username: admin, password_file: secrets/bmc.pass}",
                            f"  bmc: {credentials}")
    if redfish:
        text = text.replace('  verify_tls: false', redfish)
    path = tmp_path / "zone.yml"
    path.write_text(text)
    return parse_zone_text(text, str(path))


def test_password_file_is_relative_to_zone_and_never_in_repr(lab_zone):
    creds = rc.load_credentials(lab_zone)
    with open(lab_zone.path("secrets/bmc.pass")) as fh:
        assert creds.password == fh.read().rstrip("\n")
    assert creds.password not in repr(creds) and creds.username == "admin"


def test_password_env(lab_text, tmp_path, monkeypatch):
    zone = zone_with(lab_text, tmp_path, "{username: root, password_env: BMC_PW_TEST}")
    monkeypatch.setenv("BMC_PW_TEST", "s3cret")
    assert rc.load_credentials(zone) == rc.Credentials("root", "s3cret")
    monkeypatch.delenv("BMC_PW_TEST")
    with pytest.raises(InputError, match=r"\$BMC_PW_TEST is not set"):
        rc.load_credentials(zone)


def test_missing_password_file_is_bad_input(lab_text, tmp_path):
    zone = zone_with(lab_text, tmp_path, "{username: admin, password_file: nope.pass}")
    with pytest.raises(InputError, match="nope.pass"):
        rc.load_credentials(zone)


def test_tls_verifies_by_default_and_off_only_when_asked(lab_text, tmp_path, lab_zone):
    zone = zone_with(lab_text, tmp_path, "{username: admin, password_file: x}",
                     redfish="  verify_tls: true")
    assert rc.tls_settings(zone) == rc.Tls(True, None)
    assert rc.tls_settings(zone).cafile == requests.certs.where()   # never the library's "no verify"
    assert rc.tls_settings(zone, insecure=True).cafile is None
    assert rc.tls_settings(lab_zone).verify is False          # the lab zone says verify_tls: false
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    zone = zone_with(lab_text, tmp_path, "{username: admin, password_file: x}",
                     redfish="  verify_tls: true\n  ca_file: ca.pem")
    assert rc.tls_settings(zone).cafile == str(ca)


def test_endpoint_templates_over_the_plan(lab_zone, lab_plan):
    ep = rc.endpoint_for(lab_zone, lab_plan.nodes["p01-u03-bmc"])
    assert ep == rc.Endpoint("p01-u03-bmc", "http://127.0.0.1:8000", "p01-u03")


def test_verify_images_refuses_every_mismatch(lab_zone, tmp_path):
    fw = lab_zone.firmware["bios-2.4.1"]
    assert set(images.verify_images(lab_zone, [fw])) == {"bios-2.4.1"}
    bad = fw.__class__("bad", "BIOS", "9", fw.image, "0" * 64)
    gone = fw.__class__("gone", "BMC", "9", "firmware/none.bin", "0" * 64)
    with pytest.raises(ImageMismatch) as err:
        images.verify_images(lab_zone, [fw, bad, gone])
    text = str(err.value)
    assert "firmware.bad" in text and "firmware.gone" in text and "nothing was sent" in text


def test_image_server_serves_only_verified_images(lab_zone):
    found = images.verify_images(lab_zone, [lab_zone.firmware["bios-2.4.1"]])
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with images.ImageServer(found) as server:
        url = images.image_url(server.base_url, found["bios-2.4.1"])
        assert url.endswith("/files/firmware/bios-2.4.1.bin")
        blob = opener.open(url, timeout=5).read()
        assert hashlib.sha256(blob).hexdigest() == found["bios-2.4.1"].sha256
        for path in ("/files/secrets/bmc.pass", "/files/firmware/../secrets/bmc.pass", "/zone.yml"):
            with pytest.raises(urllib.error.HTTPError) as err:
                opener.open(server.base_url.rsplit("/files", 1)[0] + path, timeout=5)
            assert err.value.code == 404


def test_absolute_images_are_published_by_name(tmp_path):
    assert images._url_path(str(tmp_path / "x.bin")) == "firmware/x.bin"
    assert images._url_path("fw/x.bin") == "fw/x.bin"


def test_image_server_on_an_address_we_do_not_have_is_bad_input(lab_zone):
    found = images.verify_images(lab_zone, [lab_zone.firmware["bios-2.4.1"]])
    with pytest.raises(InputError, match="--image-bind"):
        images.ImageServer(found, bind="192.0.2.1")      # TEST-NET-1: never ours
