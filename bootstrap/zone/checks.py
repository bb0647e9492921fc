"""Rules that need the whole normalised zone: address space, ports, names."""

from __future__ import annotations

import ipaddress
import os
import re

from ..schema import NAME, URL, Reader, circuit_text, field_names, template_fields
from ..yamlsrc import SrcDict
from .model import LEARNED, Zone

POD_FIELDS = {"pod", "pod_index"}
REMOTE_FIELDS = POD_FIELDS | {"switch"}
MAX_PORT = 256       # the ports a circuit-id template is read for (locator.MAX_PORT)
MAX_SUBOPTION = 255  # an Option 82 sub-option's length is one byte
NAMES_SWITCH = {"switch", "pod", "pod_index"}
REDFISH_FIELDS = {"name", "lom_address", "pod", "pod_index", "unit", "bmc"}
FQDN_MAX = 253       # a name's text form, so that its wire form fits 255 bytes
BMC_SUFFIX = "-bmc"  # a server's BMC is named after it


def check_zone(r: Reader, zone: Zone, top: SrcDict) -> None:
    """Run every cross-object rule; on a zone that already has problems a rule
    may meet half-built parts, and then it stays silent: the earlier problem
    already names the cause."""
    for check in (_check_overlaps, _check_fit, _check_switch_refs, _check_ports,
                  _check_names, _check_circuits, _check_macs, _check_redfish, _check_addresses):
        try:
            check(r, zone, top)
        except (KeyError, TypeError, AttributeError, ValueError, IndexError):
            if not r.problems:
                raise


def _line(top: SrcDict, *path) -> int:
    node, line = top, top.line
    for key in path:
        if not isinstance(node, dict) or key not in node:
            break
        line = node.line_of(key)
        node = node[key]
    return line


def _check_overlaps(r: Reader, zone: Zone, top: SrcDict) -> None:
    nets = list(zone.networks.values())
    for i, a in enumerate(nets):
        for b in nets[i + 1:]:
            if a.supernet.overlaps(b.supernet):
                r.error(_line(top, "networks", b.name, "supernet"),
                        f"networks.{b.name}: {b.supernet} overlaps networks.{a.name} ({a.supernet})")


def _check_fit(r: Reader, zone: Zone, top: SrcDict) -> None:
    a = zone.addressing
    units = [u for pod in zone.pods for u in pod.units]
    last_unit = max(units, default=0)
    first_unit = min(units, default=1)
    n_switches = len(zone.switches)
    for net in zone.networks.values():
        where = _line(top, "networks", net.name, "prefix")
        last_host = net.subnet_size - 2  # the top address is broadcast
        if a.units_from + last_unit > last_host:
            r.error(where, f"networks.{net.name}: unit {last_unit} needs host "
                    f"{a.units_from + last_unit}, but a /{net.prefix} holds hosts 1..{last_host}")
        if max(a.switches_from + n_switches, net.core_host(a, len(zone.core))) - 1 > last_host \
                or a.gateway > last_host:
            r.error(where, f"networks.{net.name}: the gateway and switches do not fit a "
                    f"/{net.prefix}")
        core_hosts = range(net.core_host(a, 0), net.core_host(a, len(zone.core)))
        if a.gateway in core_hosts:
            r.error(_line(top, "networks", net.name), f"networks.{net.name}: the gateway "
                    "collides with a core switch's address")
        for i, pod in enumerate(zone.pods):
            if pod.index >= net.subnet_count:
                r.error(top["pods"][i].line_of("index"),
                        f"pods[{i}]: pod index {pod.index} needs subnet {pod.index} of "
                        f"networks.{net.name} ({net.supernet} holds {net.subnet_count} "
                        f"/{net.prefix} subnets, 0..{net.subnet_count - 1})")
    switch_hosts = range(a.switches_from, a.switches_from + n_switches)
    unit_hosts = range(a.units_from + first_unit, a.units_from + last_unit + 1)
    if a.gateway in switch_hosts or a.gateway in unit_hosts:
        r.error(_line(top, "addressing", "gateway"), "addressing.gateway collides with a switch "
                "or unit address")
    if units and set(switch_hosts) & set(unit_hosts):
        r.error(_line(top, "addressing", "switches_from"),
                f"addressing: switch hosts {switch_hosts.start}..{switch_hosts.stop - 1} overlap "
                f"unit hosts {unit_hosts.start}..{unit_hosts.stop - 1}")


