"""The built-in lab: one virtual pod on this machine, in network namespaces.

    ctl  (10.17.0.2: zone serve — DHCP, TFTP, DNS, HTTP; the BMC emulator on its loopback)
     │ veth up0 ↔ core0 (10.17.0.1)
    tor  (plays tor-a: ISC dhcrelay inserts Option 82, circuit-id = swpN)
     │ swpN (10.17.1.1/32, a /32 route per unit) ↔ eth0
    u01 … uNN  (one namespace per unit: the boot agent)

Every namespace name starts with a per-run prefix, and :meth:`Lab.close` removes
every namespace and process the lab started, whatever happened before.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time

from bootstrap.errors import InputError, WorkError
from bootstrap.plan import Plan
from bootstrap.up_steps import Hooks

from .netns import Namespaces, enter, ip, leftovers, reap, run_in

log = logging.getLogger("zonelab")
AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent.sh")
NEEDS = ("ip", "dhcrelay", "busybox", "curl")


def check_host() -> None:
    if os.geteuid() != 0:
        raise InputError("--lab needs root (network namespaces, port 67): run it with sudo")
    missing = [tool for tool in NEEDS if shutil.which(tool) is None]
    if missing:
        raise InputError(f"--lab needs {', '.join(missing)}: run `sudo bash .ci/install`")


_LAB_NS = re.compile(r"^zl(\d+)-")


def reap_stale() -> list[str]:
    """Namespaces (and their processes) of labs whose ``zone up`` died without cleaning up,
    e.g. by SIGKILL: their creator's pid is in the name."""
    reaped = []
    for name in leftovers("zl"):
        m = _LAB_NS.match(name)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            reap(name)
            reaped.append(name)
    return reaped


OWNER = ".zone-lab-owner"   # in a lab's work folder while its run lives: the run's pid
WORKDIR_PREFIX = "zone-lab-"


def reap_stale_workdirs(folder: str) -> list[str]:
    """Work folders (``zone-lab-*`` in ``folder``) of lab runs that were killed: their
    :data:`OWNER` file names a process that is gone. They hold logs, BMC state and the
    targets' SSH key; a run that ends normally removes its owner file and keeps its logs."""
    reaped = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(WORKDIR_PREFIX) and _owner_gone(path) and not _has_mounts(path):
            shutil.rmtree(path, ignore_errors=True)
            reaped.append(path)
    return reaped


def _owner_gone(path: str) -> bool:
    try:
        with open(os.path.join(path, OWNER), encoding="ascii") as fh:
            pid = int(fh.read().strip())
    except (OSError, ValueError):  # not a lab of ours, or one that closed
        return False
    return not os.path.exists(f"/proc/{pid}")


def _has_mounts(path: str) -> bool:
    """Something still mounted below ``path`` (never delete through a mount)."""
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as fh:
        return any(line.split()[1].startswith(path + "/") for line in fh if line.strip())


INSTALLED = ("installed", "configured", "ready")   # a lab server whose OS runs


