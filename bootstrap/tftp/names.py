"""Which names may be served: pure policy, no I/O but a file test."""

from __future__ import annotations

import os

MAX_NAME = 255          # characters of a requested name (a PXE path is a few dozen)
MAX_DEPTH = 8           # path components: bounds the directories one cached name can make


def clean_name(raw: str) -> str | None:
    """The relative path a request names, or None when it must be refused.

    PXE firmware sends both ``undionly.kpxe`` and ``/undionly.kpxe``; an empty component,
    one starting with a dot (``..``, ``.``, hidden files, the cache's own ``.fetch-*``
    downloads in progress and ``.root``), a backslash or a control character is refused
    outright rather than normalised, so a name can never climb out of the root or the
    cache nor see half a download. Names longer than ``MAX_NAME`` or deeper than
    ``MAX_DEPTH`` are refused too: nothing we serve looks like that, and the cache
    would otherwise grow a directory per component.
    """
    name = raw.lstrip("/")
    if not name or len(name) > MAX_NAME or any(ord(c) < 0x20 or c in "\\\x7f" for c in name):
        return None
    parts = name.split("/")
    if len(parts) > MAX_DEPTH or any(not part or part.startswith(".") for part in parts):
        return None
    return "/".join(parts)


def file_in(directory: str | None, name: str) -> str | None:
    """``directory/name`` if it is a regular file (a directory is not served)."""
    if not directory:
        return None
    path = os.path.join(directory, name)
    return path if os.path.isfile(path) else None
