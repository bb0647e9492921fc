"""The state store: nodes, pods, services and an append-only event log.

SQLite in WAL mode: many readers and one writer at a time across processes (the
DHCP workers, the HTTP service, ``zone up``, ``zone status``). Writers wait on a
busy timeout instead of failing. Everything goes through :class:`Store`, so a
server database can replace SQLite behind the same methods.

Hot paths (DHCP) never write here directly: they hand events to an
:class:`EventWriter`, which batches them on a thread of its own.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import threading
import time
from typing import Iterable

from .errors import InputError

# Legal order of states per kind; moves go forward, to failed, or out of failed.
ORDER = {
    "server": ("planned", "discovered", "firmware", "booting", "installed", "configured", "ready"),
    "bmc": ("planned", "discovered", "firmware", "ready"),
    "switch": ("planned", "discovered", "ztp", "ready"),
}
POD_STATES = ("planned", "switches", "bmcs", "booting", "configuring", "ready", "failed")
FAILED = "failed"

SCHEMA = """
CREATE TABLE IF NOT EXISTS nodes (
  name TEXT PRIMARY KEY, pod TEXT, kind TEXT NOT NULL, state TEXT NOT NULL DEFAULT 'planned',
  reason TEXT, mac TEXT, data TEXT NOT NULL DEFAULT '{}', updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS nodes_pod ON nodes(pod);
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


def legal(kind: str, current: str, new: str) -> bool:
    """May a node of ``kind`` move from ``current`` to ``new``?"""
    if new == FAILED or current == FAILED:
        return new != current
    order = ORDER.get(kind, ORDER["server"])
    if new not in order or current not in order:
        return False
    return order.index(new) > order.index(current)


class Store:
    """One connection to the state database; safe to share between threads."""

    def __init__(self, path: str):
        self.path = str(path)
        if self.path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                      isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{self.path}: not a usable state database ({exc})") from None
        self.db.row_factory = sqlite3.Row
        self.lock = threading.RLock()

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

    # --- nodes --------------------------------------------------------------

    def seed(self, plan) -> None:
        """A ``planned`` row for every node and pod of the plan not yet stored."""
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

    def heartbeat(self, ident: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE services SET heartbeat=? WHERE id=?", (time.time(), ident))

    def services(self) -> list[dict]:
        with self.lock:
            return [dict(r) for r in self.db.execute("SELECT * FROM services ORDER BY id")]


class _Tx:
    """``with store._tx() as db``: one IMMEDIATE transaction under the store's lock."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self):
        self.store.lock.acquire()
        self.store.db.execute("BEGIN IMMEDIATE")
        return self.store.db

    def __exit__(self, exc_type, exc, tb):
        try:
            self.store.db.execute("ROLLBACK" if exc_type else "COMMIT")
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
    in ``dropped`` rather than stalling a packet path.
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
            self.dropped += 1

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
            except sqlite3.Error:
                self.dropped += len(items)

    def close(self) -> None:
        """Flush what is queued and stop the thread."""
        self._stop.set()
        self._thread.join(timeout=30)
