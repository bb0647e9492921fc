"""The zone file as a JSON Schema (draft 2020-12), for editors: ``zone schema``.

Built from the parser's own names, patterns, enumerations and the model's defaults, so
an editor flags what ``zone validate`` would (a key that does not exist, a wrong type or
name, a template without its port field). ``zone validate`` still has the last word on
what a schema cannot say: cross-references, address space, collisions, files.
The unit tests compare every section's keys here with the keys the parser accepts.
"""

from __future__ import annotations

from ..schema import CIRCUIT_FIELDS, IDENT, NAME, PORT_FIELDS, URL
from .checks import POD_FIELDS, REDFISH_FIELDS, REMOTE_FIELDS
from .model import BOND_MODES, KINDS, PORTS_SERVE, SERVES, ZTP_KINDS, Addressing, \
    BmcCredentials, DhcpSettings, Redfish, SiteSettings, UpSettings
from .parse import CORE_CIRCUIT_FIELDS, DEFAULT_CIRCUIT, MAX_DOMAIN, NAMING_FIELDS, \
    RELAY_PRESETS, TOP_KEYS, TOP_REQUIRED, U32
from .site import KEY_TYPES, NIC_NAME

TOP = "zone file"          # how the parser names the top mapping
SCHEMA_ID = "https://zone-bootstrap.invalid/zone-file.schema.json"
# No text may hold what could break a rendered script (schema.UNSAFE): a class written
# so that Python's re and ECMA-262 (what editors run) read it alike, used as "must not
# contain" (a search), since "$" would let a trailing newline through in Python.
UNSAFE_CLASS = r"""\x00-\x1f\x7f-\x9f\u2028\u2029"'\\`$"""
PATH_FORBIDS = r"\s"               # a file the zone names: no spaces either
CMDLINE_FORBIDS = "|&"             # iPXE reads | and & as operators
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4 = rf"^({_OCTET}\.){{3}}{_OCTET}$"
IPV4_OR_CIDR = rf"^({_OCTET}\.){{3}}{_OCTET}(/(3[0-2]|[12]?[0-9]))?$"
CIDR = rf"^({_OCTET}\.){{3}}{_OCTET}/(3[0-2]|[12]?[0-9])$"
_LABEL = NAME.pattern[1:-1]
DOMAIN = rf"^{_LABEL}(\.{_LABEL})*\.?$"
_H2, _H4 = "[0-9A-Fa-f]{2}", "[0-9A-Fa-f]{4}"
MAC = rf"^({_H2}:){{5}}{_H2}$|^({_H2}-){{5}}{_H2}$|^{_H4}\.{_H4}\.{_H4}$|^[0-9A-Fa-f]{{12}}$"
UNITS = r"^\s*[0-9]+\s*(-\s*[0-9]+\s*)?(,\s*[0-9]+\s*(-\s*[0-9]+\s*)?)*$"
SHA256 = r"^[0-9A-Fa-f]{64}$"
SSH_KEY = r"^(%s) [A-Za-z0-9+/]+={0,2}( [^\n]*)?$" % "|".join(
    t.replace(".", r"\.") for t in KEY_TYPES)


def _fields(names) -> str:
    return ", ".join("{%s}" % name for name in names)


def _with_field(names) -> str:
    """A pattern that finds one of the template fields ``names`` (with or without a spec)."""
    return r"\{(%s)[:}]" % "|".join(names)


def text(description: str, pattern: str | None = None, forbids: str = "", **extra) -> dict:
    """A text value without the characters a script could trip on (and ``forbids``),
    matching ``pattern`` if given; the parser also takes a number and reads it as text."""
    out = {"type": ["string", "number"], "description": description,
           "not": {"type": "string", "pattern": f"[{UNSAFE_CLASS}{forbids}]"}, **extra}
    if pattern is not None:
        out["pattern"] = pattern
    return out


def name(description: str, pattern=NAME, **extra) -> dict:
    return text(description, pattern.pattern, **extra)


