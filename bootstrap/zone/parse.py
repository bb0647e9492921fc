"""Zone file source → :class:`~.model.Zone`: each section normalised, every problem
recorded with its line by a :class:`~bootstrap.schema.Reader` (rules that need the whole
model are in :mod:`.checks`)."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re

from ..errors import Problem, ZoneInvalid
from ..schema import CIRCUIT_FIELDS, IDENT, NAME, PORT_FIELDS, URL, Reader, field_names, \
    mac_bytes, mac_text, parse_units, template_fields
from ..yamlsrc import SrcDict
from .model import DEFAULT_SERVES, KINDS, LEARNED, PORTS_SERVE, SERVES, ZTP_KINDS, Addressing, \
    BmcCredentials, DhcpSettings, Firmware, Image, Network, Pod, Redfish, Role, SwitchSpec, \
    UpSettings, Zone
from .site import parse_site

TOP_KEYS = ("zone", "domain", "networks", "addressing", "controller", "dns", "ntp", "naming",
            "images", "firmware", "credentials", "redfish", "roles", "pod_template", "core",
            "pods", "dhcp", "up", "site")
TOP_REQUIRED = ("zone", "domain", "networks", "roles", "pod_template", "pods")
_SECRET_KEY = re.compile(r"(^|_)(password|passwd|secret|token)$", re.IGNORECASE)
NAMING_FIELDS = ("pod", "pod_index", "unit")
MAX_DOMAIN = 200          # leaves room for host names under it within 253
U32 = 0xFFFFFFFF          # DHCP times are 32-bit seconds on the wire
MAX_SERVERS = 200_000     # every pod's units together (the 10k zone: 10,000)
MAX_UNITS = 4094          # one pod's units, whatever its subnets could hold
DEFAULT_CIRCUIT = "swp{port}"
# relay: NOS → (circuit-id template, remote-id) its relay writes; docs/zone-file.md says
# how to configure each NOS so that it writes exactly these.
RELAY_PRESETS = {
    "sonic": ("{switch}:Ethernet{lane}", LEARNED),
    "cumulus": ("swp{port}", LEARNED),
    "eos": ("Ethernet{port}", "{switch}"),
    "nxos": ("Ethernet1/{port}", LEARNED),
    "junos": ("ge-0/0/{port0}.0:{vlan}", None),
}
CORE_CIRCUIT_FIELDS = tuple(f for f in CIRCUIT_FIELDS if f not in ("pod", "pod_index"))


def parse(r: Reader, raw, filename: str, digest: str = "") -> tuple[Zone, SrcDict]:
    """The zone ``raw`` (a :mod:`bootstrap.yamlsrc` tree) describes, and its top mapping;
    problems go to ``r``. Not a mapping at all: ZoneInvalid at once."""
    if not isinstance(raw, SrcDict):
        raise ZoneInvalid([Problem(filename, getattr(raw, "line", 1), "zone file must be a mapping")])
    top = raw
    r.keys(top, "zone file", TOP_KEYS, TOP_REQUIRED)
    _check_no_secrets(r, top)
    b = _Builder(r, top)
    zone = Zone(
        name=b.name("zone"), domain=b.domain(), source=filename, digest=digest,
        networks=b.networks(), addressing=b.addressing(), controller_url=b.controller(),
        dns_upstreams=b.dns(), ntp=b.ntp(), naming=b.naming(), images=b.images(),
        firmware=b.firmware(), roles={}, switches={}, core={}, pods=(),
        credentials=b.credentials(), redfish=b.redfish(), dhcp=b.dhcp(), up=b.up(),
        site=parse_site(r, top, os.path.dirname(os.path.abspath(filename))))
    roles = b.roles(zone)
    switches, forms = b.pod_switches(roles, zone.networks)
    core = b.core(forms, switches)
    pods = b.pods(roles, zone.networks, switches)
    zone = dataclasses.replace(zone, roles=roles, switches=switches, core=core, pods=pods)
    return zone, top


def _check_no_secrets(r: Reader, node, where: str = "") -> None:
    """A password in clear text anywhere in the zone file is an error."""
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{where}.{key}" if where else str(key)
            if isinstance(key, str) and _SECRET_KEY.search(key) and not isinstance(value, dict):
                r.error(node.line_of(key), f"{path}: clear-text secret in the zone file; "
                        f"use {key}_file or {key}_env")
            _check_no_secrets(r, value, path)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _check_no_secrets(r, item, f"{where}[{i}]")


class _Builder:
    """Normalises each top-level section; one method per section."""

    def __init__(self, r: Reader, top: SrcDict):
        self.r, self.top = r, top

    def section(self, key: str) -> SrcDict:
        return self.r.mapping(self.top.get(key), self.top.line_of(key), key)

    def name(self, key: str) -> str:
        value = self.r.text(self.top, key, "zone file", "") or ""
        if key in self.top and not NAME.match(value):
            self.r.error(self.top.line_of(key), f"{key}: '{value}' is not a valid DNS label")
        return value

    def domain(self) -> str:
        value = (self.r.text(self.top, "domain", "zone file", "") or "").rstrip(".")
        labels = value.split(".")
        if "domain" in self.top and not (all(NAME.match(label) for label in labels)
                                         and len(value) <= MAX_DOMAIN):
            self.r.error(self.top.line_of("domain"), f"domain: '{value}' is not a valid domain "
                         f"(DNS labels, at most {MAX_DOMAIN} characters)")
        return value

    def networks(self) -> dict:
        nets = self.section("networks")
        out = {}
        if "networks" in self.top and not nets:
            self.r.error(nets.line, "networks: at least one network is needed")
        for name, spec in nets.items():
            self.ident(nets, name, "networks")
            spec = self.r.mapping(spec, nets.line_of(name), f"networks.{name}")
            what = f"networks.{name}"
            self.r.keys(spec, what, ("supernet", "prefix", "serves", "vlan", "core_from"),
                        ("supernet", "prefix"))
            net = self._network(name, spec, what)
            if net:
                out[name] = net
        return out

    def _network(self, name, spec, what) -> Network | None:
        try:
            supernet = ipaddress.IPv4Network(str(spec.get("supernet")), strict=True)
        except ValueError as exc:
            if "supernet" in spec:
                self.r.error(spec.line_of("supernet"), f"{what}.supernet: {exc}")
            return None
        prefix = self.r.integer(spec, "prefix", what, None, low=supernet.prefixlen, high=30)
        serves = self.r.text(spec, "serves", what, DEFAULT_SERVES.get(name, "server"))
        if serves not in SERVES:
            self.r.error(spec.line_of("serves"), f"{what}.serves must be one of {', '.join(SERVES)}")
        vlan = self.r.integer(spec, "vlan", what, None, low=1, high=4094)
        core_from = self.r.integer(spec, "core_from", what, None, low=1, high=1 << 24)
        if prefix is None:
            return None
        return Network(name, supernet, prefix, serves, vlan, core_from)

    def ident(self, section: SrcDict, key, what: str) -> None:
        """A name the zone defines (a role, an image...): plain letters, digits, ``_.-``."""
        if not IDENT.match(str(key)):
            self.r.error(section.line_of(key), f"{what}: '{key}' is not a valid name (letters, "
                         "digits, '_', '.', '-'; at most 63)")

    def label(self, section: SrcDict, key, what: str) -> None:
        """A name that becomes a host name: a DNS label."""
        if not NAME.match(str(key)):
            self.r.error(section.line_of(key), f"{what}: '{key}' is not a valid DNS label "
                         "(a-z, 0-9, '-'; at most 63)")

    def addressing(self) -> Addressing:
        d = self.section("addressing")
        self.r.keys(d, "addressing", ("gateway", "switches_from", "units_from"))
        return Addressing(
            gateway=self.r.integer(d, "gateway", "addressing", 1, low=1, high=1 << 24),
            switches_from=self.r.integer(d, "switches_from", "addressing", 2, low=1, high=1 << 24),
            units_from=self.r.integer(d, "units_from", "addressing", 10, low=1, high=1 << 24))

    def controller(self) -> str:
        d = self.section("controller")
        self.r.keys(d, "controller", ("url",))
        url = self.r.text(d, "url", "controller", "http://127.0.0.1:8080") or ""
        if not URL.match(url):
            self.r.error(d.line_of("url"), f"controller.url: '{url}' is not a plain http(s) URL")
        return url.rstrip("/")

    def _addresses(self, d: SrcDict, key: str, what: str) -> tuple:
        values = self.r.text_list(d, key, what)
        for i, value in enumerate(values):
            try:
                ipaddress.IPv4Address(value)
            except ValueError:
                self.r.error(d[key].line_of(i), f"{what}.{key}: '{value}' is not an IPv4 address")
        return values

    def _cidrs(self, d: SrcDict, key: str, what: str) -> tuple:
        values = self.r.text_list(d, key, what)
        out = []
        for i, value in enumerate(values):
            try:
                out.append(str(ipaddress.IPv4Network(value, strict=False)))
            except ValueError:
                self.r.error(d[key].line_of(i), f"{what}.{key}: '{value}' is not an IPv4 "
                             "address or network")
        return tuple(out)

    def dns(self) -> tuple:
        d = self.section("dns")
        self.r.keys(d, "dns", ("upstreams",))
        return self._addresses(d, "upstreams", "dns")

    def ntp(self) -> tuple:
        wrapper = SrcDict(ntp=self.top.get("ntp"))
        wrapper.line, wrapper.lines = self.top.line, {"ntp": self.top.line_of("ntp")}
        return self._addresses(wrapper, "ntp", "zone file")

    def naming(self) -> str:
        default = "{pod}-u{unit:02d}"
        naming = self.r.text(self.top, "naming", "zone file", default) or default
        why = ""
        try:
            ok = "unit" in template_fields(naming, NAMING_FIELDS)
            naming.format(pod="p01", unit=1, pod_index=1)
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            ok, why = False, f" ({exc})"
        if not ok:
            self.r.error(self.top.line_of("naming"),
                         f"naming: '{naming}' must be a template with {{unit}} and "
                         f"only {{pod}}, {{pod_index}}, {{unit}}{why}")
            return default  # so later checks render names with something sane
        return naming

    def _entries(self, key: str, allowed, required, make) -> dict:
        section = self.section(key)
        out = {}
        for name, spec in section.items():
            what = f"{key}.{name}"
            self.ident(section, name, key)
            spec = self.r.mapping(spec, section.line_of(name), what)
            self.r.keys(spec, what, allowed, required)
            out[name] = make(name, spec, what)
        return out

    def images(self) -> dict:
        def make(name, spec, what):
            cmdline = self.r.text(spec, "cmdline", what, "") or ""
            if re.search(r"[|&]", cmdline):  # iPXE's || and && would end the kernel line
                self.r.error(spec.line_of("cmdline"), f"{what}.cmdline: '|' and '&' are not "
                             "allowed (the iPXE script would read them as operators)")
            return Image(name, self.path_text(spec, "kernel", what),
                         self.path_text(spec, "initrd", what), cmdline)

        return self._entries("images", ("kernel", "initrd", "cmdline"), ("kernel", "initrd"), make)

    def path_text(self, d: SrcDict, key: str, what: str) -> str:
        """A file the zone names: no spaces either, it becomes part of a URL or a command."""
        value = self.r.text(d, key, what, "") or ""
        if re.search(r"\s", value):
            self.r.error(d.line_of(key), f"{what}.{key}: '{value}' must not contain spaces")
        return value

    def firmware(self) -> dict:
        def make(name, spec, what):
            digest = (self.r.text(spec, "sha256", what, "") or "").lower()
            if "sha256" in spec and not re.fullmatch(r"[0-9a-f]{64}", digest):
                self.r.error(spec.line_of("sha256"), f"{what}.sha256 must be 64 hex digits")
            return Firmware(name, self.r.text(spec, "component", what, ""),
                            self.r.text(spec, "version", what, ""),
                            self.path_text(spec, "image", what), digest)

        keys = ("component", "version", "image", "sha256")
        return self._entries("firmware", keys, keys, make)

    def credentials(self) -> BmcCredentials:
        d = self.section("credentials")
        self.r.keys(d, "credentials", ("bmc",))
        bmc = self.r.mapping(d.get("bmc"), d.line_of("bmc"), "credentials.bmc")
        self.r.keys(bmc, "credentials.bmc", ("username", "password_file", "password_env"))
        return BmcCredentials(self.r.text(bmc, "username", "credentials.bmc", "admin"),
                              self.r.text(bmc, "password_file", "credentials.bmc"),
                              self.r.text(bmc, "password_env", "credentials.bmc"))

    def redfish(self) -> Redfish:
        d = self.section("redfish")
        self.r.keys(d, "redfish", ("url", "system", "verify_tls", "ca_file"))
        verify = d.get("verify_tls", True)
        if not isinstance(verify, bool):
            self.r.error(d.line_of("verify_tls"), "redfish.verify_tls must be true or false")
            verify = True
        return Redfish(self.r.text(d, "url", "redfish", Redfish.url),
                       self.r.text(d, "system", "redfish", "auto"), verify,
                       self.r.text(d, "ca_file", "redfish"))

    def dhcp(self) -> DhcpSettings:
        d = self.section("dhcp")
        self.r.keys(d, "dhcp", ("lease_time", "renew_time", "rebind_time", "trusted_relays",
                                     "relay_sources"))
        lease = self.r.integer(d, "lease_time", "dhcp", 3600, low=60, high=U32)
        renew = self.r.integer(d, "renew_time", "dhcp", lease // 2, low=30, high=U32)
        rebind = self.r.integer(d, "rebind_time", "dhcp", lease * 7 // 8, low=30, high=U32)
        if not renew < rebind < lease:  # RFC 2131 4.4.5: T1 < T2 < lease
            key = next((k for k in ("renew_time", "rebind_time") if k in d), "lease_time")
            self.r.error(d.line_of(key), f"dhcp: renew_time {renew} < rebind_time {rebind} < "
                         f"lease_time {lease} does not hold")
            lease, renew, rebind = DhcpSettings.lease_time, DhcpSettings.renew_time, \
                DhcpSettings.rebind_time
        return DhcpSettings(lease, renew, rebind, self._addresses(d, "trusted_relays", "dhcp"),
                            self._cidrs(d, "relay_sources", "dhcp"))

    def up(self) -> UpSettings:
        d = self.section("up")
        self.r.keys(d, "up", ("min_ready", "max_failed", "power_on_per_second"))
        return UpSettings(self.r.number(d, "min_ready", "up", 0.75, 0.0, 1.0),
                          self.r.number(d, "max_failed", "up", 0.25, 0.0, 1.0),
                          self.r.number(d, "power_on_per_second", "up", 4.0, 0.01, 10000))

    def roles(self, zone: Zone) -> dict:
        def make(name, spec, what):
            kind = self.r.text(spec, "kind", what, "server")
            if kind not in KINDS:
                self.r.error(spec.line_of("kind"), f"{what}.kind must be switch or server")
            ztp = self.r.text(spec, "ztp", what)
            if ztp is not None and ztp not in ZTP_KINDS:
                self.r.error(spec.line_of("ztp"), f"{what}.ztp: unknown ZTP kind '{ztp}' "
                             f"(one of {', '.join(ZTP_KINDS)})")
            image = self.r.text(spec, "image", what)
            if image is not None and image not in zone.images:
                self.r.error(spec.line_of("image"), f"{what}.image: no image '{image}' in images")
            firmware = self.r.text_list(spec, "firmware", what)
            for i, fw in enumerate(firmware):
                if fw not in zone.firmware:
                    self.r.error(spec["firmware"].line_of(i),
                                 f"{what}.firmware: no firmware '{fw}' in firmware")
            groups = self.r.text_list(spec, "groups", what)
            for i, group in enumerate(groups):
                if not IDENT.match(group):
                    self.r.error(spec["groups"].line_of(i), f"{what}.groups: '{group}' is not a "
                                 "valid group name")
            return Role(name, kind, ztp, image, firmware, groups)

        return self._entries("roles", ("kind", "ztp", "image", "firmware", "groups"), ("kind",), make)

    def _role_ref(self, roles, d: SrcDict, what: str, kind: str | None = None):
        role = self.r.text(d, "role", what)
        if role is None:
            return None
        if role not in roles:
            hint = f" (roles: {', '.join(sorted(roles))})" if roles else ""
            self.r.error(d.line_of("role"), f"{what}.role: no role '{role}'{hint}")
        elif kind and roles[role].kind != kind:
            self.r.error(d.line_of("role"), f"{what}.role: '{role}' is a {roles[role].kind}, "
                         f"not a {kind}")
        return role

    def _circuit(self, d: SrcDict, key: str, what: str, default: str,
                 fields=CIRCUIT_FIELDS) -> str:
        template = self.r.text(d, key, what, default) or default
        why = ""
        try:
            ok = bool(template_fields(template, fields) & set(PORT_FIELDS))
            template.format(**{f: 1 for f in fields})
        except (ValueError, KeyError, IndexError) as exc:
            ok, why = False, f" ({exc})"
        if not ok:
            self.r.error(d.line_of(key), f"{what}.{key}: '{template}' must contain {{port}}, "
                         f"{{port0}} or {{lane}} and otherwise only "
                         f"{', '.join('{%s}' % f for f in fields[3:])}{why}")
            return default
        return template

    def _forms(self, d: SrcDict, what: str, inherited: tuple, fields=CIRCUIT_FIELDS) -> tuple:
        """(circuit-id, its line, remote-id, its line) of a switch or the pod template:
        its own keys, else its ``relay:`` preset's, else ``inherited``."""
        circuit, circuit_line, remote, remote_line = inherited
        nos = self.r.text(d, "relay", what)
        if nos is not None and nos not in RELAY_PRESETS:
            self.r.error(d.line_of("relay"), f"{what}.relay: unknown relay '{nos}' (one of "
                         f"{', '.join(RELAY_PRESETS)})")
        elif nos is not None:
            circuit, remote = RELAY_PRESETS[nos]
            circuit_line = remote_line = d.line_of("relay")
        if "circuit_id" in d:
            circuit = self._circuit(d, "circuit_id", what, circuit, fields)
            circuit_line = d.line_of("circuit_id")
        if "remote_id" in d:
            remote, remote_line = self.r.text(d, "remote_id", what), d.line_of("remote_id")
        return circuit, circuit_line, remote, remote_line

    def pod_switches(self, roles, networks: dict) -> tuple[dict, tuple]:
        tpl = self.section("pod_template")
        self.r.keys(tpl, "pod_template", ("switches", "circuit_id", "relay", "units"),
                    ("units",) if "pod_template" in self.top else ())
        forms = self._forms(tpl, "pod_template", (DEFAULT_CIRCUIT, tpl.line, None, 0))
        sw = self.r.mapping(tpl.get("switches"), tpl.line_of("switches"), "pod_template.switches")
        out = {}
        for key, spec in sw.items():
            what = f"pod_template.switches.{key}"
            self.label(sw, key, "pod_template.switches")
            spec = self.r.mapping(spec, sw.line_of(key), what)
            self.r.keys(spec, what, ("role", "remote_id", "uplink", "circuit_id", "relay",
                                     "serves"), ("role",))
            up = self.r.mapping(spec.get("uplink"), spec.line_of("uplink"), f"{what}.uplink")
            self.r.keys(up, f"{what}.uplink", ("switch", "port"), ("switch", "port") if up else ())
            circuit, cline, remote, rline = self._forms(spec, what, forms)
            out[key] = SwitchSpec(key, self._role_ref(roles, spec, what, "switch"), remote,
                                  circuit, self.r.text(up, "switch", f"{what}.uplink"),
                                  self.r.text(up, "port", f"{what}.uplink"),
                                  circuit_line=cline, remote_line=rline,
                                  serves=self.ports_serve(spec, what, networks.get(key)))
        return out, forms

    def ports_serve(self, spec: SrcDict, what: str, namesake: Network | None) -> str:
        """Whose nodes a pod switch's numbered ports lead to: its ``serves``; else bmc when
        the network of its own name serves BMCs (the ``lom`` switch of the ``lom``
        network), else servers."""
        serves = self.r.text(spec, "serves", what)
        if serves is None:
            return "bmc" if namesake is not None and namesake.serves == "bmc" else "server"
        if serves not in PORTS_SERVE:
            self.r.error(spec.line_of("serves"), f"{what}.serves must be one of "
                         f"{', '.join(PORTS_SERVE)}")
            return "server"
        return serves

    def core(self, forms: tuple, pod_switches: dict) -> dict:
        """Core switches inherit the pod template's circuit-id (not its remote-id)."""
        section = self.section("core")
        inherited = (forms[0], forms[1], None, 0)
        out = {}
        for key, spec in section.items():
            what = f"core.{key}"
            self.label(section, key, "core")
            spec = self.r.mapping(spec, section.line_of(key), what)
            self.r.keys(spec, what, ("remote_id", "circuit_id", "relay", "mac"))
            if key in pod_switches:
                self.r.error(section.line_of(key), f"{what}: a pod switch has this name too")
            circuit, cline, remote, rline = self._forms(spec, what, inherited, CORE_CIRCUIT_FIELDS)
            if field_names(circuit) & {"pod", "pod_index"}:
                self.r.error(section.line_of(key), f"{what}: the circuit_id it inherits, "
                             f"'{circuit}', names a pod; give it its own circuit_id or relay")
            out[key] = SwitchSpec(key, None, remote, circuit, mac=self.mac(spec, "mac", what),
                                  circuit_line=cline, remote_line=rline)
        return out

    def mac(self, d: SrcDict, key, what: str) -> str | None:
        """A MAC address the zone sets, normalised to ``0c:29:ef:01:02:03``."""
        value = d.get(key)
        if value is None:
            return None
        mac = mac_bytes(str(value), raw=False) if isinstance(value, (str, int)) else None
        if mac is None:
            self.r.error(d.line_of(key), f"{what}.{key}: '{str(value)[:40]}' is not a MAC "
                         "address (0c:29:ef:01:02:03, 0c-29-..., 0c29.ef01.0203 or 0c29ef010203)")
            return None
        return mac_text(mac)

    def pod_macs(self, spec: SrcDict, what: str, switches: dict) -> dict:
        macs = self.r.mapping(spec.get("macs"), spec.line_of("macs"), f"{what}.macs")
        out = {}
        for key in macs:
            if key not in switches:
                self.r.error(macs.line_of(key), f"{what}.macs: no switch '{key}' in "
                             "pod_template.switches")
            mac = self.mac(macs, key, f"{what}.macs")
            if mac is not None:
                out[key] = mac
        return out

    def _unit_roles(self, items, what: str, roles, limit: int) -> dict:
        """A ``units:`` list → {unit: role}; a unit claimed twice is an error."""
        out, seen = {}, {}
        for i, entry in enumerate(items):
            line = items.line_of(i)
            entry = self.r.mapping(entry, line, f"{what}[{i}]")
            self.r.keys(entry, f"{what}[{i}]", (), ("units", "role"))
            role = self._role_ref(roles, entry, f"{what}[{i}]", "server")
            try:
                units = parse_units(entry.get("units"), limit) if "units" in entry else []
            except ValueError as exc:
                self.r.error(entry.line_of("units"), f"{what}[{i}].units: {exc}")
                continue
            for unit in units:
                if unit in seen:
                    self.r.error(entry.line_of("units"),
                                 f"{what}[{i}]: unit {unit} is already claimed at line {seen[unit]}")
                    break  # one report per entry: a range can repeat thousands
                seen[unit] = entry.line_of("units")
                out[unit] = role
        return out

    def unit_limit(self, networks: dict) -> int:
        """The most units one pod can have: what its smallest subnet holds."""
        return min([MAX_UNITS] + [net.subnet_size for net in networks.values()])

    def pods(self, roles, networks: dict, switches: dict) -> tuple:
        limit = self.unit_limit(networks)
        tpl = self.section("pod_template")
        units_raw = self.r.sequence(tpl.get("units"), tpl.line_of("units"), "pod_template.units")
        base_units = self._unit_roles(units_raw, "pod_template.units", roles, limit)
        pods_raw = self.r.sequence(self.top.get("pods"), self.top.line_of("pods"), "pods")
        out, names, indexes, servers = [], {}, {}, 0
        for i, spec in enumerate(pods_raw):
            what = f"pods[{i}]"
            spec = self.r.mapping(spec, pods_raw.line_of(i), what)
            self.r.keys(spec, what, ("overrides", "macs"), ("name", "index"))
            name = self.r.text(spec, "name", what, "") or ""
            index = self.r.integer(spec, "index", what, 0, low=1)
            if name and not NAME.match(name):
                self.r.error(spec.line_of("name"), f"{what}.name: '{name}' is not a valid DNS label")
            self._unique(names, name, spec.line_of("name"), f"{what}: pod name '{name}'")
            self._unique(indexes, index, spec.line_of("index"), f"{what}: pod index {index}")
            over = self.r.mapping(spec.get("overrides"), spec.line_of("overrides"), f"{what}.overrides")
            self.r.keys(over, f"{what}.overrides", ("units",))
            units = dict(base_units)
            if "units" in over:
                seq = self.r.sequence(over["units"], over.line_of("units"), f"{what}.overrides.units")
                units.update(self._unit_roles(seq, f"{what}.overrides.units", roles, limit))
            servers += len(units)
            if servers > MAX_SERVERS:
                self.r.error(pods_raw.line_of(i), f"{what}: more than {MAX_SERVERS} servers in "
                             "the zone")
                break
            out.append(Pod(name, index or 0, dict(sorted(units.items())),
                           self.pod_macs(spec, what, switches)))
        return tuple(out)

    def _unique(self, seen: dict, value, line: int, what: str) -> None:
        if value in seen and value not in ("", 0, None):
            self.r.error(line, f"{what} is already used at line {seen[value]}")
        seen.setdefault(value, line)
