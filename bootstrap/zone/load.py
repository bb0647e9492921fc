"""Load a zone file: read it (bounded), parse it, run the cross-object checks.

:func:`load_zone` is the entry point; it returns a frozen :class:`~.model.Zone`
or raises :class:`~bootstrap.errors.ZoneInvalid` listing every problem found.
"""

from __future__ import annotations

import dataclasses
import hashlib

from ..errors import Problem, ZoneInvalid
from ..schema import Reader
from ..yamlsrc import MAX_BYTES, load_text
from .checks import check_files, check_zone
from .model import Zone
from .parse import parse


def load_zone(path: str, files: bool = False, hashes: bool = True) -> Zone:
    """Load, normalise and validate the zone file at ``path``; with ``files``, also the
    files it names (and, with ``hashes``, the firmware images' sha256)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)  # bounded: a device or a pipe never ends
    except OSError as exc:
        raise ZoneInvalid([Problem(str(path), 0, f"cannot read: {exc.strerror}")]) from None
    if len(data) > MAX_BYTES:
        raise ZoneInvalid([Problem(str(path), 1, f"larger than {MAX_BYTES >> 20} MB")])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ZoneInvalid([Problem(str(path), 0, "not UTF-8 text")]) from None
    return build_zone(load_text(text, str(path)), str(path), hashlib.sha256(data).hexdigest(),
                      files=files, hashes=hashes)


def parse_zone_text(text: str, filename: str = "<zone>") -> Zone:
    return build_zone(load_text(text, filename), filename,
                      hashlib.sha256(text.encode()).hexdigest())


def build_zone(raw, filename: str, digest: str = "", files: bool = False,
               hashes: bool = True) -> Zone:
    r = Reader(filename)
    zone, top = parse(r, raw, filename, digest)
    check_zone(r, zone, top)
    if files:
        check_files(r, zone, top, hashes)
    if r.problems:
        raise ZoneInvalid(r.problems)
    return dataclasses.replace(zone, warnings=tuple(sorted(set(r.warnings))))

