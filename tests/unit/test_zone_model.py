"""The zone package's layers import one way, and the model says which switch cables what."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import bootstrap.zone
from bootstrap.locator import Locator
from bootstrap.plan import compile_plan
from bootstrap.zone import parse_zone_text

PACKAGE = os.path.dirname(bootstrap.zone.__file__)
# What each module of bootstrap/zone/ may import from bootstrap (module → allowed prefixes):
# model ← parse, model ← checks, (parse, checks) ← load ← the package's __init__.
ALLOWED = {
    "model": set(),
    "site": {"errors", "schema", "yamlsrc", "zone.model"},      # the site: section, for parse
    "parse": {"errors", "schema", "yamlsrc", "zone.model", "zone.site"},
    "checks": {"schema", "yamlsrc", "zone.model", "redfish.images"},
    "load": {"errors", "schema", "yamlsrc", "zone.model", "zone.parse", "zone.checks"},
    "__init__": {"zone.load", "zone.model"},
    "jsonschema": {"schema", "zone.model", "zone.parse", "zone.checks", "zone.site"},  # beside load
}


def our_imports(module: str) -> set[str]:
    """The bootstrap modules ``module`` (a file of bootstrap/zone/) imports, anywhere in it."""
    with open(os.path.join(PACKAGE, f"{module}.py"), encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = ["zone"] if node.level == 1 else []  # .x is bootstrap.zone.x, ..x bootstrap.x
            found.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names]
            found |= {n.removeprefix("bootstrap.") for n in names if n.startswith("bootstrap")}
    return found


def test_every_module_is_listed():
    modules = {f[:-3] for f in os.listdir(PACKAGE) if f.endswith(".py")}
    assert modules == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_imports_point_down_only(module):
    assert our_imports(module) <= ALLOWED[module], our_imports(module) - ALLOWED[module]


def test_each_layer_imports_alone_in_a_fresh_interpreter():
    """In layer order, each first: none needs a module above it half-initialised."""
    for module in ("model", "parse", "checks", "load"):
        code = f"import bootstrap.zone.{module}; import bootstrap.plan, bootstrap.locator"
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                timeout=60, cwd=os.path.dirname(os.path.dirname(PACKAGE)))
        assert result.returncode == 0, result.stderr


LOM = '    lom:   {role: lom-switch, remote_id: "{pod}-lom",'
# neither the switch's name nor its role's says "lom"
MGMT_ROLE = ("  lom-switch: {kind: switch", "  mgmt: {kind: switch")
TOR_B = '    tor-b: {role: tor, remote_id: "{pod}-tor-b",'


def lab_plan_with(lab_text: str, *changes) -> object:
    text = lab_text
    for old, new in changes:
        assert old in text, old
        text = text.replace(old, new, 1)
    return compile_plan(parse_zone_text(text, "z.yml"))


def links(plan, name: str) -> tuple:
    return plan.nodes[name].links


def test_a_lom_switch_by_any_name_cables_the_bmcs(lab_text):
    plan = lab_plan_with(lab_text, MGMT_ROLE, (LOM, '    mgmt-sw: {role: mgmt, serves: bmc, '
                                                    'remote_id: "{pod}-lom",'))
    assert plan.zone.switches["mgmt-sw"].serves == "bmc"
    assert links(plan, "p01-u03-bmc") == (("p01-mgmt-sw", "swp3"),)
    assert links(plan, "p01-u03") == (("p01-tor-a", "swp3"), ("p01-tor-b", "swp3"))
    found = Locator(plan).locate("10.16.1.1", b"swp3", b"p01-lom")
    assert found.node.name == "p01-u03-bmc" and found.address == "10.16.1.13"


def test_a_tor_named_like_lom_cables_servers(lab_text):
    plan = lab_plan_with(lab_text, (TOR_B, '    lom-ish: {role: tor, remote_id: "{pod}-tor-b",'))
    assert links(plan, "p01-u03") == (("p01-tor-a", "swp3"), ("p01-lom-ish", "swp3"))
    assert links(plan, "p01-u03-bmc") == (("p01-lom", "swp3"),)
    assert plan.zone.switches["lom-ish"].serves == "server"


def test_the_switch_of_a_bmc_network_of_its_name_cables_the_bmcs(lab_text):
    """No ``serves`` on the switch: the network named like it says (here ``oob``, which
    serves BMCs by its own ``serves``, not by a default for its name)."""
    plan = lab_plan_with(lab_text, MGMT_ROLE,
                         ("  lom:       {supernet: 10.16.0.0/16, prefix: 24}",
                          "  oob:       {supernet: 10.16.0.0/16, prefix: 24, serves: bmc}"),
                         (LOM, '    oob:   {role: mgmt, remote_id: "{pod}-lom",'))
    assert links(plan, "p01-u03-bmc") == (("p01-oob", "swp3"),)
    assert plan.nodes["p01-u03-bmc"].network == "oob"
