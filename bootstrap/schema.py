"""Checks on the raw zone tree that collect problems instead of raising.

A :class:`Reader` walks :mod:`bootstrap.yamlsrc` values and records every
problem with its line; callers carry on with a fallback so that one run reports
every mistake in the file, not just the first.
"""

from __future__ import annotations

import difflib
import functools
import re
import string

from .errors import Problem
from .yamlsrc import SrcDict, SrcList

_UNIT_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
# Characters that could end or escape a value rendered into an iPXE, shell, cloud-init
# or Jinja-made script: control characters (newlines included), quotes, backslash, `$`
# and backtick. No zone text needs them.
UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\"'\\`$]")
# A format spec in a template: fill/align, sign, zero, a width and precision of at
# most two digits, an integer or text type. Checked before any formatting, so that
# '{unit:>900000000}' is refused instead of allocating gigabytes.
_SPEC = re.compile(r"(?:[\w.-]?[<>=^])?[+ -]?#?0?\d{0,2}[,_]?(?:\.\d{1,2})?[bdoxXs]?")


def unsafe_char(value: str) -> str | None:
    """A description of the first character of ``value`` that could break a script."""
    m = UNSAFE.search(value)
    return None if m is None else f"character {m.group()!r} is not allowed (it could break " \
        "a rendered script)"


def template_fields(template: str, allowed) -> set[str]:
    """The fields a ``str.format`` template uses, all bare names from ``allowed``
    with a small format spec; ValueError saying why not."""
    used = set()
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in allowed:
            raise ValueError(f"unknown field {{{name}}}")
        if conversion or not _SPEC.fullmatch(spec):
            raise ValueError(f"{{{name}}}: only a width up to 99 and a type like "
                             f"{{{name}:02d}} may follow the name")
        used.add(name)
    return used


# A name that becomes a DNS label (a host, a pod, the zone).
NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Names of roles, images, firmware, networks and groups: they reach inventories and scripts.
IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# controller.url and a rendered redfish.url: scheme, host[:port], a plain path.
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/+=,:@-]*)?$")

# Circuit-id templates: the port in one of three numberings, and what else relays write.
PORT_FIELDS = ("port", "port0", "lane")
CIRCUIT_FIELDS = PORT_FIELDS + ("switch", "pod", "pod_index", "vlan")
# SONiC names a port EthernetN after its first SerDes lane: with 4 lanes per port (most
# 100G/400G ToRs: 32 QSFP28/QSFP-DD cages), front-panel port p is Ethernet{(p-1)*4}.
LANES_PER_PORT = 4
_MAC_TEXT = re.compile(r"([0-9a-f]{2})([:-]?)([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2"
                       r"([0-9a-f]{2})\2([0-9a-f]{2})")
_MAC_DOTTED = re.compile(r"([0-9a-f]{4})\.([0-9a-f]{4})\.([0-9a-f]{4})")


@functools.lru_cache(maxsize=1024)
def field_names(template: str) -> frozenset:
    """The field names a (valid) template uses."""
    return frozenset(name for _, name, _, _ in string.Formatter().parse(template) if name)


def circuit_text(template: str, port: int, switch: str = "", pod: str = "", pod_index: int = 0,
                 vlan: int | None = None) -> str:
    """The circuit-id a relay writes for ``port`` (1-based) of ``switch``."""
    return template.format(port=port, port0=port - 1, lane=(port - 1) * LANES_PER_PORT,
                           switch=switch, pod=pod, pod_index=pod_index, vlan=vlan or 0)


def mac_bytes(value, raw: bool = True) -> bytes | None:
    """A MAC address as 6 bytes, from 6 raw bytes (with ``raw``) or any usual text form:
    ``0c:29:ef:01:02:03``, ``0C-29-EF-01-02-03``, ``0c29.ef01.0203``, ``0c29ef010203``."""
    if isinstance(value, bytes):
        if raw and len(value) == 6:
            return value
        if len(value) > 17:
            return None
        value = value.decode("latin-1")
    text = value.lower()
    m = _MAC_TEXT.fullmatch(text)
    if m:
        return bytes.fromhex("".join(m.group(1, 3, 4, 5, 6, 7)))
    m = _MAC_DOTTED.fullmatch(text)
    return bytes.fromhex("".join(m.groups())) if m else None


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


