"""The state store: nodes, pods, services and an append-only event log.

SQLite in WAL mode: many readers and one writer at a time across processes (the
DHCP workers, the HTTP service, ``zone up``, ``zone status``). Writers wait on a
busy timeout instead of failing. Everything goes through :class:`Store`, so a
server database can replace SQLite behind the same methods.

Hot paths (DHCP) never write here directly: they hand events to an
:class:`EventWriter`, which batches them on a thread of its own.

A full or read-only state filesystem must not stop the services, which answer
from the zone alone: a write that fails is recorded (:func:`write_problems`,
``zone_state_write_errors_total``), events that cannot be written are dropped and
counted (``zone_events_dropped_total{reason}``), and once writes succeed again
events flow again. A database that cannot be opened for writing is opened
read-only, so ``zone status`` still reads it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import re
import socket
import sqlite3
import threading
import time
import urllib.parse
from typing import Iterable

from prometheus_client import Counter

from .errors import InputError
from .lifecycle import FAILED, legal  # noqa: F401 (legal is also imported from here)
from .throttle import Throttle

log = logging.getLogger("bootstrap.state")
EVENTS_DROPPED = Counter("zone_events_dropped_total",
                         "Events not recorded, by why (disk-full, read-only, io-error, ...)",
                         ["reason"])
WRITE_ERRORS = Counter("zone_state_write_errors_total", "Failed state database writes",
                       ["reason"])
HEARTBEAT_SECONDS = 5.0                # a running service marks itself alive this often
STALE_AFTER = 3 * HEARTBEAT_SECONDS    # no mark for this long: the service is stale
LOW_SPACE = 1 << 20     # bytes: less free than this on the state filesystem is "full"
PROBE_INTERVAL = 5.0    # seconds between write probes while writes are failing
# Log lines about failing writes: one per minute and kind, the rest counted as suppressed.
WRITE_LOG = Throttle(rate=1 / 60, burst=1)

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a ``data`` attribute name a finder may name

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
  name TEXT PRIMARY KEY, pod TEXT, kind TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'planned',
  reason TEXT, mac TEXT, data TEXT NOT NULL DEFAULT '{}', updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS nodes_pod ON nodes(pod);
CREATE INDEX IF NOT EXISTS nodes_mac ON nodes(lower(mac));  -- name_by_mac: iPXE's ?mac=
CREATE TABLE IF NOT EXISTS pods (
  name TEXT PRIMARY KEY, state TEXT NOT NULL DEFAULT 'planned', reason TEXT, updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, node TEXT, source TEXT NOT NULL,
  kind TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}');
CREATE INDEX IF NOT EXISTS events_node ON events(node);
CREATE TABLE IF NOT EXISTS services (
  id TEXT PRIMARY KEY, kind TEXT, address TEXT, pid INTEGER, zone_digest TEXT,
  started REAL, heartbeat REAL);
"""


def default_path(zone_path: str) -> str:
    """Where a zone's state lives unless told: ``state/zone.db`` beside the zone file."""
    return os.path.join(os.path.dirname(os.path.abspath(zone_path)), "state", "zone.db")


