"""The Redfish client layer: one :class:`BmcClient` per BMC over the DMTF ``redfish`` library.

The library does the HTTP; this layer adds what a fleet needs: basic auth (the
library's session login is not what every BMC accepts), TLS verification on by
default, short timeouts, retries with jittered backoff for transient failures
(connection trouble, 429/500/502/503/504) where repeating the request is safe,
and every HTTP answer mapped to an error in one place (:mod:`.errors`).
Credentials never reach a log line or an exception text.
"""

from __future__ import annotations

import base64
import email.utils
import logging
import os
import random
import time
from dataclasses import dataclass, field

import redfish
import requests
import urllib3
from redfish.rest.v1 import RetriesExhaustedError

from ..errors import InputError
from ..throttle import Throttle
from .errors import BmcUnreachable, error_for

log = logging.getLogger(__name__)
# The library logs every request at INFO ("Attempt 1 of …"); that is our job, at DEBUG.
logging.getLogger("redfish").setLevel(logging.WARNING)


class _OneLine(logging.Filter):
    """The library's own error records (a BMC's whole HTML 404 page among them, on
    stderr when no handler is set) become one line of ours: the first line of the
    message, cut short, and throttled (what a BMC sends is not ours to repeat)."""

    throttle = Throttle(rate=1.0, burst=20)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage().strip().splitlines()
        if self.throttle.allow("redfish-library"):
            log.warning("redfish library: %s", _printable(text[0] if text else "")[:200])
        return False


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


logging.getLogger("redfish.rest.v1").addFilter(_OneLine())   # a filter is per logger


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def load_credentials(zone) -> Credentials:
    """The BMC credentials the zone names: ``password_file`` (relative to the zone file) or ``password_env``."""
    c = zone.credentials
    if c.password_file:
        path = zone.path(c.password_file)
        try:
            with open(path, encoding="utf-8") as fh:
                password = fh.read().rstrip("\r\n")
        except OSError as exc:
            raise InputError(f"credentials.bmc.password_file {path}: {exc.strerror}") from None
    elif c.password_env:
        password = os.environ.get(c.password_env)
        if password is None:
            raise InputError(f"credentials.bmc.password_env: ${c.password_env} is not set")
    else:
        raise InputError("credentials.bmc: give password_file or password_env")
    return Credentials(c.username, password)


@dataclass(frozen=True)
class Tls:
    """``verify`` off only when asked explicitly; ``ca_file`` trusts a private CA."""

    verify: bool = True
    ca_file: str | None = None

    @property
    def cafile(self) -> str | None:
        # The library passes ``verify=cafile or False`` to requests: without a
        # CA file it would not verify at all, so name the default bundle.
        if not self.verify:
            return None
        return self.ca_file or requests.certs.where()


def tls_settings(zone, insecure: bool = False) -> Tls:
    r = zone.redfish
    if insecure or not r.verify_tls:
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return Tls(False, None)
    ca = zone.path(r.ca_file) if r.ca_file else None
    if ca and not os.path.isfile(ca):
        raise InputError(f"redfish.ca_file {ca}: no such file")
    return Tls(True, ca)


@dataclass(frozen=True)
class Endpoint:
    """Where one node's BMC answers: ``node`` is the BMC's plan name."""

    node: str
    url: str
    system: str   # "auto" or a system id


def endpoint_for(zone, bmc) -> Endpoint:
    """The zone's ``redfish.url`` / ``system`` templates over one BMC node of the plan."""
    fields = {"name": bmc.peer or bmc.name, "bmc": bmc.name, "lom_address": bmc.address,
              "pod": bmc.pod, "pod_index": bmc.pod_index, "unit": bmc.unit}
    system = zone.redfish.system
    return Endpoint(bmc.name, zone.redfish.url.format(**fields).rstrip("/"),
                    system if system == "auto" else system.format(**fields))


@dataclass
class Answer:
    status: int
    body: dict
    headers: dict

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Policy:
    """Timeouts and retries: the pause before retry n is ``backoff * 2**n`` capped at
    ``backoff_cap``, drawn from its upper half (jitter, so a fleet that failed together
    does not come back together); a ``Retry-After`` replaces it, up to ``retry_after_cap``."""

    timeout: float = 10.0
    retries: int = 4
    backoff: float = 0.5
    backoff_cap: float = 8.0
    retry_after_cap: float = 30.0

    def pauses(self, rand=random.random):
        delay = self.backoff
        while True:
            yield delay * (0.5 + rand() / 2)
            delay = min(self.backoff_cap, delay * 2)


# Repeating these leaves the BMC as one request would (RFC 9110 idempotent methods).
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE"})
# The BMC says it did not act: worth repeating any request.
_NOT_DONE = frozenset({429, 503})
# The BMC may or may not have acted: only an idempotent request is repeated.
_MAYBE_DONE = frozenset({500, 502, 504})


