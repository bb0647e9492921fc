"""Redfish errors, and the one place that maps a BMC's HTTP answer to them.

Every error names the BMC it came from and carries the BMC's own message where
it sent one, so a failed node's reason reads like what the BMC said.
"""

from __future__ import annotations

from ..errors import InputError, WorkError


class RedfishError(WorkError):
    """Base of every Redfish failure; ``bmc`` is the node (or URL) that failed."""

    template = "{bmc}: {message}"

    status: int | None = None        # the HTTP status it stands for, when it came from one
    retry_after: float | None = None  # seconds the BMC asked us to wait (Retry-After)
    messages: tuple = ()              # (MessageId, MessageArgs) pairs of the BMC's error body

    def __init__(self, message: str = "", bmc: str = "?", **fields):
        super().__init__(message, bmc=bmc, **fields)
        self.bmc, self.message = bmc, message

    def gave_up(self, attempts: int) -> "RedfishError":
        """The same failure, saying how many attempts were spent on it (one line)."""
        if attempts < 2:
            return self
        again = type(self)(f"{self.message} (gave up after {attempts} attempts)", self.bmc)
        again.status, again.messages = self.status, self.messages
        return again

    def names(self, word: str) -> bool:
        """Whether one of the BMC's messages is about ``word`` (a parameter or value)."""
        return any(word in str(arg) for _id, args in self.messages for arg in args)

    def says(self, suffixes) -> bool:
        """Whether a MessageId ends with one of ``suffixes`` (registry and version vary)."""
        return any(mid.rsplit(".", 1)[-1] in suffixes for mid, _args in self.messages)


class BmcUnreachable(RedfishError):
    """No answer: connection refused, timed out, reset, TLS failure.

    ``maybe_sent``: the request may have reached the BMC (a read timeout, a reset
    after sending), so only an idempotent request may be repeated; ``final``: the
    same failure would come again (a certificate the BMC will present again)."""

    maybe_sent: bool = False
    final: bool = False


class AuthFailed(RedfishError):
    """401/403: wrong credentials. Never retried."""


class ResourceMissing(RedfishError):
    """404 on a resource the flow needs."""


class BmcRefused(RedfishError):
    """Any other 4xx: the BMC understood and said no."""


class BmcServerError(RedfishError):
    """A 5xx the BMC did not mark as temporary."""


class Transient(RedfishError):
    """429/502/503/504: worth retrying after a pause."""


class TaskFailed(RedfishError):
    """The update task ended in a state other than Completed."""


class TaskTimeout(RedfishError):
    """The update task did not finish in time."""


class VerifyFailed(RedfishError):
    """The update finished but the BMC reports another version than the baseline."""


class ImageMismatch(InputError):
    """A firmware image on disk does not hash to the catalog's sha256: nothing is sent."""


TRANSIENT_STATUS = frozenset({429, 502, 503, 504})


def bmc_message(body) -> str:
    """The human message a Redfish error body carries, or ''."""
    if not isinstance(body, dict):
        return ""
    err = body.get("error")
    if not isinstance(err, dict):
        return _messages_text(body.get("Messages"))
    # ExtendedInfo is the precise one when it has text; some BMCs send only its ids.
    text = _messages_text(err.get("@Message.ExtendedInfo"))
    return text or str(err.get("message") or err.get("code") or "")


def message_ids(body) -> tuple:
    """(MessageId, MessageArgs) of every message in a Redfish error body."""
    if not isinstance(body, dict):
        return ()
    err = body.get("error")
    found = err.get("@Message.ExtendedInfo") if isinstance(err, dict) else body.get("Messages")
    if isinstance(err, dict) and err.get("code") and not isinstance(found, list):
        found = [{"MessageId": err["code"]}]
    return tuple((str(m.get("MessageId", "")), _args(m.get("MessageArgs")))
                 for m in found or () if isinstance(m, dict))


def _args(args) -> tuple:
    return tuple(args) if isinstance(args, list) else ()


def _messages_text(messages) -> str:
    if not isinstance(messages, list):
        return ""
    texts = [str(m["Message"]) for m in messages if isinstance(m, dict) and m.get("Message")]
    return "; ".join(texts)


def error_for(status: int, body, bmc: str, what: str) -> RedfishError | None:
    """The exception an HTTP ``status`` stands for, or None when it is a success."""
    if status < 400:
        return None
    exc = _error_class(status)(_error_text(status, body, what), bmc)
    exc.status, exc.messages = status, message_ids(body)
    return exc


def _error_class(status: int) -> type:
    if status in (401, 403):
        return AuthFailed
    if status == 404:
        return ResourceMissing
    if status in TRANSIENT_STATUS:
        return Transient
    return BmcServerError if status >= 500 else BmcRefused


def _error_text(status: int, body, what: str) -> str:
    if status in (401, 403):
        return f"{what}: HTTP {status}: credentials refused"   # never the BMC's echo of them
    detail = bmc_message(body) or f"HTTP {status}"
    return f"{what}: {detail}" if detail.startswith("HTTP") else f"{what}: HTTP {status}: {detail}"


def passing(exc) -> bool:
    """A failure a later look may not see: a busy or erroring BMC, or no answer
    (except a TLS failure). What a long wait (a task, a reset) polls through."""
    if isinstance(exc, BmcUnreachable):
        return not exc.final
    return isinstance(exc, (Transient, BmcServerError))


def raise_for_response(status: int, body, bmc: str, what: str) -> None:
    """Raise what ``status`` stands for; return quietly on success."""
    exc = error_for(status, body, bmc, what)
    if exc is not None:
        raise exc