class Store:
    """One connection to the state database; safe to share between threads."""

    def __init__(self, path: str):
        self.path = str(path)
        self.readonly = False   # opened read-only: writing was impossible
        self._probed = time.monotonic()  # last write probe (see problems)
        if self.path != ":memory:":
            with contextlib.suppress(OSError):  # a read-only parent: the file may still read
                os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            self.db = self._open()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable state database ({exc})") from None
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()

    def _connect(self, target: str, uri: bool = False):
        return sqlite3.connect(target, timeout=30, check_same_thread=False,
                               isolation_level=None, uri=uri)

    def _open(self):
        try:
            db = self._connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
            return db
        except sqlite3.OperationalError as exc:
            if self.path == ":memory:" or not os.path.exists(self.path) \
                    or failure_reason(exc) not in ("read-only", "io-error", "disk-full"):
                raise  # busy, or not a database: no reason to think reading alone works
            return self._open_readonly(exc)

    def _open_readonly(self, why: Exception):
        """The database read-only: ``mode=ro`` sees the write-ahead log but needs its
        shared-memory file; ``immutable`` needs nothing, but misses what the log holds."""
        base = "file:" + urllib.parse.quote(os.path.abspath(self.path))
        for query in ("mode=ro", "immutable=1"):
            db = self._connect(f"{base}?{query}", uri=True)
            try:
                db.execute("SELECT count(*) FROM services").fetchone()
            except sqlite3.Error:
                db.close()
                continue
            log.warning("%s: not writable (%s): opened read-only", self.path, why)
            self.readonly = True
            return db
        raise why

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def _tx(self):
        return _Tx(self)

    # --- events -------------------------------------------------------------

    def add_events(self, events: Iterable[tuple]) -> None:
        """Append events given as ``(ts, node, source, kind, detail-dict)``."""
        rows = [(ts, node, source, kind, json.dumps(detail, default=str))
                for ts, node, source, kind, detail in events]
        with self._tx() as db:
            db.executemany("INSERT INTO events(ts,node,source,kind,detail) VALUES (?,?,?,?,?)", rows)

    def event(self, kind: str, node: str | None = None, source: str = "", **detail) -> None:
        self.add_events([(time.time(), node, source, kind, detail)])

    def events(self, since: int = 0, node: str | None = None, kind: str | None = None,
               limit: int = 200, newest: bool = False) -> list[dict]:
        where, args = _where(node=node, kind=kind)
        sql = (f"SELECT * FROM events {where} {'AND' if args else 'WHERE'} id > ? "
               f"ORDER BY id {'DESC' if newest else 'ASC'} LIMIT ?")
        with self.lock:
            rows = self.db.execute(sql, args + [since, limit]).fetchall()
        out = [dict(r, detail=json.loads(r["detail"])) for r in rows]
        return out[::-1] if newest else out

    def prune_events(self, before_ts: float, keep_last_per_node: int = 10) -> int:
        """Delete events older than ``before_ts`` but each node's newest
        ``keep_last_per_node`` (node-less events count as one node), so a node's last
        steps and failure stay visible; returns how many were deleted."""
        if keep_last_per_node < 0:
            raise InputError(f"keep_last_per_node must be 0 or more, not {keep_last_per_node}")
        with self._tx() as db:
            return db.execute(
                "DELETE FROM events WHERE ts < ? AND id NOT IN (SELECT id FROM (SELECT id, "
                "ROW_NUMBER() OVER (PARTITION BY node ORDER BY id DESC) AS n FROM events) "
                "WHERE n <= ?)", (before_ts, keep_last_per_node)).rowcount

    # --- nodes --------------------------------------------------------------

    def seed(self, plan) -> None:
        """A ``planned`` row for every node and pod of the plan not yet stored (none when
        the database is read-only: its readers see the nodes it holds)."""
        if self.readonly:
            return
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT OR IGNORE INTO nodes(name,pod,kind,updated) VALUES (?,?,?,?)",
                           [(n.name, n.pod, n.kind, now) for n in plan.nodes.values()])
            db.executemany("INSERT OR IGNORE INTO pods(name,updated) VALUES (?,?)",
                           [(p, now) for p in plan.pods])

    def node(self, name: str) -> dict | None:
        with self.lock:
            row = self.db.execute("SELECT * FROM nodes WHERE name = ?", (name,)).fetchone()
        return _node_row(row) if row else None

    def node_state(self, name: str) -> str | None:
        """The node's state alone (one read by primary key), None if it is not stored."""
        return self._value("SELECT state FROM nodes WHERE name = ?", (name,))

    def name_by_mac(self, mac: str) -> str | None:
        """The name of the node whose recorded MAC is ``mac`` (any case), if one is."""
        return self._value("SELECT name FROM nodes WHERE lower(mac) = ?", (mac.lower(),))

    def name_by_data(self, keys: Iterable[str], value: str) -> str | None:
        """The name of a node with any of the ``data`` attributes ``keys`` equal to
        ``value`` (any case): one query, whatever the number of keys. A row whose data is
        not valid JSON (an Infinity stored before the API refused it) is skipped, not an
        error for every later lookup."""
        keys = tuple(keys)
        if not keys or not all(_KEY.fullmatch(k) for k in keys):  # keys become SQL text
            raise ValueError(f"not attribute names: {keys!r}")
        where = " OR ".join(f"lower(json_extract(data, '$.{k}')) = ?" for k in keys)
        return self._value(f"SELECT name FROM nodes WHERE CASE WHEN json_valid(data) "
                           f"THEN {where} END", (value.lower(),) * len(keys))

    def _value(self, sql: str, args: tuple):
        """The first column of the first row ``sql`` finds, or None."""
        with self.lock:
            row = self.db.execute(sql, args).fetchone()
        return row[0] if row else None

    def nodes(self, pod: str | None = None, kind: str | None = None) -> list[dict]:
        where, args = _where(node=None, pod=pod, kind=kind)
        with self.lock:
            rows = self.db.execute(f"SELECT * FROM nodes {where} ORDER BY rowid", args).fetchall()
        return [_node_row(r) for r in rows]

    def counts(self, pod: str | None = None, kind: str | None = None) -> dict:
        where, args = _where(node=None, pod=pod, kind=kind)
        with self.lock:
            return dict(self.db.execute(f"SELECT state, count(*) FROM nodes {where} GROUP BY state",
                                        args).fetchall())

    def transition(self, name: str, state: str, reason: str | None = None,
                   source: str = "", **detail) -> bool:
        """Move a node to ``state`` if legal; the move (or its refusal) is an event."""
        with self._tx() as db:
            row = db.execute("SELECT kind, state FROM nodes WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            kind, current = row
            if current == state:
                return False
            ok = legal(kind, current, state)
            if ok:
                db.execute("UPDATE nodes SET state=?, reason=?, updated=? WHERE name=?",
                           (state, reason, time.time(), name))
            info = dict(detail, to=state, **{"from": current})
            if reason:
                info["reason"] = reason
            db.execute("INSERT INTO events(ts,node,source,kind,detail) VALUES (?,?,?,?,?)",
                       (time.time(), name, source, "state" if ok else "illegal-transition",
                        json.dumps(info, default=str)))
        return ok

    def advance(self, moves: list[tuple[str, str, dict]], source: str = "") -> int:
        """Apply many ``(node, state, detail)`` moves in one transaction, legal ones only.

        Unlike :meth:`transition`, a move that is not legal is skipped silently:
        this is for replaying facts, where an old fact must not log anything.
        Returns how many moves were made.
        """
        if not moves:
            return 0
        now, made = time.time(), 0
        with self._tx() as db:
            for name, state, detail in moves:
                row = db.execute("SELECT kind, state FROM nodes WHERE name = ?", (name,)).fetchone()
                if row is None or row[1] == FAILED or not legal(row[0], row[1], state):
                    continue
                db.execute("UPDATE nodes SET state=?, reason=NULL, updated=? WHERE name=?",
                           (state, now, name))
                info = dict(detail, to=state, **{"from": row[1]})
                db.execute("INSERT INTO events(ts,node,source,kind,detail) VALUES (?,?,?,?,?)",
                           (now, name, source, "state", json.dumps(info, default=str)))
                made += 1
        return made

    def update(self, name: str, mac: str | None = None, **data) -> None:
        """Merge ``data`` into the node's stored attributes (firmware, keys, …)."""
        with self._tx() as db:
            row = db.execute("SELECT data FROM nodes WHERE name = ?", (name,)).fetchone()
            if row is None:
                return
            merged = dict(json.loads(row[0]), **data)
            db.execute("UPDATE nodes SET data=?, mac=coalesce(?, mac), updated=? WHERE name=?",
                       (json.dumps(merged, default=str), mac, time.time(), name))

    # --- pods and services ------------------------------------------------------

    def pods(self) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute("SELECT * FROM pods ORDER BY name")]

    def set_pod(self, name: str, state: str, reason: str | None = None) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO pods(name,state,reason,updated) VALUES (?,?,?,?) "
                       "ON CONFLICT(name) DO UPDATE SET state=excluded.state, "
                       "reason=excluded.reason, updated=excluded.updated",
                       (name, state, reason, time.time()))

    def register_service(self, ident: str, kind: str, address: str, zone_digest: str) -> None:
        now = time.time()
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO services VALUES (?,?,?,?,?,?,?)",
                       (ident, kind, address, os.getpid(), zone_digest, now, now))

    def unregister_service(self, ident: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM services WHERE id=?", (ident,))

    def heartbeat(self, ident: str) -> bool:
        """Mark the service alive now; False if it is not registered (any more)."""
        with self._tx() as db:
            return db.execute("UPDATE services SET heartbeat=? WHERE id=?",
                              (time.time(), ident)).rowcount > 0

    def services(self) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute("SELECT * FROM services ORDER BY id")]


    # --- health -------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Why the state cannot be written, or soon cannot: [] when all is well.

        From the filesystem (read-only, less than :data:`LOW_SPACE` free), from the last
        write of this process, if it failed (while it has, a tiny write is tried now and
        then, so the answer clears once writing works again), and from the heartbeats of
        this host's live services (a disk that fails writes in ways the filesystem does
        not tell, e.g. ext4 turned read-only after an error)."""
        if self.path == ":memory:":
            return []
        if self.readonly:
            return [f"state database {self.path} opened read-only"]
        found = filesystem_problems(os.path.dirname(os.path.abspath(self.path)))
        if self.path in _FAILURES and time.monotonic() - self._probed >= PROBE_INTERVAL:
            self._probed = time.monotonic()
            with contextlib.suppress(sqlite3.Error):  # a failure is recorded by _Tx
                self._probe()
        failure = _FAILURES.get(self.path)
        if failure is not None:
            found.append(f"state writes failing since {time.ctime(failure[2])}: {failure[1]}")
        return found + self._silent_services()

    def _silent_services(self) -> list[str]:
        """Services of this host whose process runs but whose heartbeat is not written: the
        state is not writable for them (seen here even when this process wrote nothing)."""
        now, host = time.time(), socket.gethostname()
        found = []
        for service in self.services():
            pid, silent = _local_pid(service, host), _silence(service, now)
            if pid and silent and _process_runs(pid):
                found.append(f"service {service['id']} runs but its heartbeat was not "
                             f"written for {silent:.0f} s")
        return found

    def _probe(self) -> None:
        """One small committed write: the header's user_version, set to what it is."""
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute(f"PRAGMA user_version = {int(version)}")


