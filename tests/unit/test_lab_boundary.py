"""What ships stands without what tests: bootstrap/ imports with no test extra and no lab."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(ROOT, "bootstrap")

# Made unimportable in the child: the test extras, and the lab package itself.
BLOCKED = ("bcrypt", "sushy_tools", "libvirt", "zonelab")

CHILD = """
import importlib, importlib.abc, sys
BLOCKED = {blocked!r}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"blocked: {{name}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
for module in {modules!r}:
    importlib.import_module(module)
print(len({modules!r}))
"""


def bootstrap_modules() -> list[str]:
    out = []
    for folder, _, files in os.walk(PACKAGE):
        rel = os.path.relpath(folder, ROOT).replace(os.sep, ".")
        out += [f"{rel}.{f[:-3]}".removesuffix(".__init__") for f in files
                if f.endswith(".py") and f != "__main__.py"]  # __main__ runs the CLI
    return sorted(out)


def test_every_bootstrap_module_imports_without_test_extras_or_the_lab():
    modules = bootstrap_modules()
    assert "bootstrap.commands.up" in modules and "bootstrap.serve" in modules
    code = CHILD.format(blocked=BLOCKED, modules=modules)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [str(len(modules))]


def test_the_blocker_blocks():
    code = CHILD.format(blocked=BLOCKED, modules=["zonelab.netns"])
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "blocked: zonelab" in done.stderr


def test_no_bootstrap_source_names_the_lab_at_module_level():
    """zone up --lab loads the lab on demand; nothing else in bootstrap/ reaches for it."""
    for module in bootstrap_modules():
        path = os.path.join(ROOT, *module.split("."))
        path = path + ".py" if os.path.exists(path + ".py") else os.path.join(path, "__init__.py")
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read())
        for node in tree.body:
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in BLOCKED for n in names), (module, names)


def test_zone_up_lab_says_so_when_the_lab_is_missing():
    code = CHILD.format(blocked=("zonelab",), modules=["bootstrap.commands.up"]) + """
from bootstrap.commands.up import _lab_module
from bootstrap.errors import InputError
try:
    _lab_module("topology")
except InputError as exc:
    print("refused:", exc)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: --lab needs the zonelab package" in done.stdout
