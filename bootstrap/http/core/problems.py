"""The one place that maps errors to HTTP status codes.

Blueprints raise :class:`Problem` subclasses (or let a :class:`BootstrapError`
escape); the handlers here answer JSON under ``/api/`` and plain text elsewhere,
since iPXE, ONIE and cloud-init read text.
"""

from __future__ import annotations

import logging
import sqlite3

from flask import Flask, jsonify, make_response, request
from werkzeug.exceptions import HTTPException

from ...errors import BootstrapError, InputError, WorkError
from ...throttle import Throttle

log = logging.getLogger("bootstrap.http")
LOGS = Throttle(rate=0.1, burst=5)  # a client that found a failing path cannot fill the log


class Problem(Exception):
    """An answer other than success; ``status`` is its HTTP code."""

    status = 500

    def __init__(self, message: str, headers: dict | None = None):
        super().__init__(message)
        self.message, self.headers = message, headers or {}


class BadRequest(Problem):
    status = 400


class Unauthorized(Problem):
    status = 401


class Forbidden(Problem):
    status = 403


class NotFound(Problem):
    status = 404


class Conflict(Problem):
    status = 409


class Unavailable(Problem):
    status = 503


def status_of(exc: Exception) -> int:
    """HTTP status for any exception: the single mapping every handler uses."""
    if isinstance(exc, Problem):
        return exc.status
    if isinstance(exc, HTTPException):
        return exc.code or 500
    if isinstance(exc, InputError):
        return 400
    if isinstance(exc, WorkError):
        return 502
    return 500


def _message(exc: Exception, status: int) -> str:
    if isinstance(exc, (Problem, BootstrapError)):
        return str(exc)
    if isinstance(exc, HTTPException):
        return exc.description or exc.name
    return "internal error"


def answer(exc: Exception):
    if isinstance(exc, sqlite3.OperationalError):  # state disk full or read-only: try later
        exc = Unavailable(f"the state store cannot be written now ({exc}); try again later",
                          {"Retry-After": "30"})
    status = status_of(exc)
    if (status >= 500 and not isinstance(exc, HTTPException)
            and LOGS.allow("http-error", str(request.remote_addr))):
        log.error("http %s %s: %s", request.method, request.path, exc, exc_info=exc)
    message = _message(exc, status)
    if request.path.startswith("/api/"):
        resp = jsonify(error=message, status=status)
    else:
        resp = make_response(message + "\n")
        resp.mimetype = "text/plain"
    resp.status_code = status
    resp.headers.update(getattr(exc, "headers", None) or {})
    return resp


def init_app(app: Flask) -> None:
    app.register_error_handler(Exception, answer)