def integer(description: str, low: int | None = None, high: int | None = None, **extra) -> dict:
    out = {"type": "integer", "description": description, **extra}
    if low is not None:
        out["minimum"] = low
    if high is not None:
        out["maximum"] = high
    return out


def number(description: str, low: float, high: float, default: float) -> dict:
    return {"type": "number", "minimum": low, "maximum": high, "default": default,
            "description": description}


def strings(description: str, pattern: str) -> dict:
    return {"type": "array", "items": {"type": "string", "pattern": pattern},
            "description": description}


def mapping(description: str, properties: dict, required=(), **extra) -> dict:
    out = {"type": "object", "description": description, "properties": properties,
           "additionalProperties": False, **extra}
    if required:
        out["required"] = list(required)
    return out


def named(description: str, entry: dict, pattern=IDENT) -> dict:
    """A mapping of names the zone defines (networks, roles...) to their specs."""
    return {"type": "object", "description": description,
            "propertyNames": {"pattern": pattern.pattern}, "additionalProperties": entry}


RELAY = {"enum": list(RELAY_PRESETS), "description": "the NOS whose relay writes Option 82: "
         "sets circuit_id and remote_id unless given"}


def _circuit(fields, **extra) -> dict:
    return text(f"circuit-id template: one of {_fields(PORT_FIELDS)}, else only "
                f"{_fields(fields[len(PORT_FIELDS):])}",
                _with_field(PORT_FIELDS), **extra)


def _remote(fields) -> dict:
    return text(f"remote-id: 'mac', or a template with {_fields(sorted(fields))}")


def _network() -> dict:
    return mapping("a network, cut into /prefix subnets: subnet i is pod index i's", {
        "supernet": text("the network's range (host bits zero)", CIDR),
        "prefix": integer("prefix length of each pod subnet (from the supernet's to 30)",
                          0, 30),
        "serves": {"enum": list(SERVES), "description": "whose identity lives on this network "
                   "(default: mgmt → switch, lom → bmc, else server)"},
        "vlan": integer("the VLAN id, for {vlan} in circuit-id templates", 1, 4094),
        "core_from": integer("host number of the first core switch in subnet 0 (default: "
                             "addressing.switches_from)", 1, 1 << 24),
    }, ("supernet", "prefix"))


def _pod_switch() -> dict:
    return mapping("a switch of every pod (its host name: <pod>-<key>)", {
        "role": name("a role of kind switch", IDENT),
        "relay": RELAY,
        "circuit_id": _circuit(CIRCUIT_FIELDS),
        "remote_id": _remote(REMOTE_FIELDS),
        "uplink": mapping("the upstream switch and port this switch is cabled to", {
            "switch": name("a core switch or another pod switch"),
            "port": text("the upstream port: its number or interface name, a template with "
                         f"{_fields(sorted(POD_FIELDS))}"),
        }, dependentRequired={"switch": ["port"], "port": ["switch"]}),
        "serves": {"enum": list(PORTS_SERVE), "description": "whose nodes its numbered ports "
                   "lead to (default: bmc when the network of its name serves BMCs)"},
    }, ("role",))


def _unit_entries(description: str) -> dict:
    return {"type": "array", "description": description, "items": mapping(
        "a unit selection and its role", {
            "units": {"$ref": "#/$defs/units"},
            "role": name("a role of kind server", IDENT),
        }, ("units", "role"))}


