"""``zone schema``: the JSON Schema editors use agrees with the parser.

The examples validate against it with the ``jsonschema`` library, broken zones do not,
every section has exactly the keys the parser accepts, and every pattern is one an
editor (ECMA-262, checked with node when it is installed) can run.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest
import yaml

from bootstrap.errors import ZoneInvalid
from bootstrap.schema import UNSAFE
from bootstrap.zone import parse_zone_text
from bootstrap.zone.jsonschema import UNSAFE_CLASS, section_keys, zone_schema
from zone_keys import EXAMPLES, ROOT, parser_sections

LAB = os.path.join(ROOT, "examples", "lab.yml")
# Sections whose required keys the parser makes conditional: an uplink needs switch and
# port only once it has either (the schema says so with dependentRequired).
CONDITIONAL = {"pod_template.switches.*.uplink"}


@pytest.fixture(scope="module")
def validator():
    schema = zone_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.fixture(scope="module")
def lab():
    with open(LAB, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _errors(validator, zone) -> list:
    return [e.message for e in validator.iter_errors(zone)]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.rsplit("/", 1)[-1])
def test_examples_validate(validator, path):
    with open(path, encoding="utf-8") as fh:
        assert _errors(validator, yaml.safe_load(fh)) == []


def _set(zone, path: str, value):
    """A copy of ``zone`` with the value at ``path`` (``pods/0/name``) replaced; ``value``
    None deletes it."""
    zone = copy.deepcopy(zone)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split("/")]
    node = zone
    for part in parents:
        node = node[part]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return zone


BROKEN = [
    ("networks/mgmt/supernett", "10.15.0.0/16", "Additional properties"),  # a typo
    ("zone", None, "'zone' is a required property"),
    ("zone", "Lab_1", "does not match"),
    ("networks/mgmt/prefix", "24", "is not of type 'integer'"),
    ("networks/mgmt/vlan", 5000, "is greater than the maximum"),
    ("pod_template/circuit_id", "port-{unit}", "does not match"),  # no port field
    ("pod_template/relay", "ios", "is not one of"),
    ("roles/tor/kind", "router", "is not one of"),
    ("redfish/verify_tls", "no", "is not of type 'boolean'"),
    ("credentials/bmc/password", "hunter2", "Additional properties"),
    ("images/debian-12/cmdline", "quiet || reboot", "should not be valid"),
    ("images/debian-12/kernel", "a b", "should not be valid"),
    ("firmware/bios-2.4.1/sha256", "abc", "does not match"),
    ("dns/upstreams", ["192.0.2.300"], "does not match"),
    ("naming", "{pod}-node", "does not match"),
    ("pods/0/index", 0, "is less than the minimum"),
    ("pods/0/macs", {"tor-a": "0c:29:ef:01:02"}, "does not match"),
    ("pod_template/units/0/units", "7..9", "is not valid under any of the given schemas"),
    ("up/min_ready", 1.5, "is greater than the maximum"),
    ("controller/url", "ftp://10.17.0.2", "does not match"),
    ("pod_template/switches/tor-a/uplink/port", None, "'port' is a dependency of 'switch'"),
    ("core/core-1/remote_id", "core-1\n", "should not be valid"),
    ("site", {"bond_mode": "lacp"}, "is not one of"),
    ("site", {"nics": ["ens1f0/1"]}, "does not match"),
    ("site", {"nics": []}, "should be non-empty"),
    ("site", {"ssh_authorized_keys": ["ssh-dss AAAAB3NzaC1kc3M= x"]}, "does not match"),
    ("site", {"public_url": "ftp://zone.example.net"}, "does not match"),
]


@pytest.mark.parametrize("path,value,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_zones_fail(validator, lab, path, value, message):
    """The schema refuses each, and so does the parser: it flags nothing valid."""
    broken = _set(lab, path, value)
    errors = _errors(validator, broken)
    assert any(message in e for e in errors), errors
    with pytest.raises(ZoneInvalid):
        parse_zone_text(yaml.safe_dump(broken))


@pytest.mark.parametrize("path,value", [
    ("firmware/bios-2.4.1/version", 2),           # a number where text goes: read as text
    ("pod_template/switches/tor-a/uplink", {}),    # an empty uplink is no uplink
    ("pod_template/units/2/units", [3, "4"]),     # a list of selections
    ("core/core-1/mac", "0C-29-EF-00-00-01"),
    ("domain", "lab1.example.net."),
    ("site", {"nics": ["eno1"], "bond_mode": "active-backup", "ipxe_dir": "ipxe"}),
], ids=lambda v: str(v))
def test_valid_variants_pass(validator, lab, path, value):
    """What the parser accepts beyond the examples' forms, the schema accepts too."""
    variant = _set(lab, path, value)
    parse_zone_text(yaml.safe_dump(variant))
    assert _errors(validator, variant) == []


def test_sections_match_the_parser():
    """Every section of the schema has exactly the keys the parser accepts there, and
    the parser checks no section the schema lacks."""
    parser, schema = parser_sections(), section_keys()
    assert sorted(parser) == sorted(schema)
    for path, (keys, required) in parser.items():
        assert schema[path][0] == keys, path
        if path not in CONDITIONAL:
            assert schema[path][1] == required, path


def test_unsafe_class_is_the_parsers():
    unsafe = re.compile(f"[{UNSAFE_CLASS}]")
    for code in list(range(0x00, 0x300)) + [0x2028, 0x2029, 0x3000]:
        char = f"ok{chr(code)}"
        assert bool(unsafe.search(char)) == bool(UNSAFE.search(char)), hex(code)


def _patterns(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern":
                yield value
            elif key == "propertyNames":
                yield value["pattern"]
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_patterns_are_ecma262():
    """Editors run the patterns as JavaScript regular expressions (unicode mode)."""
    patterns = sorted(set(_patterns(zone_schema())))
    script = "const ps = JSON.parse(require('fs').readFileSync(0, 'utf8'));" \
             "for (const p of ps) new RegExp(p, 'u'); console.log(ps.length);"
    out = subprocess.run(["node", "-e", script], input=json.dumps(patterns), text=True,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(patterns)


def test_zone_schema_command_prints_json():
    """``zone schema | python3 -m json.tool`` works, and prints this schema."""
    schema = subprocess.run([sys.executable, "-m", "bootstrap", "schema"], capture_output=True,
                            check=True, timeout=60).stdout
    tool = subprocess.run([sys.executable, "-m", "json.tool"], input=schema,
                          capture_output=True, check=True, timeout=60)
    assert json.loads(tool.stdout) == zone_schema()
