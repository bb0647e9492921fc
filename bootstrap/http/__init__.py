"""The HTTP service: boot scripts, ZTP, cloud-init, files, API, metrics, status page.

In layers, each importing only those below it (README.md here):
:mod:`~bootstrap.http.serving` (gunicorn, the nginx front) → :mod:`~bootstrap.http.app`
(the factory, the lean path) → :mod:`~bootstrap.http.views` (the blueprints) →
:mod:`~bootstrap.http.core` (service, settings, problems, identification, access).
This module only names what callers use.
"""

from __future__ import annotations

from .app.factory import MAX_BODY, create_app
from .app.lean import LeanBoot
from .core.identify import node_token
from .core.service import HttpService
from .core.settings import DEFAULTS
from .views import BLUEPRINTS

__all__ = ["BLUEPRINTS", "DEFAULTS", "MAX_BODY", "HttpService", "LeanBoot", "create_app",
           "node_token"]