# Per database path, the last write failure in this process: (reason, message, time),
# dropped by the next write that succeeds (every connection of the process counts).
_FAILURES: dict[str, tuple[str, str, float]] = {}


def failure_reason(exc: BaseException) -> str:
    """A short label for why a state write failed, for counters and health."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    for prefix, reason in (("SQLITE_FULL", "disk-full"), ("SQLITE_READONLY", "read-only"),
                           ("SQLITE_IOERR", "io-error"), ("SQLITE_CANTOPEN", "io-error"),
                           ("SQLITE_BUSY", "busy"), ("SQLITE_LOCKED", "busy")):
        if name.startswith(prefix):
            return reason
    return "error"


def write_problems(path: str) -> tuple[str, str, float] | None:
    """This process's last write failure on ``path``, if no write succeeded since."""
    return _FAILURES.get(str(path))


def _write_failed(path: str, exc: BaseException) -> None:
    reason = failure_reason(exc)
    WRITE_ERRORS.labels(reason=reason).inc()
    if path not in _FAILURES:
        _FAILURES[path] = (reason, str(exc), time.time())
    if WRITE_LOG.allow("state-write-failed", path):
        log.warning("%s: state write failed (%s): %s; services go on from the zone",
                    path, reason, exc)


def _write_worked(path: str) -> None:
    if _FAILURES.pop(path, None) is not None:
        log.warning("%s: state writes work again", path)