class Reader:
    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []  # worth saying, but the zone still works

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.filename, line, message))

    def warn(self, line: int, message: str) -> None:
        self.warnings.append(Problem(self.filename, line, message))

    def mapping(self, value, line: int, what: str) -> SrcDict:
        """``value`` as a mapping, or an empty one after reporting a problem."""
        if isinstance(value, SrcDict):
            return value
        if value is not None:
            self.error(line, f"{what} must be a mapping")
        empty = SrcDict()
        empty.line, empty.lines = line, {}
        return empty

    def sequence(self, value, line: int, what: str) -> SrcList:
        if isinstance(value, SrcList):
            return value
        if value is not None:
            self.error(line, f"{what} must be a list")
        empty = SrcList()
        empty.line, empty.lines = line, []
        return empty

    def keys(self, d: SrcDict, what: str, allowed, required=()) -> None:
        """Unknown keys (with a did-you-mean) and missing required keys."""
        allowed = set(allowed) | set(required)
        for key in d:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                more = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.error(d.line_of(key), f"{what}: unknown key '{key}'{more}")
        for key in required:
            if key not in d:
                self.error(d.line, f"{what}: missing key '{key}'")

    def text(self, d: SrcDict, key: str, what: str, default=None):
        value = d.get(key, default)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if value is None or isinstance(value, str):
            return self.safe(value, d.line_of(key), f"{what}.{key}", default)
        self.error(d.line_of(key), f"{what}.{key} must be text")
        return default

    def safe(self, value, line: int, what: str, default=None):
        """``value`` if no character of it could break a rendered script, else
        ``default`` after reporting the problem."""
        why = unsafe_char(value) if isinstance(value, str) else None
        if why is None:
            return value
        self.error(line, f"{what}: {why}")
        return default

    def integer(self, d: SrcDict, key: str, what: str, default=None, low=None, high=None):
        value = d.get(key, default)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            self.error(d.line_of(key), f"{what}.{key} must be an integer")
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
            self.error(d.line_of(key), f"{what}.{key} = {value} is outside {bounds}")
            return default
        return value

    def number(self, d: SrcDict, key: str, what: str, default, low, high):
        value = d.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            self.error(d.line_of(key), f"{what}.{key} must be a number in {low}..{high}")
            return default
        return value

    def text_list(self, d: SrcDict, key: str, what: str) -> tuple:
        value = d.get(key)
        if value is None:
            return ()
        items = self.sequence(value, d.line_of(key), f"{what}.{key}")
        out = []
        for i, item in enumerate(items):
            if isinstance(item, (dict, list)) or item is None:
                self.error(items.line_of(i), f"{what}.{key}[{i}] must be text")
            elif self.safe(str(item), items.line_of(i), f"{what}.{key}[{i}]") is not None:
                out.append(str(item))
        return tuple(out)


def parse_units(value, limit: int) -> list[int]:
    """Unit selections: ``7``, ``"7-40"``, ``"1,3,5-7"`` or a list of those, together
    at most ``limit`` units numbered up to ``limit`` (checked before expanding).

    Raises ValueError with a message for anything else.
    """
    units: list[int] = []
    _add_units(value, limit, units)
    return units


def _add_units(value, limit: int, units: list) -> None:
    if isinstance(value, bool):
        raise ValueError(f"bad unit selection {value!r}")
    if isinstance(value, int):
        parts = [str(value)]
    elif isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list):
        for item in value:
            _add_units(item, limit, units)
        return
    else:
        raise ValueError(f"bad unit selection {str(value)[:40]!r}")
    for part in parts:
        m = _UNIT_RANGE.match(part)
        if not m or len(part) > 40:
            raise ValueError(f"bad unit selection {part.strip()[:40]!r} (want N or N-M)")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        if first < 1 or last < first:
            raise ValueError(f"bad unit range {part.strip()!r}")
        if last > limit or len(units) + last - first >= limit:
            raise ValueError(f"units {part.strip()!r}: a subnet of this zone holds at most "
                             f"{limit} units")
        units.extend(range(first, last + 1))