def _check_switch_refs(r: Reader, zone: Zone, top: SrcDict) -> None:
    for key, spec in zone.switches.items():
        line = _line(top, "pod_template", "switches", key, "uplink", "switch")
        if spec.uplink_switch is None:
            continue
        if spec.uplink_switch == key:
            r.error(line, f"pod_template.switches.{key}.uplink: a switch cannot uplink to itself")
        elif spec.uplink_switch not in zone.switches and spec.uplink_switch not in zone.core:
            r.error(line, f"pod_template.switches.{key}.uplink: no switch '{spec.uplink_switch}' "
                    "in pod_template.switches or core")
        _check_template(r, spec.uplink_port, POD_FIELDS,
                        _line(top, "pod_template", "switches", key, "uplink", "port"),
                        f"pod_template.switches.{key}.uplink.port")
    for what, spec, core in _switch_specs(zone):
        if spec.remote_id != LEARNED:
            _check_template(r, spec.remote_id, {"switch"} if core else REMOTE_FIELDS,
                            spec.remote_line, f"{what}.remote_id")


def _check_template(r: Reader, template, fields, line, what) -> bool:
    if template is None:
        return True
    try:
        template_fields(template, fields)
        template.format(**{f: 1 for f in fields})
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        r.error(line, f"{what}: '{template}' may use only "
                f"{', '.join('{%s}' % f for f in sorted(fields))} ({exc})")
        return False
    return True


def _check_ports(r: Reader, zone: Zone, top: SrcDict) -> None:
    """No switch port carries two things: a unit and an uplink, or two uplinks."""
    if not zone.pods:
        return
    pod = zone.pods[0]
    units = {u for p in zone.pods for u in p.units}
    used: dict[tuple, str] = {}
    for key, spec in zone.switches.items():
        for unit in sorted(units):
            text = circuit_text(spec.circuit_id, unit, f"{pod.name}-{key}", pod.name, pod.index)
            used[(key, text)] = f"unit {unit}"
    for key, spec in zone.switches.items():
        if spec.uplink_switch is None or spec.uplink_port is None:
            continue
        try:
            port = spec.uplink_port.format(pod=pod.name, pod_index=pod.index)
        except (ValueError, KeyError, IndexError, AttributeError):
            continue
        slot = (spec.uplink_switch, port)
        if slot in used:
            r.error(_line(top, "pod_template", "switches", key, "uplink", "port"),
                    f"pod_template.switches.{key}.uplink: port {port} of {spec.uplink_switch} "
                    f"already carries {used[slot]}")
        used[slot] = f"the uplink of {key}"


def _bad_host_name(name: str, domain: str) -> str | None:
    """Why ``name`` (and its BMC's name) cannot be a host of ``domain``, or None."""
    if not NAME.match(name) or len(name) + len(BMC_SUFFIX) > 63:
        return f"'{name}' is not a valid DNS label of at most {63 - len(BMC_SUFFIX)} " \
            "characters (a-z, 0-9, '-'; its BMC adds '-bmc')"
    if len(name) + len(BMC_SUFFIX) + 1 + len(domain) > FQDN_MAX:
        return f"'{name}{BMC_SUFFIX}.{domain}' is longer than {FQDN_MAX} characters"
    return None


def _check_host_names(r: Reader, zone: Zone, top: SrcDict) -> None:
    """Every rendered host name is a DNS label; one report per template, not per node."""
    for key in zone.core:
        why = _bad_host_name(key, zone.domain)
        if why:
            r.error(_line(top, "core", key), f"core.{key}: {why}")
    for p in {p.name: p for p in zone.pods}.values():
        for key in zone.switches:
            why = _bad_host_name(f"{p.name}-{key}", zone.domain)
            if why:
                r.error(_line(top, "pod_template", "switches", key), f"pod_template.switches."
                        f"{key}: in pod {p.name}: {why}")
                return
        for unit in p.units:
            why = _bad_host_name(zone.naming.format(pod=p.name, unit=unit, pod_index=p.index),
                                 zone.domain)
            if why:
                r.error(_line(top, "naming"), f"naming: for {p.name} unit {unit}: {why}")
                return


def _check_names(r: Reader, zone: Zone, top: SrcDict) -> None:
    _check_host_names(r, zone, top)
    names: dict[str, str] = {}
    remote_ids: dict[str, str] = {}
    unique_pods = {pod.name: pod for pod in reversed(zone.pods)}.values()
    for pod in unique_pods:
        for unit in pod.units:
            name = zone.naming.format(pod=pod.name, unit=unit, pod_index=pod.index)
            if name in names:
                r.error(_line(top, "naming"), f"naming: '{zone.naming}' gives '{name}' to both "
                        f"{names[name]} and {pod.name} unit {unit}")
                return
            names[name] = f"{pod.name} unit {unit}"
        for key, spec in zone.switches.items():
            if spec.remote_id in (None, LEARNED):
                continue
            rid = spec.remote_id.format(pod=pod.name, pod_index=pod.index, switch=f"{pod.name}-{key}")
            if rid in remote_ids:
                r.error(_line(top, "pod_template", "switches", key, "remote_id"),
                        f"remote_id '{rid}' names both {remote_ids[rid]} and {pod.name} {key}")
                return
            remote_ids[rid] = f"{pod.name} {key}"
    for key, spec in zone.core.items():
        rid = None if spec.remote_id in (None, LEARNED) else spec.remote_id.format(switch=key)
        if rid in remote_ids:
            r.error(spec.remote_line, f"core.{key}.remote_id '{rid}' is used by {remote_ids[rid]}")


