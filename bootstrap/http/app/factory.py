"""The app factory: one Flask app per plan and store, the views registered on it, the
lean path in front of Flask, and ProxyFix outermost when told to trust a proxy."""

from __future__ import annotations

import shlex

from flask import Flask
from jinja2 import StrictUndefined
from werkzeug.middleware.proxy_fix import ProxyFix

from ..core import problems
from ..core.service import HttpService
from ..core.settings import DEFAULTS, site_settings
from ..views import BLUEPRINTS, metrics
from .lean import LeanBoot

MAX_BODY = 1024 * 1024
NAME = "bootstrap.http"  # Flask's import name: its logger's name, as before the app had layers


def create_app(plan, store, config: dict | None = None) -> Flask:
    """The WSGI app answering for ``plan``, recording into ``store``; ``config`` overrides
    :data:`~bootstrap.http.core.settings.DEFAULTS`, the zone's ``site:`` settings (and any
    Flask setting, e.g. ``TESTING``)."""
    settings = {**DEFAULTS, **site_settings(plan.zone), **(config or {})}
    app = Flask(NAME, template_folder=settings["TEMPLATES_DIR"], static_folder=None)
    # werkzeug answers "/boot//ipxe" with a redirect to an absolute URL built from the
    # request's Host header: a stranger's host in our Location. A doubled slash is a 404.
    app.url_map.merge_slashes = False
    app.jinja_options = dict(app.jinja_options, undefined=StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True, keep_trailing_newline=True)
    app.config.update(settings, MAX_CONTENT_LENGTH=MAX_BODY)
    app.add_template_filter(shlex.quote, "shquote")
    app.extensions["zone"] = HttpService(plan, store, app.config, app.jinja_env)
    if settings["LEAN_BOOT"]:
        app.wsgi_app = LeanBoot(app)
    if settings["TRUST_X_FORWARDED_FOR"]:  # outermost: the lean path sees the client too
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)
    problems.init_app(app)
    metrics.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
