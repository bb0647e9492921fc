"""A real PXE boot: QEMU's iPXE ROM → our DHCP (through dhcrelay's Option 82) →
our /boot/ipxe → the kernel and initrd over our HTTP → the node's own cloud-init
data → phone-home, which moves it to ``installed`` with its plan identity."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from bootstrap.lab.topology import Lab
from bootstrap.lab.vm import build_payload
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for namespaces")


@pytest.fixture(scope="module")
def pxe_zone(tmp_path_factory):
    """The lab zone in a folder of its own, with the kernel and initrd its image names."""
    folder = tmp_path_factory.mktemp("pxe-zone")
    for item in ("lab.yml", "firmware", "secrets"):
        src = os.path.join(ROOT, "examples", item)
        (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, folder / item)
    text = (folder / "lab.yml").read_text()
    (folder / "lab.yml").write_text(text.replace('cmdline: "', 'cmdline: "console=ttyS0 '))
    kernel, initrd = build_payload()
    (folder / "images" / "debian-12").mkdir(parents=True)
    shutil.copy(kernel, folder / "images" / "debian-12" / "linux")
    shutil.copy(initrd, folder / "images" / "debian-12" / "initrd.gz")
    return str(folder / "lab.yml")


def test_qemu_pxe_boot_reaches_installed(pxe_zone, tmp_path):
    plan = compile_plan(load_zone(pxe_zone))
    store = Store(str(tmp_path / "zone.db"))
    store.seed(plan)
    lab = Lab(plan, "p01", str(tmp_path / "lab"), vm_units={3})
    lab.build()
    try:
        lab.start_services(pxe_zone, store.path, ["--no-tftp", "--no-dns"])
        lab.boot("p01-u03")
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and store.node("p01-u03")["state"] != "installed":
            time.sleep(0.5)
        console = lab.vms["p01-u03"].console_text()
    finally:
        lab.close()
    node = store.node("p01-u03")
    assert node["state"] == "installed", console[-3000:]
    assert "ZONE-PHONED-HOME p01-u03" in console
    leases = store.events(kind="lease", limit=100)
    assert any(e["node"] == "p01-u03" and e["detail"].get("address") == "10.17.1.13"
               for e in leases), leases
    assert node["data"]["hostname"] == "p01-u03"
