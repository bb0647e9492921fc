"""The Redfish client layer: one :class:`BmcClient` per BMC over the DMTF ``redfish`` library.

The library does the HTTP; this layer adds what a fleet needs: basic auth (the
library's session login is not what every BMC accepts), TLS verification on by
default, short timeouts, retries with backoff only for transient failures, and
every HTTP answer mapped to an error in one place (:mod:`.errors`).
Credentials never reach a log line or an exception text.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from dataclasses import dataclass, field

import redfish
import requests
from redfish.rest.v1 import RetriesExhaustedError

from ..errors import InputError
from .errors import BmcUnreachable, Transient, error_for

log = logging.getLogger(__name__)
# The library logs every request at INFO ("Attempt 1 of …"); that is our job, at DEBUG.
logging.getLogger("redfish").setLevel(logging.WARNING)


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
    """Timeouts and retries; ``backoff`` doubles after every retry."""

    timeout: float = 10.0
    retries: int = 3
    backoff: float = 0.5


_SAFE_TO_REPEAT = frozenset({"GET", "HEAD"})


class BmcClient:
    """One BMC. Thread-confined: give each worker its own client."""

    def __init__(self, endpoint: Endpoint, creds: Credentials, tls: Tls, policy: Policy = Policy()):
        self.endpoint, self.policy = endpoint, policy
        self.name = endpoint.node
        self._creds, self._tls = creds, tls
        self._rf = None
        self._sleep = time.sleep

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

    def post(self, path: str, body: dict, what: str | None = None) -> Answer:
        return self.request("POST", path, body, what=what)

    def patch(self, path: str, body: dict, what: str | None = None) -> Answer:
        return self.request("PATCH", path, body, what=what)

    def request(self, method: str, path: str, body: dict | None = None,
                what: str | None = None, ok=()) -> Answer:
        """One request; HTTP errors raise (statuses in ``ok`` are returned instead)."""
        what = what or f"{method} {path}"
        answer = self._call(lambda: self._once(method, path, body, what), what, method)
        exc = None if answer.status in ok else error_for(answer.status, answer.body, self.name, what)
        if exc is not None:
            raise exc
        return answer

    def _once(self, method: str, path: str, body, what: str) -> Answer:
        if self._rf is None:
            raise BmcUnreachable("not connected", self.name)
        resp = self._rf._rest_request(path, method=method, body=body)
        answer = Answer(resp.status, _json(resp), _headers(resp.getheaders()))
        if answer.status in (429, 503) or (method in _SAFE_TO_REPEAT and answer.status in (502, 504)):
            exc = error_for(answer.status, answer.body, self.name, what)
            exc.retry_after = _retry_after(answer.header("retry-after"))
            raise exc
        return answer

    def _call(self, fn, what: str, method: str):
        """Run ``fn`` with retries and backoff for transient failures only."""
        delay = self.policy.backoff
        for attempt in range(self.policy.retries + 1):
            try:
                return fn()
            except RetriesExhaustedError as exc:
                failure = _unreachable(exc.__cause__, self.name, what)
                repeat = _worth_repeating(exc.__cause__, method)
            except Transient as exc:
                failure, repeat = exc, True
            if not repeat or attempt == self.policy.retries:
                raise failure
            pause = failure.retry_after if getattr(failure, "retry_after", None) else delay
            log.debug("%s: %s; retry %d in %.1fs", self.name, failure.message, attempt + 1, pause)
            self._sleep(min(pause, 30.0))
            delay *= 2
        raise AssertionError("unreachable")



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
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _worth_repeating(cause, method: str) -> bool:
    """A certificate the BMC will present again fails again; other network trouble may pass."""
    if isinstance(cause, requests.exceptions.SSLError):
        return False
    return method in _SAFE_TO_REPEAT or _nothing_sent(cause)


def _nothing_sent(cause) -> bool:
    """A failure before the request reached the BMC: safe to repeat even a POST."""
    return isinstance(cause, requests.exceptions.ConnectionError) and not isinstance(
        cause, (requests.exceptions.ReadTimeout, requests.exceptions.SSLError))


def _unreachable(cause, bmc: str, what: str) -> BmcUnreachable:
    if isinstance(cause, requests.exceptions.SSLError):
        reason = f"TLS failure ({_short(cause)})"
    elif isinstance(cause, requests.exceptions.Timeout):
        reason = "timed out"
    elif isinstance(cause, requests.exceptions.ConnectionError):
        reason = f"cannot connect ({_short(cause)})"
    else:
        reason = _short(cause) if cause else "no answer"
    return BmcUnreachable(f"{what}: {reason}", bmc)


def _short(exc) -> str:
    text = str(exc)
    for marker in ("certificate verify failed", "Connection refused", "Name or service not known"):
        if marker in text:
            return marker
    return text[:160]