class Lab(Hooks):
    """One pod's hardware, simulated; as zone up's :class:`Hooks` it powers servers on."""

    def __init__(self, plan: Plan, pod: str, workdir: str, prefix: str | None = None,
                 vm_units=()):
        self.plan, self.pod, self.workdir = plan, pod, workdir
        # unit → "bios" | "uefi": those units are QEMU guests instead of boot agents
        self.vm_units = vm_units if isinstance(vm_units, dict) else dict.fromkeys(vm_units, "bios")
        self.vms: dict = {}
        self.switch_nsname: dict = {}
        self.core_relays: dict = {}
        self.switch_ports: list = []
        self.bmc_ports: dict = {}
        self.prefix = prefix or f"zl{os.getpid()}"
        self.netns = Namespaces(self.prefix, unique=False)
        self.procs: list[subprocess.Popen] = []
        self.agents: dict[str, subprocess.Popen] = {}
        self.servers = list(plan.servers(pod))
        provision = plan.subnet(self.servers[0])
        self.gateway = provision.gateway
        host = plan.zone.controller_url.split("//", 1)[1].split(":")[0].split("/")[0]
        self.controller = str(ipaddress.IPv4Address(host))
        core = plan.subnets[(self.servers[0].network, 0)]
        self.core_gateway = core.gateway
        self.core_prefix = core.prefix
        os.makedirs(workdir, mode=0o700, exist_ok=True)
        os.chmod(workdir, 0o700)  # logs, BMC state and an SSH key: ours alone
        with open(os.path.join(workdir, OWNER), "w", encoding="ascii") as fh:
            fh.write(f"{os.getpid()}\n")  # a later run removes the folder if we are killed

    # --- building ------------------------------------------------------------

    def build(self) -> None:
        check_host()
        reap_stale()
        for path in reap_stale_workdirs(os.path.dirname(os.path.abspath(self.workdir))):
            log.info("lab: removed %s, left by a killed run", path)
        try:
            self._namespaces()
        except subprocess.CalledProcessError as exc:
            self.close()
            raise WorkError(f"lab: {' '.join(exc.cmd)}: {exc.stderr.strip()}") from None

    def _namespaces(self) -> None:
        n = self.netns
        self.ctl, self.tor = self._ns("ctl"), self._ns("tor")
        n.veth(self.ctl, "up0", self.tor, "core0")
        ip("addr", "add", f"{self.controller}/{self.core_prefix}", "dev", "up0", ns=self.ctl)
        ip("addr", "add", f"{self.core_gateway}/{self.core_prefix}", "dev", "core0", ns=self.tor)
        supernet = self.plan.zone.networks[self.servers[0].network].supernet
        ip("route", "add", str(supernet), "via", self.core_gateway, ns=self.ctl)
        subprocess.run(["ip", "netns", "exec", self.tor, "sysctl", "-qw",
                        "net.ipv4.ip_forward=1"], check=True)
        self._switches()
        self._bmcs()
        for node in self.servers:
            port = f"swp{node.unit}"
            if node.unit in self.vm_units:
                self.vms[node.name] = self._vm(node, port)
            else:
                n.veth(self.tor, port, self._ns(f"u{node.unit:02d}"), "eth0")
            ip("addr", "add", f"{self.gateway}/32", "dev", port, ns=self.tor)
            ip("route", "add", f"{node.address}/32", "dev", port, ns=self.tor)

    def _ns(self, short: str) -> str:
        return self.netns.namespace(short).name

    def _vm(self, node, port: str):
        from .vm import Vm

        mac = "52:54:00:%02x:%02x:%02x" % (node.pod_index & 0xFF, node.unit >> 8, node.unit & 0xFF)
        return Vm(self.tor, port, self.workdir, serial=f"LAB-{node.name}",
                  uuid=f"00000000-0000-4000-8000-{node.pod_index:04d}{node.unit:08d}", mac=mac,
                  firmware=self.vm_units[node.unit])

    def _switches(self) -> None:
        """The pod's switches as namespaces behind the relays that see them in a real pod:
        each ToR behind its core switch (a relay whose giaddr is the core's own address, so
        the core and its port name the ToR), the LoM switch behind tor-a's uplink port."""
        n, plan = self.netns, self.plan
        for k, node in enumerate(plan.select(self.pod, "switch")):
            (upper, port), = node.links
            sw_ns = self._ns(f"s{k}")
            self.switch_nsname[node.name] = sw_ns
            upper_node = plan.nodes[upper]
            gateway = plan.subnet(node).gateway
            if upper_node.pod is None:  # a core switch: a relay namespace of its own
                relay = self._core_relay(upper_node)
                n.veth(relay, port, sw_ns, "eth0")
                ip("addr", "add", f"{upper_node.address}/32", "dev", port, ns=relay)
                ip("addr", "add", f"{gateway}/32", "dev", port, ns=relay)
                ip("route", "add", f"{node.address}/32", "dev", port, ns=relay)
                ip("route", "add", f"{node.address}/32", "via", upper_node.address, "dev",
                   f"up-{upper_node.name}"[:15], "onlink", ns=self.ctl)
            else:  # behind this lab's tor namespace
                n.veth(self.tor, port, sw_ns, "eth0")
                ip("addr", "add", f"{gateway}/32", "dev", port, ns=self.tor)
                ip("route", "add", f"{node.address}/32", "dev", port, ns=self.tor)
                ip("route", "add", f"{node.address}/32", "via", self.core_gateway, ns=self.ctl)
                ip("route", "replace", f"{gateway}/32", "via", self.core_gateway, ns=self.ctl)
                self.switch_ports.append(port)

    def _bmcs(self) -> None:
        """Each unit's BMC NIC behind the LoM switch (a relay namespace on the pod's lom
        gateway, ports swpN): the BMCs take their lom addresses by DHCP. Their Redfish
        service is the emulator, where the zone's ``redfish.url`` points."""
        n = self.netns
        bmcs = [self.plan.nodes[s.peer] for s in self.servers]
        if not bmcs or bmcs[0].address is None:
            return
        self.lom = self._ns("lom")
        gateway = self.plan.subnet(bmcs[0]).gateway
        n.veth(self.ctl, "up-lom", self.lom, "core0")
        ip("addr", "add", f"{self.controller}/32", "dev", "up-lom", ns=self.ctl)
        ip("route", "add", f"{gateway}/32", "dev", "up-lom", ns=self.ctl)
        ip("addr", "add", f"{gateway}/32", "dev", "core0", ns=self.lom)
        ip("route", "add", f"{self.controller}/32", "dev", "core0", ns=self.lom)
        for bmc in bmcs:
            port = bmc.links[0][1]
            n.veth(self.lom, port, self._ns(f"b{bmc.unit:02d}"), "eth0")
            ip("addr", "add", f"{gateway}/32", "dev", port, ns=self.lom)
            ip("route", "add", f"{bmc.address}/32", "dev", port, ns=self.lom)
            self.bmc_ports[bmc.name] = port

    def _core_relay(self, core) -> str:
        """A namespace playing ``core``: upstream to ctl on the core's own address."""
        if core.name in self.core_relays:
            return self.core_relays[core.name]
        relay = self._ns(f"c{len(self.core_relays) + 1}")
        self.core_relays[core.name] = relay
        link = f"up-{core.name}"[:15]
        self.netns.veth(self.ctl, link, relay, "core0")
        ip("addr", "add", f"{self.controller}/32", "dev", link, ns=self.ctl)
        ip("route", "add", f"{core.address}/32", "dev", link, ns=self.ctl)
        ip("addr", "add", f"{core.address}/32", "dev", "core0", ns=relay)
        ip("route", "add", f"{self.controller}/32", "dev", "core0", ns=relay)
        subprocess.run(["ip", "netns", "exec", relay, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
                       check=True)
        return relay

    def _start_core_relays(self) -> None:
        for core, relay in self.core_relays.items():
            ports = [link for node in self.plan.select(self.pod, "switch")
                     for upper, link in node.links if upper == core]
            self.spawn(relay, "dhcrelay", "-4", "-d", "-a", "-m", "replace", "-iu", "core0",
                       *[arg for port in ports for arg in ("-id", port)], self.controller,
                       log_name=f"dhcrelay-{core}")

    def power_up(self) -> None:
        """Rack power on: switches run their ZTP / ONIE client, BMCs ask DHCP for their
        lom address (the servers themselves stay off until their BMC powers them on)."""
        agent = os.path.join(os.path.dirname(AGENT), "switch-agent.sh")
        for name, ns in self.switch_nsname.items():
            self.spawn(ns, "sh", agent, os.path.join(self.workdir, name), log_name=f"agent-{name}")
        for name in self.bmc_ports:
            ns = f"{self.prefix}-b{self.plan.nodes[name].unit:02d}"
            self.spawn(ns, "busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "20", "-T",
                       "1", "-s", "/bin/true", log_name=f"dhcp-{name}")

    def enter_controller(self) -> None:
        """Run the rest of this process (Redfish, HTTP clients) inside the ctl namespace."""
        enter(self.ctl)

    def spawn(self, ns: str, *cmd: str, log_name: str) -> subprocess.Popen:
        out = open(os.path.join(self.workdir, f"{log_name}.log"), "ab")
        proc = run_in(ns, *cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_services(self, zone_path: str, state_path: str, extra=()) -> None:
        self.spawn(self.ctl, sys.executable, "-m", "bootstrap", "serve", zone_path,
                   "--state", state_path, "--bind", "0.0.0.0", "--server-id", self.controller,
                   *extra, log_name="serve")
        ports = [f"swp{node.unit}" for node in self.servers] + self.switch_ports
        self._start_core_relays()
        if self.bmc_ports:
            self.spawn(self.lom, "dhcrelay", "-4", "-d", "-a", "-m", "replace", "-iu", "core0",
                       *[arg for port in self.bmc_ports.values() for arg in ("-id", port)],
                       self.controller, log_name="dhcrelay-lom")
        self.spawn(self.tor, "dhcrelay", "-4", "-d", "-a", "-m", "replace", "-iu", "core0",
                   *[arg for port in ports for arg in ("-id", port)], self.controller,
                   log_name="dhcrelay")
        self.wait_http()

    def start_bmcs(self) -> None:
        """One sushy emulator (with the realistic UpdateService) plays every unit's BMC,
        where the zone's ``redfish.url`` points: the controller namespace's loopback."""
        from .bmc_emulator import Emulator

        self.emulator = Emulator.for_zone(self.plan.zone, self.plan,
                                          os.path.join(self.workdir, "bmcs"), pod=self.pod,
                                          extension=True, task_seconds=1.0)
        self.emulator.start()

    def start_targets(self) -> tuple:
        """The installed OS of each lab server, for Ansible: a Debian 12 root file system
        with sshd, run in the unit's own namespace (reached at its DHCP address), or for a
        QEMU unit (which powers off after phone-home) in a namespace of its own. Returns
        the inventory sources with their connection variables.

        Call it before :meth:`enter_controller`: the targets' package proxy must reach the
        Debian mirror from this machine's own network namespace."""
        from .targets import Targets, base_rootfs

        os.makedirs(os.path.join(self.workdir, "targets"), exist_ok=True)
        self.targets = Targets(base_rootfs(), workdir=os.path.join(self.workdir, "targets"))
        for node in self.servers:
            netns = None if node.unit in self.vm_units else f"{self.prefix}-u{node.unit:02d}"
            self.targets.start(node.name, node.address, netns=netns)
        return (self.targets.write_inventory(os.path.join(self.workdir, "targets.yml")),)

    def wait_http(self, seconds: float = 30) -> None:
        url = f"{self.plan.zone.controller_url}/healthz"
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            probe = subprocess.run(["ip", "netns", "exec", self.ctl, "curl", "-fsS", "-o",
                                    "/dev/null", url], capture_output=True)
            if probe.returncode == 0:
                return
            if any(p.poll() is not None for p in self.procs):
                break
            time.sleep(0.3)
        raise WorkError(f"lab: the services did not come up; see {self.workdir}/serve.log")

    # --- servers -----------------------------------------------------------------

    def boot(self, name: str) -> None:
        """Power a lab server on: its agent DHCPs, fetches iPXE and cloud-init, phones home."""
        node = self.plan.nodes[name]
        if name in self.vms:
            self.vms[name].start()
            return
        if name in self.agents and self.agents[name].poll() is None:
            return
        state = os.path.join(self.workdir, name)
        self.agents[name] = self.spawn(f"{self.prefix}-u{node.unit:02d}", "sh", AGENT, state,
                                       log_name=f"agent-{name}")

    def resume_installed(self, name: str) -> None:
        """A server a killed run left installed (or beyond): its OS is up again with the
        address and route its lease gave it, as a rebooted installed server has. Its agent
        is not run again: that would install it a second time."""
        node = self.plan.nodes[name]
        if name in self.vms:  # a QEMU unit's target has a namespace of its own
            return
        ns, subnet = f"{self.prefix}-u{node.unit:02d}", self.plan.subnet(node)
        ip("addr", "replace", f"{node.address}/{subnet.prefix}", "dev", "eth0", ns=ns)
        ip("route", "replace", "default", "via", subnet.gateway, "dev", "eth0", ns=ns)

    def powered_on(self, server: str) -> None:
        self.boot(server)

    def resumed(self, server: str, state: str) -> None:
        if state == "booting":  # it was booting when the earlier run stopped
            self.boot(server)
        elif state in INSTALLED:  # its OS is back, for Ansible
            self.resume_installed(server)

    def agent_failed(self, name: str) -> bool:
        proc = self.agents.get(name)
        return proc is not None and proc.poll() not in (None, 0)

    # --- teardown ----------------------------------------------------------------

    def close(self) -> None:
        if getattr(self, "emulator", None) is not None:
            self.emulator.stop()
        if getattr(self, "targets", None) is not None:
            self.targets.close()
        for vm in self.vms.values():
            vm.stop()
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.netns.close()
        with contextlib.suppress(OSError):  # ended, not killed: the folder stays for its logs
            os.unlink(os.path.join(self.workdir, OWNER))
