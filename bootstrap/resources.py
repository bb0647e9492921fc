"""Where the files the package ships live: the Jinja templates and the pod playbooks.

They stay at the top of the repository (templates/, playbooks/) and pyproject maps them to
the data packages ``bootstrap.templates`` and ``bootstrap.playbooks``, so the same lookup
finds them in an editable checkout and in an installed wheel. Nothing else in bootstrap
reads files relative to its own location.

Also the version ``zone --version`` prints.
"""

from __future__ import annotations

import tomllib
from importlib import metadata, resources
from pathlib import Path

DISTRIBUTION = "zone-bootstrap"  # pyproject's [project] name


def _folder(package: str) -> str:
    """The on-disk folder of a data package: Flask and ansible-runner take a path, not a
    Traversable. Wheels install unpacked, so this is always a real folder."""
    root = resources.files(package)
    if not root.is_dir() or not hasattr(root, "resolve"):
        raise RuntimeError(f"{package}: its files are not a folder on disk ({root})")
    return str(root)


def templates_dir() -> str:
    """The Jinja templates the HTTP service renders (iPXE, cloud-init, ZTP, the status page)."""
    return _folder("bootstrap.templates")


def playbooks_dir() -> str:
    """The pod playbooks project (site.yml and its roles) handed to ansible-runner."""
    return _folder("bootstrap.playbooks")


def version() -> str:
    """The installed distribution's version; in a checkout that is not installed, the one
    its pyproject.toml declares."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return _checkout_version()


def _checkout_version() -> str:
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    try:
        with open(pyproject, "rb") as fh:
            return tomllib.load(fh)["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "unknown"