def filesystem_problems(folder: str) -> list[str]:
    """The state filesystem read-only, or with less than :data:`LOW_SPACE` free."""
    try:
        fs = os.statvfs(folder)
    except OSError as exc:
        return [f"state folder {folder}: {exc.strerror}"]
    if fs.f_flag & os.ST_RDONLY:
        return [f"state filesystem of {folder} is read-only"]
    free = fs.f_bavail * fs.f_frsize
    if free < LOW_SPACE:
        return [f"state filesystem of {folder} is full ({free // 1024} KiB free)"]
    return []


def staleness(service: dict, now: float | None = None, host: str | None = None) -> str | None:
    """Why a registered service is stale, or None while it looks alive.

    Its process gone (when it ran on this host: its id names the host and pid), or
    no heartbeat for :data:`STALE_AFTER` (for services that beat: a heartbeat after
    the start; the standalone HTTP entry never beats)."""
    pid = _local_pid(service, host or socket.gethostname())
    if pid and not _process_runs(pid):
        return f"process {pid} is gone"
    silent = _silence(service, time.time() if now is None else now)
    return f"no heartbeat for {silent:.0f} s" if silent else None


def _local_pid(service: dict, host: str) -> int | None:
    """The service's pid if it runs on this host (its id names host and pid)."""
    pid, kind = service.get("pid"), service.get("kind")
    ok = pid and service.get("id") in (f"{kind}-{host}-{pid}", f"{host}:{pid}:{kind}")
    return int(pid) if ok else None


