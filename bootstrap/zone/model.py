"""The zone model: frozen dataclasses, what a loaded zone file is.

Nothing here reads or checks a file: :mod:`.parse` builds these from the YAML source,
:mod:`.checks` holds the rules that need the whole model, :mod:`.load` runs both.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

ZTP_KINDS = ("sonic", "onie", "cumulus", "arista")
KINDS = ("switch", "server")
# Which kind of node owns its identity on a network when the zone does not say.
DEFAULT_SERVES = {"mgmt": "switch", "lom": "bmc"}
SERVES = ("switch", "bmc", "server")
# Whose nodes a pod switch's numbered ports lead to (a SwitchSpec's serves).
PORTS_SERVE = ("server", "bmc")
LEARNED = "mac"           # remote_id: the switch's MAC, learned from its own lease or set


@dataclass(frozen=True)
class Network:
    name: str
    supernet: ipaddress.IPv4Network
    prefix: int
    serves: str  # switch | bmc | server: whose identity lives on this network
    vlan: int | None = None
    core_from: int | None = None  # the core switches' first host in subnet 0 (default:
    #                               addressing.switches_from), to keep e.g. the controller's free

    def core_host(self, addressing: "Addressing", k: int) -> int:
        """The host number of core switch ``k`` (0-based) in subnet 0."""
        return (self.core_from or addressing.switches_from) + k

    @property
    def subnet_count(self) -> int:
        return 1 << (self.prefix - self.supernet.prefixlen)

    @property
    def subnet_size(self) -> int:
        return 1 << (32 - self.prefix)

    def subnet(self, index: int) -> ipaddress.IPv4Network:
        base = int(self.supernet.network_address) + index * self.subnet_size
        return ipaddress.IPv4Network((base, self.prefix))


@dataclass(frozen=True)
class Addressing:
    gateway: int = 1
    switches_from: int = 2
    units_from: int = 10


@dataclass(frozen=True)
class Image:
    name: str
    kernel: str
    initrd: str
    cmdline: str = ""


@dataclass(frozen=True)
class Firmware:
    name: str
    component: str
    version: str
    image: str
    sha256: str


@dataclass(frozen=True)
class Role:
    name: str
    kind: str
    ztp: str | None = None
    image: str | None = None
    firmware: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class SwitchSpec:
    """A switch of the pod template or of the core."""

    key: str
    role: str | None
    remote_id: str | None     # a template, LEARNED ("mac") or None
    circuit_id: str
    uplink_switch: str | None = None
    uplink_port: str | None = None
    mac: str | None = None    # a core switch's MAC set in the zone (normalised)
    circuit_line: int = 0     # where circuit_id / remote_id come from (a key or a relay:)
    remote_line: int = 0
    serves: str | None = None  # a pod switch: bmc | server, whose nodes its ports lead to


@dataclass(frozen=True)
class Pod:
    name: str
    index: int
    units: dict  # unit number → role name, after overrides
    macs: dict = field(default_factory=dict)  # switch key → MAC set in the zone (normalised)


@dataclass(frozen=True)
class BmcCredentials:
    username: str = "admin"
    password_file: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class Redfish:
    url: str = "https://{lom_address}"
    system: str = "auto"
    verify_tls: bool = True
    ca_file: str | None = None


@dataclass(frozen=True)
class DhcpSettings:
    lease_time: int = 3600
    renew_time: int = 1800
    rebind_time: int = 3150
    trusted_relays: tuple[str, ...] = ()
    # Where relayed packets may come from (CIDRs); empty: subnet 0 of every network,
    # the core/transit range, besides giaddr itself and the zone's switch addresses.
    relay_sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class UpSettings:
    min_ready: float = 0.75      # share of a pod's servers installed before Ansible runs
    max_failed: float = 0.25     # share of a pod's hosts that may fail before the pod fails
    power_on_per_second: float = 4.0


# Linux bonding driver modes (also netplan's and systemd-networkd's names)
BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
              "balance-tlb", "balance-alb")


@dataclass(frozen=True)
class SiteSettings:
    """What the installed servers need from this site: who may log in, the URL nodes
    reach us at, the NICs cabled to the ToR pair and how they are bonded, and where
    the iPXE binaries are."""

    ssh_authorized_keys: tuple[str, ...] = ()  # inline keys, then the keys file's
    public_url: str | None = None              # None: controller.url
    nics: tuple[str, ...] = ("eno1", "eno2")   # bond members, ToR link order, when MACs unknown
    bond_mode: str = "802.3ad"
    ipxe_dir: str = "/usr/lib/ipxe"            # ipxe.efi, undionly.kpxe (Debian's ipxe)


@dataclass(frozen=True)
class Zone:
    name: str
    domain: str
    source: str
    digest: str
    networks: dict  # name → Network, file order
    addressing: Addressing
    controller_url: str
    dns_upstreams: tuple[str, ...]
    ntp: tuple[str, ...]
    naming: str
    images: dict
    firmware: dict
    roles: dict
    switches: dict  # key → SwitchSpec, template order
    core: dict      # key → SwitchSpec
    pods: tuple[Pod, ...]
    credentials: BmcCredentials = field(default_factory=BmcCredentials)
    redfish: Redfish = field(default_factory=Redfish)
    dhcp: DhcpSettings = field(default_factory=DhcpSettings)
    up: UpSettings = field(default_factory=UpSettings)
    site: SiteSettings = field(default_factory=SiteSettings)
    warnings: tuple = ()  # Problems that do not make the zone invalid (files not there yet)

    @property
    def base_dir(self) -> str:
        return os.path.dirname(os.path.abspath(self.source))

    @property
    def public_url(self) -> str:
        """The base of every URL handed to nodes."""
        return self.site.public_url or self.controller_url

    def path(self, relative: str) -> str:
        """A path named in the zone file, relative to the zone file's folder."""
        return relative if os.path.isabs(relative) else os.path.join(self.base_dir, relative)
