"""The keys the zone parser accepts, section by section, as it runs.

Every section's keys go through ``Reader.keys(mapping, what, allowed, required)``;
recording those calls while the examples load gives what the parser accepts, without a
second list to keep in step. Paths are the parser's ``what`` with names and indexes
folded the way :func:`bootstrap.zone.jsonschema.section_keys` writes them.
"""

from __future__ import annotations

import glob
import os
import re
from unittest import mock

from bootstrap.schema import Reader
from bootstrap.zone import load_zone
from bootstrap.zone.jsonschema import section_keys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "*.yml")))


def _folders() -> list:
    """(regex, schema path) for each section path the schema has, deepest first (a name
    may hold dots): a name is ``*``, an item index ``[]``."""
    out = []
    for path in sorted(section_keys(), key=len, reverse=True):
        pattern = re.escape(path).replace(r"\*", r".+").replace(r"\[\]", r"\[\d+\]")
        out.append((re.compile(pattern + "$"), path))
    return out


def fold(what: str, folders) -> str:
    """The section path of a parser ``what`` (``networks.mgmt`` → ``networks.*``); one the
    schema does not know stays as it is, so a comparison names it."""
    return next((path for regex, path in folders if regex.match(what)), what)


def parser_sections(paths=EXAMPLES) -> dict:
    """{section path: (keys, required keys)} the parser checked while loading ``paths``;
    required keys are those it required in any call."""
    seen: dict = {}
    folders = _folders()
    original = Reader.keys

    def keys(self, d, what, allowed, required=()):
        allowed_set, required_set = seen.setdefault(fold(what, folders), (set(), set()))
        allowed_set.update(allowed, required)
        required_set.update(required)
        return original(self, d, what, allowed, required)

    with mock.patch.object(Reader, "keys", keys):
        for path in paths:
            load_zone(path)
    return seen