def _sections() -> dict:
    """Each top-level key's schema."""
    tls = Redfish.verify_tls
    return {
        "zone": name("the zone's name, a DNS label"),
        "domain": text(f"the DNS domain every host is named under (at most {MAX_DOMAIN} "
                       "characters)", DOMAIN, maxLength=MAX_DOMAIN + 1),
        "networks": named("the networks, by name", _network()) | {"minProperties": 1},
        "addressing": mapping("host numbers in a pod subnet", {
            "gateway": integer("the pod gateway (the relay's giaddr)", 1, 1 << 24,
                               default=Addressing.gateway),
            "switches_from": integer("the first pod switch, then template order", 1, 1 << 24,
                                     default=Addressing.switches_from),
            "units_from": integer("unit u is host units_from + u", 1, 1 << 24,
                                  default=Addressing.units_from),
        }),
        "controller": mapping("the appliance as nodes reach it", {
            "url": text("plain http(s) URL of the controller", URL.pattern,
                        default="http://127.0.0.1:8080"),
        }),
        "dns": mapping("DNS", {"upstreams": strings("recursive servers (IPv4) for names "
                                                    "outside the zone", IPV4)}),
        "ntp": strings("NTP servers (IPv4) handed out by DHCP", IPV4),
        "naming": text(f"server host name template: {{unit}}, optionally "
                       f"{_fields(NAMING_FIELDS[:-1])}", _with_field(("unit",)),
                       default="{pod}-u{unit:02d}"),
        "images": named("boot images, by name", mapping("a kernel and initrd iPXE boots", {
            "kernel": text("kernel path, relative to the zone file", forbids=PATH_FORBIDS),
            "initrd": text("initrd path, relative to the zone file", forbids=PATH_FORBIDS),
            "cmdline": text("extra kernel command line", forbids=CMDLINE_FORBIDS, default=""),
        }, ("kernel", "initrd"))),
        "firmware": named("firmware packages, by name", mapping("a firmware image", {
            "component": text("the Redfish inventory component (BIOS, BMC...)"),
            "version": text("the version the component must report"),
            "image": text("image path, relative to the zone file", forbids=PATH_FORBIDS),
            "sha256": text("the image's sha256 (64 hex digits)", SHA256),
        }, ("component", "version", "image", "sha256"))),
        "credentials": mapping("credentials, never in clear text", {
            "bmc": mapping("BMC login for Redfish", {
                "username": text("BMC user", default=BmcCredentials.username),
                "password_file": text("file holding the password, relative to the zone file"),
                "password_env": text("environment variable holding the password"),
            }),
        }),
        "redfish": mapping("how BMCs are reached", {
            "url": text(f"BMC URL template: {_fields(sorted(REDFISH_FIELDS))}",
                        default=Redfish.url),
            "system": text("Redfish system id: 'auto' or a template like url's",
                           default=Redfish.system),
            "verify_tls": {"type": "boolean", "default": tls,
                           "description": "check the BMCs' TLS certificates"},
            "ca_file": text("CA bundle for the BMCs' certificates, relative to the zone file"),
        }),
        "roles": named("roles, by name", mapping("what a node is and gets", {
            "kind": {"enum": list(KINDS), "description": "switch or server"},
            "ztp": {"enum": list(ZTP_KINDS), "description": "a switch's ZTP flavour"},
            "image": name("a key of images", IDENT),
            "firmware": strings("keys of firmware", IDENT.pattern),
            "groups": strings("Ansible groups", IDENT.pattern),
        }, ("kind",))),
        "pod_template": mapping("what every pod is made of", {
            "switches": named("the pod's switches, by key", _pod_switch(), NAME),
            "circuit_id": _circuit(CIRCUIT_FIELDS, default=DEFAULT_CIRCUIT),
            "relay": RELAY,
            "units": _unit_entries("which role each unit has"),
        }, ("units",)),
        "core": named("core switches (subnet 0), by host name", mapping("a core switch", {
            "relay": RELAY,
            "circuit_id": _circuit(CORE_CIRCUIT_FIELDS),
            "remote_id": _remote(("switch",)),
            "mac": text("the switch's MAC, as a relay's MAC remote-id gives it", MAC),
        }), NAME),
        "pods": {"type": "array", "description": "the pods", "items": mapping("a pod", {
            "name": name("the pod's name, a DNS label"),
            "index": integer("subnet index of the pod in every network", 1),
            "overrides": mapping("per-pod changes to the template", {
                "units": _unit_entries("units whose role differs from the template's")}),
            "macs": {"type": "object", "description": "switch key → MAC set in the zone",
                     "propertyNames": {"pattern": NAME.pattern},
                     "additionalProperties": {"type": "string", "pattern": MAC}},
        }, ("name", "index"))},
        "dhcp": mapping("DHCP answers and whom to trust", {
            "lease_time": integer("lease seconds", 60, U32, default=DhcpSettings.lease_time),
            "renew_time": integer("T1 seconds (default lease_time / 2)", 30, U32),
            "rebind_time": integer("T2 seconds (default lease_time × 7/8)", 30, U32),
            "trusted_relays": strings("relay addresses outside the plan to accept", IPV4),
            "relay_sources": strings("networks relayed requests may come from (default: "
                                     "subnet 0 of every network)", IPV4_OR_CIDR),
        }),
        "up": mapping("zone up's pacing", {
            "min_ready": number("share of a pod's servers installed before Ansible runs",
                                0.0, 1.0, UpSettings.min_ready),
            "max_failed": number("share of a pod's hosts that may fail", 0.0, 1.0,
                                 UpSettings.max_failed),
            "power_on_per_second": number("BMC power-ons per second", 0.01, 10000,
                                          UpSettings.power_on_per_second),
        }),
        "site": _site(),
    }


