"""Redfish errors, and the one place that maps a BMC's HTTP answer to them.

Every error names the BMC it came from and carries the BMC's own message where
it sent one, so a failed node's reason reads like what the BMC said.
"""

from __future__ import annotations

from ..errors import InputError, WorkError


class RedfishError(WorkError):
    """Base of every Redfish failure; ``bmc`` is the node (or URL) that failed."""

    template = "{bmc}: {message}"

    def __init__(self, message: str = "", bmc: str = "?", **fields):
        super().__init__(message, bmc=bmc, **fields)
        self.bmc, self.message = bmc, message


class BmcUnreachable(RedfishError):
    """No answer: connection refused, timed out, TLS failure."""


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

    retry_after: float | None = None


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


def _messages_text(messages) -> str:
    if not isinstance(messages, list):
        return ""
    texts = [str(m["Message"]) for m in messages if isinstance(m, dict) and m.get("Message")]
    return "; ".join(texts)


def error_for(status: int, body, bmc: str, what: str) -> RedfishError | None:
    """The exception an HTTP ``status`` stands for, or None when it is a success."""
    if status < 400:
        return None
    detail = bmc_message(body) or f"HTTP {status}"
    message = f"{what}: {detail}" if detail.startswith("HTTP") else f"{what}: HTTP {status}: {detail}"
    if status in (401, 403):
        return AuthFailed(f"{what}: HTTP {status}: credentials refused", bmc)
    if status == 404:
        return ResourceMissing(message, bmc)
    if status in TRANSIENT_STATUS:
        return Transient(message, bmc)
    if status >= 500:
        return BmcServerError(message, bmc)
    return BmcRefused(message, bmc)


def raise_for_response(status: int, body, bmc: str, what: str) -> None:
    """Raise what ``status`` stands for; return quietly on success."""
    exc = error_for(status, body, bmc, what)
    if exc is not None:
        raise exc
