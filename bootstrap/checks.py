"""Rules that need the whole normalised zone: address space, ports, names."""

from __future__ import annotations

from .schema import Reader
from .yamlsrc import SrcDict
from .zone import Zone, template_fields

POD_FIELDS = {"pod", "pod_index"}
REDFISH_FIELDS = {"name", "lom_address", "pod", "pod_index", "unit", "bmc"}


def attaches(spec) -> str:
    """What a pod switch's numbered ports lead to: the units' BMCs or their servers."""
    return "bmc" if "lom" in spec.key or (spec.role and "lom" in spec.role) else "server"


def check_zone(r: Reader, zone: Zone, top: SrcDict) -> None:
    """Run every cross-object rule; on a zone that already has problems a rule
    may meet half-built parts, and then it stays silent: the earlier problem
    already names the cause."""
    for check in (_check_overlaps, _check_fit, _check_switch_refs, _check_ports,
                  _check_names, _check_redfish):
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
        if a.switches_from + max(n_switches, len(zone.core)) - 1 > last_host:
            r.error(where, f"networks.{net.name}: the switches do not fit a /{net.prefix}")
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
        _check_template(r, spec.remote_id, POD_FIELDS,
                        _line(top, "pod_template", "switches", key, "remote_id"),
                        f"pod_template.switches.{key}.remote_id")


def _check_template(r: Reader, template, fields, line, what) -> bool:
    if template is None:
        return True
    try:
        used = template_fields(template)
        template.format(**{f: 1 for f in fields})
    except (ValueError, KeyError, IndexError, AttributeError):
        used = {"?"}
    if not used <= fields:
        r.error(line, f"{what}: '{template}' may use only {', '.join('{%s}' % f for f in sorted(fields))}")
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
            used[(key, spec.circuit_id.format(port=unit))] = f"unit {unit}"
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


def _check_names(r: Reader, zone: Zone, top: SrcDict) -> None:
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
            if spec.remote_id is None:
                continue
            rid = spec.remote_id.format(pod=pod.name, pod_index=pod.index)
            if rid in remote_ids:
                r.error(_line(top, "pod_template", "switches", key, "remote_id"),
                        f"remote_id '{rid}' names both {remote_ids[rid]} and {pod.name} {key}")
                return
            remote_ids[rid] = f"{pod.name} {key}"
    for key, spec in zone.core.items():
        if spec.remote_id in remote_ids:
            r.error(_line(top, "core", key, "remote_id"),
                    f"core.{key}.remote_id '{spec.remote_id}' is used by {remote_ids[spec.remote_id]}")


def _check_redfish(r: Reader, zone: Zone, top: SrcDict) -> None:
    _check_template(r, zone.redfish.url, REDFISH_FIELDS, _line(top, "redfish", "url"), "redfish.url")
    if zone.redfish.system != "auto":
        _check_template(r, zone.redfish.system, REDFISH_FIELDS, _line(top, "redfish", "system"),
                        "redfish.system")
