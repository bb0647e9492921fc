"""Settings of the HTTP service and the secrets it reads (never logged).

Defaults come from the zone (its ``site:`` section, the controller URL, the zone file's
folder); ``config`` passed to :func:`~bootstrap.http.create_app` overrides any of them.
"""

from __future__ import annotations

import os
import secrets

from ...resources import templates_dir

DEFAULTS = {
    # PUBLIC_URL, IPXE_DIR, NIC_NAMES, BOND_MODE, SSH_AUTHORIZED_KEYS: the zone's site:
    # section (site_settings below)
    "FILES_ROOT": None,               # default: the zone file's folder
    "FILES_EXTRA": (),                # more top-level folders of FILES_ROOT to serve
    "TRUST_X_FORWARDED_FOR": False,   # True only behind a proxy we run
    "API_TOKEN": None,                # else env ZONE_API_TOKEN, else API_TOKEN_FILE
    "API_TOKEN_FILE": None,           # else env ZONE_API_TOKEN_FILE
    "NODE_SECRET": None,              # HMAC key of per-node tokens; else env ZONE_NODE_SECRET
    "NODE_SECRET_FILE": None,         # else <state folder>/node-secret, made on first use
    "RETRY_SECONDS": 30,              # unknown iPXE requester waits this long between tries
    "DNS_SERVERS": None,              # default: the controller's address
    "STATUS_NODE_LIMIT": 500,         # above this many nodes the status page shows counts
    "STATUS_REFRESH_SECONDS": 2,
    "TEMPLATES_DIR": templates_dir(),   # templates/, in the checkout or the wheel
    "EVENT_THROTTLE_SECONDS": 30,     # refusals/unknowns: one event per client and window
    "LEAN_BOOT": True,                # plain GET /boot/ipxe answered in front of Flask
    "EVENT_BATCH": False,             # True in gunicorn workers: events written by a thread
    "PARENT_METRICS_URL": None,       # set by HttpServer: the zone serve process's metrics
    "FRONT_DIR": None,                # set by HttpServer under an nginx front: per-node scripts
}


def site_settings(zone) -> dict:
    """The settings a zone's ``site:`` section gives (model defaults when it has none)."""
    site = zone.site
    return {"PUBLIC_URL": site.public_url, "IPXE_DIR": zone.path(site.ipxe_dir),
            "NIC_NAMES": site.nics, "BOND_MODE": site.bond_mode,
            "SSH_AUTHORIZED_KEYS": site.ssh_authorized_keys}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


def api_token(config) -> str | None:
    """The token every mutating API call must carry, or None (API read-only)."""
    token = config.get("API_TOKEN") or os.environ.get("ZONE_API_TOKEN")
    if token:
        return token
    path = config.get("API_TOKEN_FILE") or os.environ.get("ZONE_API_TOKEN_FILE")
    return _read(path) if path else None


def node_secret(config, store_path: str) -> bytes:
    """The key of per-node tokens; shared by every worker through a file beside the state."""
    given = config.get("NODE_SECRET") or os.environ.get("ZONE_NODE_SECRET")
    if given:
        return given.encode() if isinstance(given, str) else given
    if store_path == ":memory:" and not config.get("NODE_SECRET_FILE"):
        return secrets.token_bytes(32)
    path = config.get("NODE_SECRET_FILE") or os.path.join(
        os.path.dirname(os.path.abspath(store_path)), "node-secret")
    existing = _read(path)
    if existing:
        return existing.encode()
    return _create_secret(path)


def _create_secret(path: str) -> bytes:
    value = secrets.token_hex(32)
    try:  # O_EXCL: when two workers race, one writes and the other reads its value
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return (_read(path) or value).encode()
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value.encode()