def _switch_specs(zone: Zone):
    """(what, spec, is core) of every switch of the pod template and of the core."""
    for key, spec in zone.switches.items():
        yield f"pod_template.switches.{key}", spec, False
    for key, spec in zone.core.items():
        yield f"core.{key}", spec, True


def _relayed_networks(zone: Zone, key: str, spec, core: bool) -> list:
    """The networks whose clients a switch relays: what its ports lead to."""
    kinds = set() if core else {spec.serves}
    if core or any(s.uplink_switch == key for s in zone.switches.values()):
        kinds.add("switch")
    return [n for n in zone.networks.values() if n.serves in kinds]


def _port_span(zone: Zone, key: str, core: bool) -> int:
    """The highest port of a switch that leads somewhere: units, uplinks aimed at it."""
    span = 0 if core else max((u for p in zone.pods for u in p.units), default=0)
    for spec in zone.switches.values():
        if spec.uplink_switch != key or spec.uplink_port is None:
            continue
        for pod in zone.pods:
            digits = re.search(r"(\d+)$", spec.uplink_port.format(pod=pod.name,
                                                                  pod_index=pod.index))
            if digits:  # a port0 or lane form's number is at least the port less one
                span = max(span, int(digits.group(1)) + 1)
    return min(span, MAX_PORT)


def _check_circuits(r: Reader, zone: Zone, top: SrcDict) -> None:
    """Every circuit-id text names one port of one switch: {vlan} only where the networks
    have one, no two ports (of one or two switches) with the same text, none over 255 bytes."""
    texts: dict = {}
    for what, spec, core in _switch_specs(zone):
        key = spec.key
        if core and field_names(spec.circuit_id) & POD_FIELDS:
            continue  # reported where the core switch is built
        vlans = {None}
        if "vlan" in field_names(spec.circuit_id):
            nets = _relayed_networks(zone, key, spec, core)
            bare = [n.name for n in nets if n.vlan is None]
            if bare:
                r.error(spec.circuit_line, f"{what}: circuit_id '{spec.circuit_id}' uses {{vlan}}, "
                        f"but networks.{bare[0]} (whose clients it relays) has no vlan")
                continue
            vlans = {n.vlan for n in nets} or {None}
        if field_names(spec.circuit_id) & NAMES_SWITCH:
            pods = [(None, key)] if core else [(p, f"{p.name}-{key}") for p in zone.pods]
            last = _port_span(zone, key, core)
        else:
            pods, last = [(None, None)], MAX_PORT
        _check_texts(r, texts, spec, what, pods, vlans, last)


def _check_texts(r: Reader, texts: dict, spec, what: str, pods, vlans, last: int) -> None:
    """Add a template's texts to ``texts`` (text → (switch or template, port)); the first
    clash or over-long text is reported and ends the template's check."""
    for pod, name in pods:
        where = {"switch": name or "", "pod": pod.name if pod else "",
                 "pod_index": pod.index if pod else 0}
        owner = name or f"'{spec.circuit_id}'"
        for vlan in vlans:
            for port in range(1, last + 1):
                text = circuit_text(spec.circuit_id, port, vlan=vlan, **where)
                had = texts.setdefault(text, (owner, port))
                if len(text.encode()) > MAX_SUBOPTION:
                    r.error(spec.circuit_line, f"{what}: circuit_id gives '{text[:40]}...', "
                            f"longer than the {MAX_SUBOPTION} bytes Option 82 carries")
                    return
                if had != (owner, port):
                    r.error(spec.circuit_line, f"{what}: circuit_id '{spec.circuit_id}' gives "
                            f"'{text}' to {owner} port {port}, but it already names {had[0]} "
                            f"port {had[1]}: the location would be ambiguous")
                    return


def _check_macs(r: Reader, zone: Zone, top: SrcDict) -> None:
    """A MAC set in the zone names one switch."""
    seen: dict[str, str] = {}
    owners = [(f"core.{k}", s.mac, _line(top, "core", k, "mac")) for k, s in zone.core.items()]
    for i, pod in enumerate(zone.pods):
        for key, mac in pod.macs.items():
            owners.append((f"{pod.name}-{key}", mac, _line(top["pods"][i], "macs", key)))
    for owner, mac, line in owners:
        if mac is None:
            continue
        if mac in seen:
            r.error(line, f"MAC {mac} of {owner} is already the MAC of {seen[mac]}")
        seen.setdefault(mac, owner)