def _site() -> dict:
    site = SiteSettings()
    return mapping("what installed servers need from this site", {
        "ssh_authorized_keys": {"type": "array", "description": "OpenSSH public keys for "
                                "every server's cloud-init", "items": text("a public key",
                                                                           SSH_KEY)},
        "ssh_authorized_keys_file": text("an authorized_keys file, relative to the zone file",
                                         forbids=PATH_FORBIDS),
        "public_url": text("base of every URL handed to nodes (default controller.url)",
                           URL.pattern),
        "nics": dict(strings("the NICs cabled to the ToR pair, bonded, tor-a first",
                             NIC_NAME.pattern), minItems=1, uniqueItems=True,
                     default=list(site.nics)),
        "bond_mode": {"enum": list(BOND_MODES), "default": site.bond_mode,
                      "description": "Linux bonding mode of the servers' bond"},
        "ipxe_dir": text("iPXE binaries served over HTTP", default=site.ipxe_dir),
    })


def zone_schema() -> dict:
    """The JSON Schema of a zone file."""
    sections = _sections()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "zone file",
        "description": "A bare-metal zone for zone-bootstrap (docs/zone-file.md). "
                       "`zone validate` checks what a schema cannot.",
        "type": "object",
        "properties": {key: sections[key] for key in TOP_KEYS if key in sections},
        "required": list(TOP_REQUIRED),
        "additionalProperties": False,
        "$defs": {"units": {
            "description": "units: 7, \"7-40\", \"1,3,5-7\" or a list of those",
            "anyOf": [{"type": "integer", "minimum": 1},
                      {"type": "string", "pattern": UNITS},
                      {"type": "array", "items": {"$ref": "#/$defs/units"}}]}},
    }


def section_keys(schema: dict | None = None) -> dict:
    """{section path: (its keys, its required keys)} of every mapping in the schema, paths
    written as the parser names them with ``*`` for a name and ``[]`` for an item:
    ``zone file``, ``networks.*``, ``pods[].overrides.units[]``."""
    out: dict = {}
    _walk(schema or zone_schema(), TOP, out)
    return out


def _walk(node: dict, path: str, out: dict) -> None:
    def join(suffix: str) -> str:
        return suffix.lstrip(".") if path == TOP else path + suffix

    if "properties" in node:
        out[path] = (set(node["properties"]), set(node.get("required", ())))
        for key, sub in node["properties"].items():
            _walk(sub, join(f".{key}"), out)
    if isinstance(node.get("additionalProperties"), dict):
        _walk(node["additionalProperties"], join(".*"), out)
    if isinstance(node.get("items"), dict):
        _walk(node["items"], join("[]"), out)
