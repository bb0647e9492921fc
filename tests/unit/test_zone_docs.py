"""docs/zone-file.md cannot fall behind the parser.

Every key the parser accepts (recorded while the examples load, see ``zone_keys``) is a
row of its section's table; every template field and relay preset is named; the worked
example is examples/two-pods.yml, byte for byte, and that file is a valid zone.
"""

from __future__ import annotations

import os
import re

import pytest

from bootstrap.schema import CIRCUIT_FIELDS
from bootstrap.zone import load_zone
from bootstrap.zone.checks import REDFISH_FIELDS, REMOTE_FIELDS
from bootstrap.zone.jsonschema import TOP
from bootstrap.zone.parse import NAMING_FIELDS, RELAY_PRESETS
from zone_keys import ROOT, parser_sections

DOC = os.path.join(ROOT, "docs", "zone-file.md")
TWO_PODS = os.path.join(ROOT, "examples", "two-pods.yml")
TOP_HEADING = "Top-level keys"


@pytest.fixture(scope="module")
def doc() -> str:
    with open(DOC, encoding="utf-8") as fh:
        return fh.read()


def sections(doc: str) -> dict:
    """{heading text: the text up to the next heading}; a ``#`` line inside a fenced
    block (a YAML comment) is not a heading."""
    out, heading, fenced = {}, "", False
    for line in doc.splitlines(keepends=True):
        fenced ^= line.startswith("```")
        match = None if fenced else re.match(r"#+ (.*)$", line)
        if match:
            heading = match.group(1).strip()
            out[heading] = ""
        else:
            out[heading] = out.get(heading, "") + line
    return out


def heading_of(path: str, headings) -> str | None:
    """The heading documenting a section path: ``networks.*`` is ``networks.<name>``."""
    if path == TOP:
        return TOP_HEADING if TOP_HEADING in headings else None
    wanted = re.compile("`" + re.escape(path).replace(r"\*", "<[a-z]+>") + "`$")
    return next((h for h in headings if wanted.search(h)), None)


def test_every_parser_key_is_documented(doc):
    by_heading = sections(doc)
    missing = []
    for path, (keys, _) in sorted(parser_sections().items()):
        heading = heading_of(path, by_heading)
        if heading is None:
            missing.append(f"no heading for `{path}`")
            continue
        missing += [f"{path}.{key}" for key in sorted(keys)
                    if not re.search(rf"^\| `{re.escape(key)}` \|", by_heading[heading],
                                     re.MULTILINE)]
    assert missing == [], "keys the parser accepts that docs/zone-file.md lacks"


def test_rows_have_every_column(doc):
    """Type, default, required, example and meaning: six cells in every reference row."""
    reference = doc[doc.index("## Reference"):doc.index("## Placeholders")]
    rows = [line for line in reference.splitlines() if line.startswith("| `")]
    assert rows
    for row in rows:
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        assert len(cells) == 6 and all(c.strip() for c in cells), row


def test_template_fields_and_presets_are_named(doc):
    placeholders = sections(doc)["Placeholders"]
    fields = set(CIRCUIT_FIELDS) | REDFISH_FIELDS | REMOTE_FIELDS | set(NAMING_FIELDS)
    assert [f for f in sorted(fields) if f"`{{{f}}}`" not in placeholders] == []
    presets = sections(doc)["Presets per NOS"]
    for nos, (circuit, _) in RELAY_PRESETS.items():
        assert f"| `{nos}` | `{circuit}`" in presets, nos


def test_worked_example_is_the_example_file(doc):
    worked = sections(doc)["A worked example: two pods"]
    block = re.search(r"```yaml\n(.*?)```", worked, re.DOTALL).group(1)
    with open(TWO_PODS, encoding="utf-8") as fh:
        assert block == fh.read()


def test_worked_example_is_valid():
    zone = load_zone(TWO_PODS, files=True)
    assert (zone.name, len(zone.pods), sum(len(p.units) for p in zone.pods)) == ("fra2", 2, 40)
    assert all("images." in w.message for w in zone.warnings)  # boot images: not in git
