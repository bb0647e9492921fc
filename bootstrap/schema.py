"""Checks on the raw zone tree that collect problems instead of raising.

A :class:`Reader` walks :mod:`bootstrap.yamlsrc` values and records every
problem with its line; callers carry on with a fallback so that one run reports
every mistake in the file, not just the first.
"""

from __future__ import annotations

import difflib
import re

from .errors import Problem
from .yamlsrc import SrcDict, SrcList

_UNIT_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


class Reader:
    def __init__(self, filename: str):
        self.filename = filename
        self.problems: list[Problem] = []

    def error(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.filename, line, message))

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
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        self.error(d.line_of(key), f"{what}.{key} must be text")
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
            else:
                out.append(str(item))
        return tuple(out)


def parse_units(value) -> list[int]:
    """Unit selections: ``7``, ``"7-40"``, ``"1,3,5-7"`` or a list of those.

    Raises ValueError with a message for anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"bad unit selection {value!r}")
    if isinstance(value, int):
        parts = [str(value)]
    elif isinstance(value, str):
        parts = value.split(",")
    elif isinstance(value, list):
        return [u for item in value for u in parse_units(item)]
    else:
        raise ValueError(f"bad unit selection {value!r}")
    units = []
    for part in parts:
        m = _UNIT_RANGE.match(part)
        if not m:
            raise ValueError(f"bad unit selection {part.strip()!r} (want N or N-M)")
        first, last = int(m.group(1)), int(m.group(2) or m.group(1))
        if first < 1 or last < first:
            raise ValueError(f"bad unit range {part.strip()!r}")
        units.extend(range(first, last + 1))
    return units
