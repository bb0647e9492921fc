"""The zone package's layers import one way, and the model says which switch cables what."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

import pytest

import bootstrap.zone

PACKAGE = os.path.dirname(bootstrap.zone.__file__)
# What each module of bootstrap/zone/ may import from bootstrap (module → allowed prefixes):
# model ← parse, model ← checks, (parse, checks) ← load ← the package's __init__.
ALLOWED = {
    "model": set(),
    "parse": {"errors", "schema", "yamlsrc", "zone.model"},
    "checks": {"schema", "yamlsrc", "zone.model", "redfish.images"},
    "load": {"errors", "schema", "yamlsrc", "zone.model", "zone.parse", "zone.checks"},
    "__init__": {"zone.load", "zone.model"},
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
