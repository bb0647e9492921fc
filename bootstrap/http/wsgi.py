"""The documented entry points, where operators call them: ``python3 -m
bootstrap.http.wsgi ZONE --state PATH`` and ``gunicorn 'bootstrap.http.wsgi:app_from_env()'``
(the code: :mod:`bootstrap.http.serving.wsgi`, whose public names are also here)."""

from __future__ import annotations

import sys

from .serving.wsgi import HttpServer, ThreadedServer, app_from_env, main, serve_http, serving

__all__ = ["HttpServer", "ThreadedServer", "app_from_env", "main", "serve_http", "serving"]

if __name__ == "__main__":
    sys.exit(main())
