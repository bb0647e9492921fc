"""A lean WSGI path in front of Flask for the hottest request, plain ``GET /boot/ipxe``.

Every server of a zone asks for its iPXE script at about the same moment, and
Flask's request, routing and response objects cost several times what the answer
itself does (a dictionary lookup, one indexed read, a queued event, a cached
script). A plain ``GET /boot/ipxe`` — no query string: the node is known by its
source address — is answered here by the same
:func:`~bootstrap.http.views.boot.script` as the Flask view, counted in the same
metric, and an error is answered by the same mapping
(:func:`~bootstrap.http.core.problems.answer`). Everything else (a query string,
HEAD, any other path) goes to Flask untouched.
"""

from __future__ import annotations

from flask import Flask

from ..core.problems import answer
from ..views.boot import script
from ..views.metrics import count

PATH = "/boot/ipxe"
CONTENT_TYPE = ("Content-Type", "text/plain; charset=utf-8")  # as Flask's text answers


class LeanBoot:
    """WSGI middleware: ``app.wsgi_app = LeanBoot(app)``."""

    def __init__(self, app: Flask):
        self.app, self.next = app, app.wsgi_app
        self.svc = app.extensions["zone"]

    def __call__(self, environ, start_response):
        if (environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "GET"
                or environ.get("QUERY_STRING")):
            return self.next(environ, start_response)
        try:
            body = script(self.svc, environ.get("REMOTE_ADDR"), {}).encode()
        except Exception as exc:  # noqa: BLE001 - answered like Flask would, never a crash
            return self._problem(environ, start_response, exc)
        count(PATH, 200)
        start_response("200 OK", [CONTENT_TYPE, ("Content-Length", str(len(body)))])
        return [body]

    def _problem(self, environ, start_response, exc: Exception):
        with self.app.request_context(environ):
            response = answer(exc)
        count(PATH, response.status_code)
        return response(environ, start_response)
