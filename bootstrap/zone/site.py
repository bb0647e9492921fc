"""The zone file's ``site:`` section → :class:`~.model.SiteSettings`.

SSH keys are checked as OpenSSH writes them (``type base64 [comment]``, the blob naming
its own type), so that a truncated paste fails ``zone validate`` instead of locking the
operators out of every installed server.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct

from ..errors import Problem
from ..schema import URL, Reader, unsafe_char
from ..yamlsrc import SrcDict
from .model import BOND_MODES, SiteSettings

SITE_KEYS = ("ssh_authorized_keys", "ssh_authorized_keys_file", "public_url", "nics",
             "bond_mode", "ipxe_dir")
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com",
             "sk-ecdsa-sha2-nistp256@openssh.com")
# A Linux interface name: at most 15 bytes (IFNAMSIZ - 1), no '/', ':' or space.
NIC_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
MAX_KEYS_FILE = 1 << 20
MAX_KEY = 16 * 1024  # an RSA-16384 key is ~2.8 kB of base64


def key_problem(line: str) -> str | None:
    """Why ``line`` is not an OpenSSH public key (``type base64 [comment]``), or None."""
    parts = line.split(None, 2)
    if len(parts) < 2:
        return "not an OpenSSH public key ('<type> <base64> [comment]')"
    kind, blob = parts[0], parts[1]
    if kind not in KEY_TYPES:
        return f"key type '{kind[:40]}' is not one of {', '.join(KEY_TYPES)}"
    if len(line) > MAX_KEY:
        return f"longer than {MAX_KEY} characters"
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        return "the key is not valid base64"
    # The blob is SSH strings, its own type first: a cut or mixed-up paste fails here.
    fields = _ssh_strings(raw)
    if not fields or len(fields) < 2 or fields[0] != kind.encode():
        return f"the key's data is not a {kind} key (truncated or mixed up?)"
    return None


def _ssh_strings(raw: bytes) -> list[bytes] | None:
    """``raw`` as consecutive length-prefixed strings (RFC 4251 5), or None."""
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            return None
        size = struct.unpack(">I", raw[i:i + 4])[0]
        if i + 4 + size > len(raw):
            return None
        out.append(raw[i + 4:i + 4 + size])
        i += 4 + size
    return out


def parse_site(r: Reader, top: SrcDict, base_dir: str) -> SiteSettings:
    d = r.mapping(top.get("site"), top.line_of("site"), "site")
    r.keys(d, "site", SITE_KEYS)
    default = SiteSettings()
    return SiteSettings(
        ssh_authorized_keys=_inline_keys(r, d) + _file_keys(r, d, base_dir),
        public_url=_url(r, d), nics=_nics(r, d), bond_mode=_bond_mode(r, d),
        ipxe_dir=r.text(d, "ipxe_dir", "site", default.ipxe_dir) or default.ipxe_dir)


def _inline_keys(r: Reader, d: SrcDict) -> tuple:
    keys = r.text_list(d, "ssh_authorized_keys", "site")
    for i, key in enumerate(keys):
        why = key_problem(key)
        if why:
            r.error(d["ssh_authorized_keys"].line_of(i), f"site.ssh_authorized_keys[{i}]: {why}")
    return tuple(k.strip() for k in keys)


def _file_keys(r: Reader, d: SrcDict, base_dir: str) -> tuple:
    """The keys of an authorized_keys file: one per line, blank lines and # comments
    skipped; a bad line is reported at its own file and line."""
    name = r.text(d, "ssh_authorized_keys_file", "site")
    if not name:
        return ()
    path = name if os.path.isabs(name) else os.path.join(base_dir, name)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEYS_FILE + 1)
        text = data.decode("utf-8") if len(data) <= MAX_KEYS_FILE else None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or "not UTF-8 text"
        r.error(d.line_of("ssh_authorized_keys_file"),
                f"site.ssh_authorized_keys_file: {path}: {why}")
        return ()
    if text is None:
        r.error(d.line_of("ssh_authorized_keys_file"),
                f"site.ssh_authorized_keys_file: {path}: larger than {MAX_KEYS_FILE >> 10} kB")
        return ()
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        why = key_problem(line) or unsafe_char(line)
        if why:
            r.problems.append(Problem(path, number, f"authorized key: {why}"))
        else:
            out.append(line)
    return tuple(out)


def _url(r: Reader, d: SrcDict) -> str | None:
    url = r.text(d, "public_url", "site")
    if url is None:
        return None
    if not URL.match(url):
        r.error(d.line_of("public_url"), f"site.public_url: '{url}' is not a plain http(s) URL")
        return None
    return url.rstrip("/")


def _nics(r: Reader, d: SrcDict) -> tuple:
    names = r.text_list(d, "nics", "site")
    if "nics" not in d:
        return SiteSettings.nics
    if not names:
        r.error(d.line_of("nics"), "site.nics: name at least one NIC")
    for i, name in enumerate(names):
        if not NIC_NAME.match(name):
            r.error(d["nics"].line_of(i), f"site.nics[{i}]: '{name}' is not a Linux interface "
                    "name (letters, digits, '_', '.', '-'; at most 15)")
        elif name in names[:i]:
            r.error(d["nics"].line_of(i), f"site.nics[{i}]: '{name}' is named twice")
    return names or SiteSettings.nics


def _bond_mode(r: Reader, d: SrcDict) -> str:
    mode = r.text(d, "bond_mode", "site", SiteSettings.bond_mode)
    if mode not in BOND_MODES:
        r.error(d.line_of("bond_mode"), f"site.bond_mode: '{mode}' is not a Linux bonding mode "
                f"(one of {', '.join(BOND_MODES)})")
        return SiteSettings.bond_mode
    return mode
