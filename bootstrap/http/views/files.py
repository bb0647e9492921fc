"""``/files/<path>``: images, firmware and iPXE binaries, with Range, ETag, Last-Modified.

Only the folders the zone names (where its images and firmware live, ``onie/``,
and ``FILES_EXTRA``) are served from the zone's folder, never its secrets or
state; iPXE binaries come from ``IPXE_DIR`` by bare name. Anything that tries to
climb out of the root is refused with 403 and an event.
"""

from __future__ import annotations

import os

from flask import Blueprint, send_file

from ..core.problems import Forbidden, NotFound
from ..core.service import HttpService, current

bp = Blueprint("files", __name__)
MAX_AGE = 300


def served_folders(svc: HttpService) -> set[str]:
    zone = svc.plan.zone
    paths = [p for img in zone.images.values() for p in (img.kernel, img.initrd)]
    paths += [fw.image for fw in zone.firmware.values()]
    tops = {p.split("/")[0] for p in paths if not os.path.isabs(p) and "/" in p}
    return tops | {"onie"} | set(svc.settings["FILES_EXTRA"])


def _refuse(svc: HttpService, path: str, why: str):
    svc.event("files-refused", None, path=path[:200], reason=why)
    raise Forbidden(f"/files/{path}: refused ({why})")


def _inside(root: str, full: str) -> bool:
    root = os.path.realpath(root)
    return os.path.commonpath([root, os.path.realpath(full)]) == root


def resolve(svc: HttpService, path: str) -> str:
    """The file on disk for ``/files/<path>``, or a 403/404 :class:`Problem`."""
    parts = path.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") or "\\" in p or "\0" in p for p in parts):
        _refuse(svc, path, "not a plain relative path")
    if len(parts) == 1:
        full = os.path.join(svc.settings["IPXE_DIR"], parts[0])
    elif parts[0] in served_folders(svc):
        full = os.path.join(svc.files_root, *parts)
        if not _inside(os.path.join(svc.files_root, parts[0]), full):  # symlinks included
            _refuse(svc, path, "leads outside its served folder")
    else:
        raise NotFound(f"/files/{path}: not a served folder")
    if _is_secret(svc, full):
        _refuse(svc, path, "a credentials file")
    if not os.path.isfile(full):
        raise NotFound(f"/files/{path}: no such file")
    return full


def _is_secret(svc: HttpService, full: str) -> bool:
    """The BMC password file, even if someone put it inside a served folder."""
    secret = svc.plan.zone.credentials.password_file
    return bool(secret) and os.path.realpath(svc.plan.zone.path(secret)) == os.path.realpath(full)


@bp.route("/files/<path:path>", methods=["GET", "HEAD"])
def serve(path: str):
    svc = current()
    return send_file(resolve(svc, path), conditional=True, etag=True, max_age=MAX_AGE)
