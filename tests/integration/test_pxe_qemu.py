"""A real PXE boot: QEMU's iPXE ROM → our DHCP (through dhcrelay's Option 82) →
our /boot/ipxe → the kernel and initrd over our HTTP → the node's own cloud-init
data → phone-home, which moves it to ``installed`` with its plan identity."""

from __future__ import annotations

import os
import shutil
import time

import pytest

from zonelab.topology import Lab
from zonelab.vm import build_payload
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


VMS = {"p01-u03": "bios", "p01-u04": "uefi"}


def test_qemu_pxe_boot_reaches_installed(pxe_zone, tmp_path):
    """Unit 3 boots BIOS (the NIC's iPXE ROM); unit 4 boots UEFI: OVMF's PXE → our TFTP
    ``ipxe.efi`` → iPXE → our HTTP."""
    plan = compile_plan(load_zone(pxe_zone))
    store = Store(str(tmp_path / "zone.db"))
    store.seed(plan)
    lab = Lab(plan, "p01", str(tmp_path / "lab"),
              vm_units={plan.nodes[name].unit: fw for name, fw in VMS.items()})
    lab.build()
    try:
        lab.start_services(pxe_zone, store.path)
        for name in VMS:
            lab.boot(name)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and \
                any(store.node(name)["state"] != "installed" for name in VMS):
            time.sleep(0.5)
        consoles = {name: lab.vms[name].console_text() for name in VMS}
    finally:
        lab.close()
    for name in VMS:
        node, planned = store.node(name), plan.nodes[name]
        assert node["state"] == "installed", consoles[name][-3000:]
        assert f"ZONE-PHONED-HOME {name}" in consoles[name]
        leases = store.events(node=name, kind="lease", limit=100)
        assert leases and all(e["detail"]["address"] == planned.address for e in leases)
        assert node["data"]["hostname"] == name
    # OVMF's own PXE fetched iPXE from our TFTP (the only TFTP server on that link)
    assert "NBP filename is ipxe.efi" in consoles["p01-u04"]
    assert "NBP file downloaded successfully" in consoles["p01-u04"]
