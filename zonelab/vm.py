"""A real PXE-booting lab server: QEMU with its iPXE ROM on a tap port of the lab ToR.

The boot payload is built on this machine from Debian packages: the cloud kernel
(``apt-get download``) and a busybox initramfs whose ``/init`` does what the
installer's first boot would: DHCP, fetch its own NoCloud data from the seed URL
on the kernel command line, phone home, power off.
"""

from __future__ import annotations

import gzip
import os
import shutil
import socket
import subprocess
import tempfile
import time

from bootstrap.errors import WorkError


CACHE = "/var/cache/zone-bootstrap/pxe"
MODULES = ("kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/virtio/virtio.ko",
           "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
           "kernel/drivers/virtio/virtio_pci_legacy_dev.ko", "kernel/drivers/virtio/virtio_pci.ko",
           "kernel/net/core/failover.ko", "kernel/drivers/net/net_failover.ko",
           "kernel/drivers/net/virtio_net.ko")

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in /lib/modules/*.ko; do insmod "$m"; done
ip link set lo up; ip link set eth0 up
udhcpc -i eth0 -q -n -t 20 -T 1 -s /udhcpc.sh
seed=$(tr ' ' '\n' < /proc/cmdline | sed -n 's/^ds=nocloud;s=//p')
echo "ZONE-SEED $seed"
wget -q -O /meta-data "${seed}meta-data" && wget -q -O /user-data "${seed}user-data"
host=$(sed -n 's/^local-hostname: *//p' /meta-data | tr -d '"')
wget -q -O - --post-data "hostname=$host&instance_id=vm-$host&pub_key_ed25519=ssh-ed25519%20AAAAvm%20$host" \
    "${seed%cloud-init/*}phone-home/$host" && echo "ZONE-PHONED-HOME $host"
poweroff -f
"""

UDHCPC = """#!/bin/sh
[ "$1" = bound ] || exit 0
ip addr add "$ip/${mask:-24}" dev "$interface"
[ -n "$router" ] && ip route add default via "${router%% *}"
exit 0
"""


def kernel_package() -> str:
    out = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"], check=True,
                         capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Depends:" in line and "linux-image-" in line:
            return line.split("Depends:")[1].strip()
    raise WorkError("no linux-image-*-cloud-amd64 package in apt's lists")


def build_payload(cache: str = CACHE) -> tuple[str, str]:
    """``(kernel, initrd)`` paths, built once and cached by kernel package name."""
    package = kernel_package()
    folder = os.path.join(cache, package)
    kernel, initrd = os.path.join(folder, "linux"), os.path.join(folder, "initrd.gz")
    if os.path.exists(kernel) and os.path.exists(initrd):
        return kernel, initrd
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", package], cwd=tmp, check=True, capture_output=True)
        deb = next(f for f in os.listdir(tmp) if f.endswith(".deb"))
        root = os.path.join(tmp, "x")
        subprocess.run(["dpkg-deb", "-x", os.path.join(tmp, deb), root], check=True)
        version = os.listdir(os.path.join(root, "lib", "modules"))[0]
        os.makedirs(folder, exist_ok=True)
        shutil.copy(os.path.join(root, "boot", f"vmlinuz-{version}"), kernel + ".tmp")
        data = _initramfs(os.path.join(root, "lib", "modules", version))
        with open(initrd + ".tmp", "wb") as fh:
            fh.write(data)
        os.replace(kernel + ".tmp", kernel)
        os.replace(initrd + ".tmp", initrd)
    return kernel, initrd


def _initramfs(modules_root: str) -> bytes:
    """A gzip'd newc cpio: busybox, /init, the udhcpc hook and the virtio-net modules."""
    with tempfile.TemporaryDirectory() as tmp:
        for d in ("bin", "proc", "sys", "dev", "lib/modules"):
            os.makedirs(os.path.join(tmp, d), exist_ok=True)
        shutil.copy("/bin/busybox", os.path.join(tmp, "bin", "busybox"))
        for i, module in enumerate(MODULES):
            shutil.copy(os.path.join(modules_root, module),
                        os.path.join(tmp, "lib", "modules", f"{i:02d}-{os.path.basename(module)}"))
        for name, text in (("init", INIT), ("udhcpc.sh", UDHCPC)):
            path = os.path.join(tmp, name)
            with open(path, "w") as fh:
                fh.write(text)
            os.chmod(path, 0o755)
        files = subprocess.run(["find", "."], cwd=tmp, check=True, capture_output=True).stdout
        cpio = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tmp, input=files,
                              check=True, capture_output=True).stdout
    return gzip.compress(cpio)


def accel() -> str:
    """KVM only where it really works; /dev/kvm may exist without a usable module."""
    usable = os.path.exists("/dev/kvm") and any(
        os.path.exists(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd"))
    return "kvm" if usable else "tcg"


OVMF_CODE, OVMF_VARS = "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"


def firmware_args(firmware: str, workdir: str, port: str, mac: str) -> list:
    """BIOS: SeaBIOS runs the NIC's iPXE ROM. UEFI: OVMF's own PXE (the NIC's ROM
    emptied), which fetches ``ipxe.efi`` over TFTP first — the path that needs TFTP."""
    nic = f"virtio-net-pci,netdev=n0,mac={mac}"
    if firmware == "bios":
        return ["-machine", f"pc,accel={accel()}", "-device", nic]
    variables = os.path.join(workdir, f"ovmf-vars-{port}.fd")
    shutil.copy(OVMF_VARS, variables)
    return ["-machine", f"q35,accel={accel()}",
            "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,file={variables}", "-device", f"{nic},romfile="]


class Vm:
    """One QEMU guest whose NIC is the tap ``port`` in namespace ``ns``, started paused."""

    def __init__(self, ns: str, port: str, workdir: str, serial: str, uuid: str, mac: str,
                 firmware: str = "bios"):
        self.ns, self.port, self.workdir = ns, port, workdir
        self.monitor = os.path.join(workdir, f"qemu-{port}.mon")
        self.console = os.path.join(workdir, f"qemu-{port}.console")
        cmd = ["ip", "netns", "exec", ns, "qemu-system-x86_64",
               *firmware_args(firmware, workdir, port, mac),
               "-m", "256", "-nographic", "-nodefaults", "-serial", f"file:{self.console}",
               "-netdev", f"tap,id=n0,ifname={port},script=no,downscript=no", "-boot", "n",
               "-smbios", f"type=1,serial={serial}", "-uuid", uuid,
               "-monitor", f"unix:{self.monitor},server,nowait", "-S"]
        self.log = open(os.path.join(workdir, f"qemu-{port}.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self._wait_for_tap()

    def _wait_for_tap(self, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            probe = subprocess.run(["ip", "-n", self.ns, "link", "show", self.port],
                                   capture_output=True)
            if probe.returncode == 0 and os.path.exists(self.monitor):
                subprocess.run(["ip", "-n", self.ns, "link", "set", self.port, "up"], check=True)
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise WorkError(f"qemu did not start; see {self.workdir}/qemu-{self.port}.log")

    def start(self) -> None:
        """Leave the paused state: SeaBIOS → the NIC's iPXE ROM → DHCP."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(self.monitor)
            sock.sendall(b"cont\n")
            time.sleep(0.2)

    def console_text(self) -> str:
        try:
            with open(self.console, errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()

