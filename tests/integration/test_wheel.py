"""The wheel is the product: built from the tree, installed (not editable) into a fresh venv
and run from a folder outside the checkout, as a site would (issue 13 item 1).

The venv sees the system site-packages for the dependencies (no network); its own
site-packages, first on the path, holds the wheel's bootstrap, which the tests check.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.integration.http_peers import curl, free_port

ROOT = Path(__file__).resolve().parents[2]
# what the build reads; copied so that a build/ folder the checkout holds cannot leak into it
SOURCES = ("pyproject.toml", "README.md", "bootstrap", "zonelab", "templates", "playbooks")
LEFTOVERS = shutil.ignore_patterns("__pycache__", "*.pyc", ".cache")
TIMEOUT = 300


def run(*cmd, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                            timeout=TIMEOUT, **kw)
    assert result.returncode == 0, f"{cmd}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel`` of a clean copy of the tree, offline."""
    src, dist = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("dist")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=LEFTOVERS)
        else:
            shutil.copy(ROOT / name, src / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", dist, src)
    (built,) = dist.glob("zone_bootstrap-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed, not editable."""
    home = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--system-site-packages", home)
    run(home / "bin" / "python", "-m", "pip", "install", "--no-deps", "--no-index", wheel)
    return home


@pytest.fixture
def site(tmp_path) -> Path:
    """A folder outside the checkout with a copy of the lab zone, its secrets and firmware."""
    for name in ("secrets", "firmware"):
        shutil.copytree(ROOT / "examples" / name, tmp_path / name)
    shutil.copy(ROOT / "examples" / "lab.yml", tmp_path / "lab.yml")
    return tmp_path


def venv_env(venv: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return dict(env, PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}")


def in_venv(venv, *args, cwd) -> subprocess.CompletedProcess:
    """A command of the venv, run from ``cwd`` with the venv first on PATH."""
    return run(venv / "bin" / args[0], *args[1:], cwd=cwd, env=venv_env(venv))


def installed(venv, expression: str, cwd) -> str:
    return in_venv(venv, "python", "-c", f"import bootstrap.resources as r; print({expression})",
                   cwd=cwd).stdout.strip()


def tree_files() -> set[str]:
    """What the wheel must hold: the code of both packages, every file of the data folders."""
    names = set()
    for folder, inside, wanted in (("bootstrap", "bootstrap", ("*.py",)),
                                   ("zonelab", "zonelab", ("*.py", "*.sh")),
                                   ("templates", "bootstrap/templates", ("*",)),
                                   ("playbooks", "bootstrap/playbooks", ("*",))):
        for pattern in wanted:
            for path in (ROOT / folder).rglob(pattern):
                rel = path.relative_to(ROOT / folder)
                if path.is_file() and not {"__pycache__", ".cache"} & set(rel.parts) \
                        and path.suffix != ".pyc":
                    names.add(f"{inside}/{rel.as_posix()}")
    return names


def test_the_wheel_holds_every_module_template_and_playbook(wheel):
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    assert tree_files() - held == set()
    assert {"bootstrap/templates/ipxe.ipxe", "bootstrap/playbooks/site.yml",
            "bootstrap/playbooks/.ansible-lint",
            "bootstrap/playbooks/roles/network/templates/bond.netdev.j2"} <= held
    assert not [name for name in held if "__pycache__" in name or name.endswith(".pyc")]


def test_the_venv_runs_the_wheel_not_the_checkout(venv, tmp_path):
    for expression in ("r.__file__", "r.templates_dir()", "r.playbooks_dir()"):
        path = Path(installed(venv, expression, tmp_path))
        assert path.is_relative_to(venv), (expression, path)
        assert not path.is_relative_to(ROOT), (expression, path)


def test_version(venv, tmp_path):
    with open(ROOT / "pyproject.toml", "rb") as fh:
        version = tomllib.load(fh)["project"]["version"]
    assert in_venv(venv, "zone", "--version", cwd=tmp_path).stdout.strip() == f"zone {version}"


def test_validate_render_and_the_installed_playbooks_syntax(venv, site):
    assert "is valid" in in_venv(venv, "zone", "validate", "lab.yml", cwd=site).stdout
    in_venv(venv, "zone", "render", "lab.yml", "--out", "out", cwd=site)
    playbooks = Path(installed(venv, "r.playbooks_dir()", site))
    run("ansible-playbook", "--syntax-check", "-i", site / "out" / "inventory",
        playbooks / "site.yml", cwd=site)


def wait_for_http(proc, url: str, log: Path, timeout: float = 90) -> None:
    """Until ``url`` answers; fails at once, with the log, if zone serve ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"zone serve ended ({proc.returncode}):\n{log.read_text()}"
        if curl("-o", "/dev/null", "-f", url, check=False, max_time=5).returncode == 0:
            return
        time.sleep(0.1)
    pytest.fail(f"{url} did not answer within {timeout} s:\n{log.read_text()}")


def stop(proc) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def test_serve_with_gunicorn_answers_boot_ipxe(venv, site):
    """The HTTP service renders the installed templates (TemplateNotFound before)."""
    port, log = free_port(), site / "serve.log"
    cmd = [venv / "bin" / "zone", "serve", "lab.yml", "--no-dhcp", "--no-tftp", "--no-dns",
           "--http-port", port, "--bind", "127.0.0.1", "--http-front", "gunicorn"]
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=site, env=venv_env(venv),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/boot/ipxe"
        wait_for_http(proc, url, log)
        script = curl(url, source="127.0.0.1").stdout.decode()
        assert script.startswith("#!ipxe") and "lab1" in script, script
    finally:
        stop(proc)
    assert "TemplateNotFound" not in log.read_text()
