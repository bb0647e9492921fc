"""What every blueprint shares: the plan, the store, settings and secrets.

Attached once to the app by :func:`~bootstrap.http.create_app`; blueprints reach
it through :func:`current`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time

from flask import current_app, make_response, request

from ...plan import Node, Plan
from ...state import EventWriter, Store, legal
from ...throttle import Throttle
from .context import build_context
from .problems import LOGS
from .settings import api_token, node_secret

log = logging.getLogger("bootstrap.http")
SOURCE = "http"
# Events any client can trigger by asking again and again: throttled per (kind, node, address).
NOISY = frozenset({"ipxe-unknown", "cloud-init-denied", "phone-home-denied", "files-refused",
                   "api-denied"})


MOVE = "\0move"  # a queued item that is a forward move, not an event
PACE = 0.05  # seconds between a worker's event transactions: what arrives meanwhile is batched


class _Batches:
    """The store as a worker's EventWriter sees it: each batch's events are appended,
    then its forward moves applied with :meth:`~bootstrap.state.Store.advance` (legal
    ones only: a move already made by an earlier request is skipped).

    After each batch it waits ``pace`` seconds: the writer takes whatever is queued the
    moment one item arrives, so at a few thousand requests/s it would otherwise commit
    each event alone (measured: 1.04 events per transaction), a thread wake-up and a
    transaction per request.
    """

    def __init__(self, store: Store, pace: float = PACE):
        self.store, self.pace = store, pace

    def add_events(self, items: list) -> None:
        events = [item for item in items if item[3] != MOVE]
        moves = [(node, detail.pop("to"), detail) for _, node, _, kind, detail in items
                 if kind == MOVE]
        try:
            if events:
                self.store.add_events(events)
            self.store.advance(moves, source=SOURCE)
        finally:
            time.sleep(self.pace)

    def close(self) -> None:
        self.store.close()


class EventSink:
    """Where a process's events (and boot's forward moves) go: straight into the store,
    or (``batch``) through an :class:`~bootstrap.state.EventWriter`, so a request never
    waits on a write transaction that the other workers contend for.

    The writer is made lazily in the process that records (gunicorn forks workers after
    the app may exist) on a connection of its own, so its waits on other processes'
    write locks never hold up this process's reads. :meth:`close` flushes it.
    """

    def __init__(self, store, batch: bool):
        self.store = store
        self.batch = batch and store.path != ":memory:"  # a memory database has one connection
        self.writer = self.pid = None
        self.lock = threading.Lock()

    def put(self, kind: str, node: str | None, source: str, **detail) -> None:
        if not self.batch:
            self.store.event(kind, node, source, **detail)
            return
        self._writer().put(kind, node, source, **detail)

    def move(self, name: str, state: str, **detail) -> None:
        """Move a node forward to ``state`` (its caller saw the move is legal). Queued, it
        is made by :meth:`~bootstrap.state.Store.advance` only if still legal then; either
        way it is logged as a ``state`` event."""
        if not self.batch:
            self.store.transition(name, state, source=SOURCE, **detail)
            return
        self._writer().put(MOVE, name, SOURCE, to=state, **detail)

    def _writer(self) -> EventWriter:
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():  # first event here, or a fork copied a dead thread
                    self.writer = EventWriter(_Batches(Store(self.store.path)))
                    self.pid = os.getpid()
        return self.writer

    def close(self) -> None:
        """Write what is queued (a worker that stops must not lose its events); any later
        event goes straight to the store."""
        with self.lock:
            writer, pid = self.writer, self.pid
            self.batch, self.writer, self.pid = False, None, None
        if writer is None or pid != os.getpid():  # a copy from before a fork: not ours
            return
        writer.store.pace = 0  # flush at full speed: gunicorn kills a slow-stopping worker
        writer.close()
        writer.store.close()
        if writer.dropped:
            log.warning("%d HTTP events were not recorded", writer.dropped)


class HttpService:
    """The plan, the store, settings and secrets of one app, and helpers over them."""

    def __init__(self, plan: Plan, store, settings: dict, jinja):
        self.plan, self.store, self.settings, self.jinja = plan, store, settings, jinja
        self.base_url = (settings["PUBLIC_URL"] or plan.zone.controller_url).rstrip("/")
        self.files_root = settings["FILES_ROOT"] or plan.zone.base_dir
        self.secret = node_secret(settings, store.path)
        self.api_token = api_token(settings)
        self.rendered: dict = {}  # (template, node name, extras) → text, plan-only templates
        # one event per (kind, node, address) and window (bootstrap.throttle counts the rest)
        self.throttle = Throttle(rate=1 / max(float(settings["EVENT_THROTTLE_SECONDS"]), 1e-3),
                                 burst=1)
        self.events = EventSink(store, bool(settings["EVENT_BATCH"]))
        # Called as hook(svc, node) after an answer moved a node (phone-home). The serving
        # layer registers here (the nginx front rewrites the node's file): the views never
        # call what serves them.
        self.on_state_change: list = []

    def state_changed(self, node: Node) -> None:
        for hook in self.on_state_change:
            hook(self, node)

    def event(self, kind: str, node: str | None = None, noisy: bool = False, **detail) -> None:
        """Record an event; a store failure is logged and never fails the request.

        ``noisy`` (or a kind in :data:`NOISY`): anyone may cause it over and over, so it
        is throttled per (kind, node, client address)."""
        if "address" not in detail:  # callers outside a Flask request pass it
            detail["address"] = client_address()
        noisy = noisy or kind in NOISY
        if noisy and not self.throttle.allow(kind, f"{node} {detail['address']}"):
            return
        try:
            self.events.put(kind, node, SOURCE, **detail)
        except Exception as exc:  # noqa: BLE001 - an event must not break an answer
            if LOGS.allow("http-event-not-recorded", str(detail["address"])):
                log.warning("event %s for %s not recorded: %s", kind, node, exc)

    def close(self) -> None:
        """Flush batched events (a gunicorn worker calls this as it exits)."""
        self.events.close()

    def record(self, name: str) -> dict | None:
        return self.store.node(name)

    def state(self, name: str) -> str | None:
        """The node's state alone, for paths that need no more: one indexed read."""
        return self.store.node_state(name)

    def context(self, node: Node | None = None, record: dict | None = None, **extra) -> dict:
        return build_context(self.plan, self.settings, self.base_url, node, record, **extra)

    def render(self, template: str, node: Node | None = None, record: dict | None = None,
               **extra) -> str:
        # The app's Jinja environment without Flask's request globals (no template uses
        # them), so a script renders outside a request too (the lean path, warming).
        return self.jinja.get_template(template).render(self.context(node, record, **extra))

    def warm(self) -> dict:
        """Every server's install script, rendered ahead into the cache (and returned): the
        gunicorn master does it once before forking, so no worker renders while 10,000
        servers ask at once."""
        for node in self.plan.servers():
            if node.image is not None:
                self.render_planned("ipxe.ipxe", node)
        return self.rendered

    def render_planned(self, template: str, node: Node | None = None, **extra) -> str:
        """A template that reads only the plan, settings and ``extra`` (text): rendered once."""
        key = (template, node.name if node else None, *sorted(extra.items()))
        text = self.rendered.get(key)
        if text is None:
            text = self.rendered[key] = self.render(template, node, **extra)
        return text


def current() -> HttpService:
    return current_app.extensions["zone"]


def client_address() -> str | None:
    """The requester's address (X-Forwarded-For only when configured, via ProxyFix)."""
    return request.remote_addr


def advance(svc: HttpService, node: Node, record: dict | None, state: str, **detail) -> bool:
    """Move the node forward to ``state`` when that is a legal move; never backwards."""
    if record is None or not legal(node.kind, record["state"], state):
        return False
    return svc.store.transition(node.name, state, source=SOURCE, **detail)


def forward(svc: HttpService, node: Node, current: str | None, state: str, **detail) -> None:
    """:func:`advance` as a side effect of an answer, from a state already read (``None``:
    the node is not stored); in a gunicorn worker it is queued with the events."""
    if current is not None and legal(node.kind, current, state):
        with contextlib.suppress(sqlite3.Error):  # a state disk that takes no writes must not
            svc.events.move(node.name, state, **detail)  # fail the answer (the store logs it)


def text(body: str, mimetype: str = "text/plain"):
    """A text answer (iPXE, ONIE, ZTP scripts and cloud-init read plain bodies)."""
    resp = make_response(body)
    resp.mimetype = mimetype
    return resp