class BmcClient:
    """One BMC. Thread-confined: give each worker its own client."""

    def __init__(self, endpoint: Endpoint, creds: Credentials, tls: Tls, policy: Policy = Policy()):
        self.endpoint, self.policy = endpoint, policy
        self.name = endpoint.node
        self._creds, self._tls = creds, tls
        self._rf = None
        self._sleep, self._rand = time.sleep, random.random

    def connect(self) -> "BmcClient":
        """Set up the connection with basic auth; nothing is sent yet.

        The library's ``login(auth="basic")`` spends two requests (service root and
        the Sessions URI) only to learn what the first real request tells anyway: a
        401 there is :class:`AuthFailed`, never retried. A fleet run pays those two
        requests per BMC on its critical path, so they are left out.
        """
        self._rf = redfish.redfish_client(
            base_url=self.endpoint.url, username=self._creds.username,
            password=self._creds.password, cafile=self._tls.cafile,
            timeout=self.policy.timeout, max_retry=0, check_connectivity=False)
        token = base64.b64encode(f"{self._creds.username}:{self._creds.password}".encode()).decode()
        self._rf.set_authorization_key(f"Basic {token}")
        return self

    def close(self) -> None:
        if self._rf is not None:
            self._rf._session.close()  # basic auth: no session to delete on the BMC
            self._rf = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    # --- requests ---------------------------------------------------------------

    def get(self, path: str, what: str | None = None) -> dict:
        return self.request("GET", path, what=what).body

    def post(self, path: str, body, what: str | None = None, settled=None,
             headers: dict | None = None) -> Answer:
        """``body``: a dict (JSON), bytes (octet stream) or, with ``headers`` naming
        multipart/form-data, a dict of parts (the library encodes it)."""
        return self.request("POST", path, body, what=what, settled=settled, headers=headers)

    def patch(self, path: str, body: dict, what: str | None = None) -> Answer:
        return self.request("PATCH", path, body, what=what)

    def request(self, method: str, path: str, body: dict | None = None,
                what: str | None = None, ok=(), settled=None, headers=None) -> Answer:
        """One request, repeated while its failure is transient and repeating is safe.

        HTTP errors raise (statuses in ``ok`` are returned instead). ``settled``
        makes a non-idempotent request safe to repeat: called before each repeat,
        it looks whether the first attempt took effect after all and returns the
        :class:`Answer` that stands for it, or None to send the request again.
        """
        what = what or f"{method} {path}"
        repeatable = method in _IDEMPOTENT or settled is not None
        pauses = self.policy.pauses(self._rand)
        for attempt in range(1, self.policy.retries + 2):
            answer, failure = self._once(method, path, body, what, ok, headers)
            if failure is None:
                return answer
            if attempt > self.policy.retries or not _worth_repeating(failure, repeatable):
                raise failure.gave_up(attempt)
            pause = self._pause(failure, next(pauses))
            log.debug("%s: %s; retry %d of %d in %.2fs", self.name, failure.message, attempt,
                      self.policy.retries, pause)
            self._sleep(pause)
            done = settled() if settled is not None else None
            if done is not None:
                return done
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, body, what: str, ok, headers=None) -> tuple:
        """(answer, None) or (None, the failure): one attempt, nothing repeated."""
        if self._rf is None:
            failure = BmcUnreachable("not connected", self.name)
            failure.final = True    # a bug of the caller's: waiting will not connect it
            return None, failure
        try:
            # a copy: the library writes the multipart boundary into the dict it is given
            resp = self._rf._rest_request(path, method=method, body=body,
                                          headers=dict(headers) if headers else None)
        except RetriesExhaustedError as exc:
            return None, _unreachable(exc.__cause__, self.name, what)
        answer = Answer(resp.status, _json(resp), _headers(resp.getheaders()))
        failure = None if answer.status in ok else error_for(
            answer.status, answer.body, self.name, what)
        if failure is not None:
            failure.retry_after = _retry_after(answer.header("retry-after"))
            return None, failure
        return answer, None

    def _pause(self, failure, backoff: float) -> float:
        if failure.retry_after is not None:
            return min(failure.retry_after, self.policy.retry_after_cap)
        return backoff


def _worth_repeating(failure, repeatable: bool) -> bool:
    """Repeat what the BMC did not do, and what it may have done only when that is safe."""
    if isinstance(failure, BmcUnreachable):
        return not failure.final and (repeatable or not failure.maybe_sent)
    if failure.status in _NOT_DONE:
        return True
    return repeatable and failure.status in _MAYBE_DONE


def _json(resp) -> dict:
    try:
        body = resp.dict
    except Exception:  # a BMC that answers with broken JSON: keep the status, drop the body
        return {}
    return body if isinstance(body, dict) else {}


def _headers(raw) -> dict:
    pairs = raw.items() if isinstance(raw, dict) else raw   # the library returns either form
    return {k.lower(): v for k, v in pairs}


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _nothing_sent(cause) -> bool:
    """A failure before the request reached the BMC (refused, connect timeout)."""
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(cause.args[0], "reason", None) if getattr(cause, "args", None) else None
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)  # NewConnectionError too


def _unreachable(cause, bmc: str, what: str) -> BmcUnreachable:
    if isinstance(cause, requests.exceptions.SSLError):
        reason = f"TLS failure ({_short(cause)})"
    elif isinstance(cause, requests.exceptions.Timeout):
        reason = "timed out"
    elif isinstance(cause, requests.exceptions.ConnectionError):
        reason = f"cannot connect ({_short(cause)})"
    else:
        reason = _short(cause) if cause else "no answer"
    exc = BmcUnreachable(f"{what}: {reason}", bmc)
    # A certificate the BMC will present again fails again; other network trouble may pass.
    exc.final = isinstance(cause, requests.exceptions.SSLError)
    exc.maybe_sent = not _nothing_sent(cause)
    return exc


def _short(exc) -> str:
    text = str(exc)
    for marker in ("certificate verify failed", "Connection refused", "Name or service not known",
                   "Connection reset by peer", "Remote end closed connection"):
        if marker in text:
            return marker
    return text[:160]
