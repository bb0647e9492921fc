"""The HTTP package imports only downward (bootstrap/http/README.md): serving → app →
views → core, and nothing in the package imports the command line. Read from the
source (AST), so a new upward import fails here, not in a reader's head."""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
HTTP = ROOT / "bootstrap" / "http"
LAYERS = ("core", "views", "app", "serving")  # bottom first


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: pathlib.Path, source: str | None = None) -> set[str]:
    """Every module ``path`` (or ``source`` as if it were that file) imports, relative
    imports made absolute."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import x`
    return found


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    if parts[:2] != ["bootstrap", "http"] or len(parts) < 3 or parts[2] not in LAYERS:
        return None
    return LAYERS.index(parts[2])


def layered_modules():
    return sorted(p for layer in LAYERS for p in (HTTP / layer).glob("*.py"))


@pytest.mark.parametrize("path", layered_modules(), ids=lambda p: str(p.relative_to(HTTP)))
def test_imports_go_only_downward(path):
    own = layer_of(module_name(path))
    upward = sorted(m for m in imported(path)
                    if (layer_of(m) or 0) > own or m in ("bootstrap.http", "bootstrap.cli"))
    assert upward == [], f"{path.relative_to(ROOT)} imports above its layer"


def test_every_http_module_is_in_a_layer():
    """Only the package's public names and the command-line entry sit outside the layers."""
    assert sorted(p.name for p in HTTP.glob("*.py")) == ["__init__.py", "wsgi.py"]


def test_the_check_sees_an_upward_import():
    view = HTTP / "views" / "boot.py"
    upward = view.read_text() + "\nfrom ..serving.front import publish_node\n"
    assert "bootstrap.http.serving.front" not in imported(view)
    assert "bootstrap.http.serving.front" in imported(view, upward)
    assert "bootstrap.http.core.service" in imported(view)


def test_nothing_below_the_command_line_imports_it():
    """The CLI only dispatches: commands and services take what they share from below."""
    importers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "bootstrap").rglob("*.py")
                       if p.name != "__main__.py" and "bootstrap.cli" in imported(p))
    assert importers == []