def _silence(service: dict, now: float) -> float:
    """Seconds since a beating service's last heartbeat when over :data:`STALE_AFTER`, else 0."""
    beat, started = service.get("heartbeat") or 0, service.get("started") or 0
    return now - beat if beat > started and now - beat > STALE_AFTER else 0.0


def _process_runs(pid: int) -> bool:
    """Is ``pid`` a live process here (a zombie, killed but not reaped, is not)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:
        return True


class _Tx:
    """``with store._tx() as db``: one IMMEDIATE transaction under the store's lock.

    A failed write (disk full, read-only, I/O error) is recorded for :meth:`Store.problems`
    and re-raised; the transaction is always closed and the lock always released, so
    the connection stays usable once the disk is."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self):
        self.store.lock.acquire()
        try:
            self.store.db.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            self._close(exc)
            raise
        return self.store.db

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.store.db.execute("COMMIT")
            except BaseException as failed:
                self._close(failed)
                raise
        self._close(exc)

    def _close(self, exc: BaseException | None) -> None:
        """End the transaction (a failed COMMIT may leave it open) and release the lock."""
        path, db = self.store.path, self.store.db
        try:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                _write_failed(path, exc)
            elif exc is None:
                _write_worked(path)
        finally:
            self.store.lock.release()


def _where(**filters) -> tuple[str, list]:
    """``WHERE a = ? AND b = ?`` for the filters given a value (column names are ours)."""
    given = [(column, value) for column, value in filters.items() if value]
    if not given:
        return "", []
    return "WHERE " + " AND ".join(f"{c} = ?" for c, _ in given), [v for _, v in given]


def _node_row(row) -> dict:
    out = dict(row)
    out["data"] = json.loads(out["data"])
    return out


class EventWriter:
    """Batches events onto the store from a thread, so callers never block on disk.

    ``put`` is cheap and never raises; if the queue is full the event is counted
    in ``dropped`` rather than stalling a packet path. A batch the store cannot
    write (disk full, read-only) is dropped and counted the same way, by reason, and
    the next batch tries again: events flow again once the disk has room.
    """

    def __init__(self, store: Store, max_queue: int = 100_000, batch: int = 2000,
                 interval: float = 0.05):
        self.store, self.batch, self.interval = store, batch, interval
        self.queue: queue.Queue = queue.Queue(max_queue)
        self.dropped = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def put(self, kind: str, node: str | None = None, source: str = "", **detail) -> None:
        try:
            self.queue.put_nowait((time.time(), node, source, kind, detail))
        except queue.Full:
            self._drop(1, "queue-full")

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        EVENTS_DROPPED.labels(reason=reason).inc(count)

    def _drain(self) -> list:
        items = []
        try:
            items.append(self.queue.get(timeout=self.interval))
            while len(items) < self.batch:
                items.append(self.queue.get_nowait())
        except queue.Empty:
            pass
        return items

    def _run(self) -> None:
        while not (self._stop.is_set() and self.queue.empty()):
            items = self._drain()
            if not items:
                continue
            try:
                self.store.add_events(items)
            except sqlite3.Error as exc:  # full or read-only disk: drop, count, go on
                self._drop(len(items), failure_reason(exc))
            except Exception:  # noqa: BLE001 - the writer thread must outlive any batch
                if WRITE_LOG.allow("events-not-recorded"):
                    log.exception("events not recorded")
                self._drop(len(items), "error")

    def close(self) -> None:
        """Flush what is queued and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=30)
