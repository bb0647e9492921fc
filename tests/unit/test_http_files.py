"""``/files/``: Range, ETag, Last-Modified; nothing outside the served folders."""

from __future__ import annotations

import os

import pytest

from http_helpers import make_app


FIRMWARE = "/files/firmware/bios-2.4.1.bin"


@pytest.fixture
def root(tmp_path):
    (tmp_path / "images" / "debian-12").mkdir(parents=True)
    (tmp_path / "images" / "debian-12" / "linux").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bmc.pass").write_text("hunter2")
    (tmp_path / "images" / ".hidden").write_text("no")
    os.symlink(tmp_path / "secrets" / "bmc.pass", tmp_path / "images" / "escape")
    return tmp_path


@pytest.fixture
def files(http_plan, http_store, root):
    return make_app(http_plan, http_store, FILES_ROOT=str(root)).test_client()


def test_range_request_gets_206_and_exactly_those_bytes(files):
    r = files.get("/files/images/debian-12/linux", headers={"Range": "bytes=256-511"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == "bytes 256-511/10240"
    assert r.data == bytes(range(256))
    tail = files.get("/files/images/debian-12/linux", headers={"Range": "bytes=-4"})
    assert tail.data == bytes([252, 253, 254, 255])


def test_etag_and_last_modified_give_304(files):
    first = files.get("/files/images/debian-12/linux")
    assert first.status_code == 200 and len(first.data) == 10240
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    again = files.get("/files/images/debian-12/linux", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    since = files.get("/files/images/debian-12/linux", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    head = files.head("/files/images/debian-12/linux")
    assert head.status_code == 200 and head.headers["Content-Length"] == "10240"


@pytest.mark.parametrize("path", [
    "/files/images/../secrets/bmc.pass", "/files/images/%2e%2e/secrets/bmc.pass",
    "/files/images/.hidden", "/files/images/escape", "/files/images//etc/passwd",
    "/files/..%2fsecrets/bmc.pass"])
def test_climbing_out_is_refused_with_an_event(files, http_store, path):
    r = files.get(path)
    assert r.status_code in (403, 404) and b"hunter2" not in r.data
    if r.status_code == 403:
        assert http_store.events(kind="files-refused")


def test_traversal_is_403_not_a_quiet_404(files, http_store):
    assert files.get("/files/images/../secrets/bmc.pass").status_code == 403
    assert files.get("/files/images/escape").status_code == 403
    assert http_store.events(kind="files-refused")[0]["detail"]["reason"]


def test_the_bmc_password_file_is_never_served(http_plan, http_store, tmp_path):
    import dataclasses
    zone = dataclasses.replace(http_plan.zone, source=str(tmp_path / "lab.yml"),
                               credentials=dataclasses.replace(
                                   http_plan.zone.credentials, password_file="firmware/bmc.pass"))
    plan = dataclasses.replace(http_plan, zone=zone)
    (tmp_path / "firmware").mkdir()
    (tmp_path / "firmware" / "bmc.pass").write_text("hunter2")
    client = make_app(plan, http_store).test_client()  # files root: the zone's folder
    assert client.get("/files/firmware/bmc.pass").status_code == 403


def test_only_the_zones_folders_are_served(files):
    assert files.get("/files/secrets/bmc.pass").status_code == 404
    assert files.get("/files/state/zone.db").status_code == 404


def test_firmware_from_the_zone_folder_and_ipxe_binaries_by_name(client):
    assert client.get(FIRMWARE).data.startswith(b"LAB-FIRMWARE")
    if os.path.exists("/usr/lib/ipxe/undionly.kpxe"):
        r = client.get("/files/undionly.kpxe", headers={"Range": "bytes=0-1"})
        assert r.status_code == 206 and len(r.data) == 2
    assert client.get("/files/no-such-binary.efi").status_code == 404
