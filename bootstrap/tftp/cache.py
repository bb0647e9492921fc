"""Where a name's bytes come from: the root, else the controller through a bounded disk cache.

A file the appliance does not hold is fetched once from ``<controller>/files/<name>``
and kept on disk. Anyone who can send UDP chooses the names, so the cache is bounded
in files and bytes (oldest used evicted first), a directory is made only to store a
file the controller really sent, and the controller's "no" is remembered in memory,
bounded too.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from concurrent.futures import Future
from urllib.parse import quote

from ..throttle import Throttle
from .names import file_in

log = logging.getLogger(__name__)

FETCH_TIMEOUT = 15.0
MISS_TTL = 10.0                # a name the controller lacks is not asked again for this long
MISS_LIMIT = 10_000            # names remembered as missing
CACHE_BYTES = 4 << 30          # bytes of fetched files kept on disk
CACHE_FILES = 10_000           # fetched files kept on disk
MEMORY_LIMIT = 16 << 20        # files up to this size are served from memory...
MEMORY_TOTAL = 64 << 20        # ...up to this much in all
TEMP_PREFIX = ".fetch-"        # a dot name: no request can reach a download in progress

_LOG_LIMIT = Throttle(rate=0.5, burst=5)


class TooLarge(Exception):
    """The controller sent more than the cache may hold."""


class _Bounded(io.RawIOBase):
    """A writer that refuses to grow past ``limit`` bytes."""

    def __init__(self, out, limit: int):
        self.out, self.limit, self.size = out, limit, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(f"larger than the cache ({self.limit} bytes)")
        return self.out.write(data)


def http_get(url: str, out, timeout: float = FETCH_TIMEOUT) -> bool:
    """Copy ``url`` into the binary file ``out``; False when the controller lacks it."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (our controller)
            while chunk := resp.read(1 << 16):
                out.write(chunk)
        return True
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


class CacheDir:
    """Fetched files on disk under their names, at most ``max_files`` and ``max_bytes``.

    Downloads land in a ``.fetch-*`` file at the top and are moved into place (making
    the name's directories only then) when complete; room is made by evicting the
    least recently used files and the directories they leave empty. Thread-safe.
    """

    def __init__(self, directory: str, max_bytes: int = CACHE_BYTES,
                 max_files: int = CACHE_FILES):
        self.directory, self.max_bytes, self.max_files = directory, max_bytes, max_files
        self._lock = threading.Lock()
        self._files: OrderedDict[str, int] = OrderedDict()      # name → size, oldest first
        self.bytes = 0
        os.makedirs(directory, exist_ok=True)
        self._scan()

    def _scan(self) -> None:
        """Account for what an earlier run left; drop its unfinished downloads."""
        found = []
        for folder, dirs, names in os.walk(self.directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for entry in names:
                path = os.path.join(folder, entry)
                if entry.startswith(TEMP_PREFIX) and folder == self.directory:
                    os.unlink(path)
                elif not entry.startswith("."):
                    st = os.stat(path)
                    found.append((st.st_mtime, os.path.relpath(path, self.directory), st.st_size))
        for _, name, size in sorted(found):
            self._files[name] = size
            self.bytes += size
        with self._lock:
            self._make_room(0, files=0)
        self._prune_empty()

    def _prune_empty(self) -> None:
        """Remove empty directories (those of misses an older version left behind)."""
        for folder, _, _ in os.walk(self.directory, topdown=False):
            if folder != self.directory and not os.path.basename(folder).startswith("."):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass                    # not empty

    def path(self, name: str) -> str | None:
        """The cached file of ``name`` (now most recently used), or None."""
        path = file_in(self.directory, name)
        if path is not None:
            with self._lock:
                if name in self._files:
                    self._files.move_to_end(name)
        return path

    def download(self, name: str, get) -> str | None:
        """Run ``get(out)`` into a temporary file, then keep it as ``name``.

        None when ``get`` says the controller lacks the name; nothing is left behind
        when it fails or the file could never fit.
        """
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=TEMP_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                if not get(_Bounded(out, self.max_bytes)):
                    return None
            return self._keep(tmp, name)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _keep(self, tmp: str, name: str) -> str:
        size = os.path.getsize(tmp)
        target = os.path.join(self.directory, name)
        with self._lock:
            self._forget(name)
            self._make_room(size)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.replace(tmp, target)
            self._files[name] = size
            self.bytes += size
        return target

    def _make_room(self, size: int, files: int = 1) -> None:
        while self._files and (self.bytes + size > self.max_bytes
                               or len(self._files) + files > self.max_files):
            self._remove(next(iter(self._files)))

    def _forget(self, name: str) -> None:
        if name in self._files:
            self.bytes -= self._files.pop(name)

    def _remove(self, name: str) -> None:
        """Delete a cached file and the directories it leaves empty (readers keep their copy)."""
        self._forget(name)
        path = os.path.join(self.directory, name)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        folder = os.path.dirname(path)
        while folder != self.directory:
            try:
                os.rmdir(folder)
            except OSError:
                break                       # not empty, or gone already
            folder = os.path.dirname(folder)


class Misses:
    """Names the controller said it lacks, each for ``ttl`` seconds; at most ``limit`` kept."""

    def __init__(self, ttl: float = MISS_TTL, limit: int = MISS_LIMIT):
        self.ttl, self.limit = ttl, limit
        self._until: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, name: str) -> bool:
        with self._lock:
            return time.monotonic() < self._until.get(name, 0.0)

    def __len__(self) -> int:
        return len(self._until)

    def add(self, name: str) -> None:
        with self._lock:
            self._until.pop(name, None)
            self._until[name] = time.monotonic() + self.ttl
            while len(self._until) > self.limit:
                self._until.popitem(last=False)


