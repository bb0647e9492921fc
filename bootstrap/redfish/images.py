"""Firmware images: checked against the catalog's sha256 before any BMC sees them,
and served over HTTP from the appliance when no other base URL is given."""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

from ..errors import InputError
from .errors import ImageMismatch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Image:
    name: str         # catalog entry
    path: str         # file on disk
    relative: str     # the path the zone file gives; also its URL path under /files/
    sha256: str
    size: int


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_images(zone, entries) -> dict:
    """Hash every image the entries name; any mismatch refuses the whole run."""
    images, problems = {}, []
    for fw in {e.name: e for e in entries}.values():
        path = zone.path(fw.image)
        try:
            actual = sha256_file(path)
        except OSError as exc:
            problems.append(f"firmware.{fw.name}: {path}: {exc.strerror}")
            continue
        if actual != fw.sha256:
            problems.append(f"firmware.{fw.name}: {path}: sha256 is {actual}, "
                            f"the zone file says {fw.sha256}")
            continue
        images[fw.name] = Image(fw.name, path, _url_path(fw.image), actual, os.path.getsize(path))
    if problems:
        raise ImageMismatch("refusing to update, nothing was sent to any BMC:\n  "
                            + "\n  ".join(problems))
    return images


def _url_path(image: str) -> str:
    """Zone-relative images keep their path (as the appliance's /files/ serves them);
    absolute ones are published by file name only, never by their place on disk."""
    return f"firmware/{os.path.basename(image)}" if os.path.isabs(image) else image


def image_url(base_url: str, image: Image) -> str:
    return f"{base_url.rstrip('/')}/{quote(image.relative)}"


class _Handler(BaseHTTPRequestHandler):
    server_version = "zone-firmware"

    def do_GET(self):
        self._serve(body=True)

    def do_HEAD(self):
        self._serve(body=False)

    def _serve(self, body: bool):
        path = self.server.files.get(posixpath.normpath(unquote(urlsplit(self.path).path)))
        if path is None:
            self.send_error(404)
            return
        size = os.path.getsize(path)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if body:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 16):
                    self.wfile.write(block)
        self.server.served.append(self.path)

    def log_message(self, fmt, *args):
        log.debug("image server: " + fmt, *args)


class Background:
    """An HTTP server on a daemon thread for the length of a ``with`` block."""

    def __init__(self, httpd, name: str):
        self.httpd = httpd
        self.httpd.daemon_threads = True
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), name=name,
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


class ImageServer(Background):
    """Serves exactly the verified images under ``/files/`` — nothing else beside them."""

    def __init__(self, images: dict, bind: str = "127.0.0.1", port: int = 0):
        try:
            httpd = ThreadingHTTPServer((bind, port), _Handler)
        except OSError as exc:
            raise InputError(f"cannot serve firmware images on {bind}: {exc.strerror}; "
                             "give --image-bind ADDR or --image-base-url URL") from None
        super().__init__(httpd, "image-server")
        self.httpd.files = {posixpath.normpath("/files/" + i.relative): i.path
                            for i in images.values()}
        self.httpd.served = []

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/files"

    @property
    def served(self) -> list:
        return list(self.httpd.served)


def bind_address(zone, endpoints) -> str:
    """Where to serve images: loopback when every BMC answers on loopback, else the
    controller's own address (the BMCs reach the appliance there)."""
    hosts = {urlsplit(e.url).hostname for e in endpoints}
    if hosts and all(h in ("127.0.0.1", "localhost", "::1") for h in hosts):
        return "127.0.0.1"
    host = urlsplit(zone.controller_url).hostname
    if not host:
        raise InputError("controller.url has no host to serve firmware images from")
    return host