def _check_redfish(r: Reader, zone: Zone, top: SrcDict) -> None:
    line = _line(top, "redfish", "url")
    if _check_template(r, zone.redfish.url, REDFISH_FIELDS, line, "redfish.url"):
        sample = zone.redfish.url.format(name="p01-u01", lom_address="10.0.0.1", pod="p01",
                                         pod_index=1, unit=1, bmc="p01-u01-bmc")
        if not URL.match(sample):
            r.error(line, f"redfish.url: '{zone.redfish.url}' does not give a plain http(s) URL")
    if zone.redfish.system != "auto":
        _check_template(r, zone.redfish.system, REDFISH_FIELDS, _line(top, "redfish", "system"),
                        "redfish.system")


def _owner(zone: Zone, address: ipaddress.IPv4Address) -> str | None:
    """Which planned address ``address`` is (a gateway, a switch, a server or a BMC), in
    O(networks) without compiling the plan."""
    a = zone.addressing
    pods = {pod.index: pod for pod in zone.pods}
    for net in zone.networks.values():
        if address not in net.supernet:
            continue
        index, host = divmod(int(address) - int(net.supernet.network_address), net.subnet_size)
        keys = list(zone.core) if index == 0 else list(zone.switches)
        first = net.core_host(a, 0) if index == 0 else a.switches_from
        pod = pods.get(index)
        if host == a.gateway and (index == 0 or pod):
            return f"the gateway of subnet {index} of networks.{net.name}"
        if 0 <= host - first < len(keys) and (index == 0 or pod):
            key = keys[host - first]
            return f"core switch {key}" if index == 0 else f"switch {pod.name}-{key}"
        unit = host - a.units_from
        if pod and unit in pod.units and net.serves in ("server", "bmc"):
            name = zone.naming.format(pod=pod.name, unit=unit, pod_index=pod.index)
            return f"{name}{BMC_SUFFIX if net.serves == 'bmc' else ''} on networks.{net.name}"
    return None


def _service_addresses(zone: Zone, top: SrcDict):
    """(what, address text, line) of every service address the zone names."""
    host = re.match(r"^https?://([^/:]+)", zone.controller_url)
    if host:
        yield "controller.url", host.group(1), _line(top, "controller", "url")
    for key, values, path in (("dns.upstreams", zone.dns_upstreams, ("dns", "upstreams")),
                              ("ntp", zone.ntp, ("ntp",))):
        for i, value in enumerate(values):
            node = top
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            line = node.line_of(i) if hasattr(node, "line_of") else _line(top, *path)
            yield key, value, line


def _check_addresses(r: Reader, zone: Zone, top: SrcDict) -> None:
    """The controller, DNS and NTP servers never sit on an address the plan hands out,
    and the controller is not its own DNS upstream."""
    controller = None
    for what, text, line in _service_addresses(zone, top):
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue  # a host name: nothing to compare
        if what == "controller.url":
            controller = address
        elif what == "dns.upstreams" and address == controller:
            r.error(line, f"dns.upstreams: {address} is the controller itself (a query loop)")
        owner = _owner(zone, address)
        if owner:
            r.error(line, f"{what}: {address} is also the address of {owner}")


def check_files(r: Reader, zone: Zone, top: SrcDict, hashes: bool = True) -> None:
    """Every file the zone names exists (relative to the zone file's folder), and each
    firmware image has its sha256 unless ``hashes`` is off."""
    from ..redfish.images import sha256_file

    c = zone.credentials
    wanted = [(("credentials", "bmc", "password_file"), c.password_file, None),
              (("redfish", "ca_file"), zone.redfish.ca_file, None)]
    wanted += [(("firmware", f.name, "image"), f.image, f.sha256 if hashes else None)
               for f in zone.firmware.values()]
    # Boot images may come later (zone up --lab installs the lab's): a warning.
    wanted += [(("images", i.name, key), getattr(i, key), "later")
               for i in zone.images.values() for key in ("kernel", "initrd")]
    for path, relative, digest in wanted:
        if not relative:
            continue
        full = zone.path(relative)
        line, what = _line(top, *path), ".".join(path)
        if not os.path.isfile(full):
            report = r.warn if digest == "later" else r.error
            report(line, f"{what}: {full}: no such file" + (
                " (yet: nodes booting this image would fail)" if digest == "later" else ""))
        elif digest == "later":
            continue
        elif digest:
            actual = sha256_file(full)
            if actual != digest:
                r.error(_line(top, *path[:-1], "sha256"), f"{what}: {full}: sha256 is {actual}, "
                        f"the zone file says {digest}")