class Fetcher:
    """Fetches ``<controller>/files/<name>`` into a :class:`CacheDir`, once at a time per name.

    Concurrent callers for the same name wait on the one fetch in flight (single
    flight). A miss is remembered for a while so clients retrying a wrong name do not
    hammer the controller.
    """

    def __init__(self, controller_url: str | None, cache_dir: str, get=http_get,
                 cache: CacheDir | None = None, misses: Misses | None = None):
        self.base = (controller_url or "").rstrip("/")
        self.cache = CacheDir(cache_dir) if cache is None else cache
        self.misses = Misses() if misses is None else misses
        self._get = get
        self._lock = threading.Lock()
        self._flights: dict[str, Future] = {}

    def cached(self, name: str) -> str | None:
        return self.cache.path(name)

    def fetch(self, name: str) -> str | None:
        """The cached path of ``name``, fetching it first if needed; None if unavailable."""
        path = self.cached(name)
        if path or not self.base:
            return path
        with self._lock:
            flight = self._flights.get(name)
            owner = flight is None
            if owner:
                flight = self._flights[name] = Future()
        if not owner:
            return flight.result()
        try:
            path = self._fetch_once(name)
            flight.set_result(path)
        except BaseException as exc:  # waiters must never hang on a failed owner
            flight.set_result(None)
            if not isinstance(exc, Exception):
                raise
            if _LOG_LIMIT.allow("tftp-fetch-failed"):
                log.warning("tftp: fetching %s from %s failed: %s", name, self.base, exc)
            path = None
        finally:
            with self._lock:
                del self._flights[name]
        return path

    def _fetch_once(self, name: str) -> str | None:
        path = self.cached(name)          # a flight that ended just before ours
        if path or name in self.misses:
            return path
        url = f"{self.base}/files/{quote(name)}"
        try:
            path = self.cache.download(name, lambda out: self._get(url, out))
        except TooLarge:
            path = None
        if path is None:
            self.misses.add(name)
            if _LOG_LIMIT.allow("tftp-upstream-miss"):
                log.info("tftp: the controller has no %s (or it is too large to cache)", name)
        elif _LOG_LIMIT.allow("tftp-cached"):
            log.info("tftp: cached %s from the controller", name)
        return path


class FileSource:
    """Resolves a clean name to bytes: the root first, then the controller cache.

    Small files are kept in memory (keyed by path, size and mtime, so a replaced file
    is re-read; least recently used dropped beyond ``MEMORY_TOTAL``) and every
    transfer gets its own ``BytesIO`` over the shared bytes.
    """

    def __init__(self, root: str, fetcher: Fetcher):
        self.root = root
        self.fetcher = fetcher
        self._memory: OrderedDict[str, tuple] = OrderedDict()
        self._held = 0
        self._lock = threading.Lock()

    def local(self, name: str) -> str | None:
        return file_in(self.root, name) or self.fetcher.cached(name)

    def needs_fetch(self, name: str) -> bool:
        return bool(self.fetcher.base) and self.local(name) is None

    def open(self, name: str):
        """A readable binary file object for ``name``, or None."""
        path = self.local(name)
        if path is None:
            return None
        st = os.stat(path)
        if st.st_size > MEMORY_LIMIT:
            return open(path, "rb")
        key = (st.st_size, st.st_mtime_ns)
        with self._lock:
            held = self._memory.get(path)
            if held is not None and held[0] == key:
                self._memory.move_to_end(path)
                return io.BytesIO(held[1])
        with open(path, "rb") as fh:
            data = fh.read()
        self._remember(path, key, data)
        return io.BytesIO(data)

    def _remember(self, path: str, key: tuple, data: bytes) -> None:
        with self._lock:
            old = self._memory.pop(path, None)
            self._held -= len(old[1]) if old else 0
            self._memory[path] = (key, data)
            self._held += len(data)
            while self._held > MEMORY_TOTAL:
                _, (_, dropped) = self._memory.popitem(last=False)
                self._held -= len(dropped)
