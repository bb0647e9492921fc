"""Issue 10: what a stranger can do to the HTTP service (rows 2, 13, 14, 15)."""

from __future__ import annotations

import logging
import sys

import pytest

from bootstrap.cli import build_parser
from bootstrap.http.front import resolve_front
from bootstrap.serve import ServeOptions

pytest_plugins = ["conftest_http"]  # the fixtures: app, client, http_plan, http_store


def test_zone_serve_puts_the_nginx_front_on_by_default_when_nginx_is_there(caplog):
    args = build_parser().parse_args(["serve", "zone.yml"])
    assert args.http_front == ServeOptions().http_front == "auto"
    with caplog.at_level(logging.INFO, logger="bootstrap.http.front"):
        assert resolve_front("auto", nginx=sys.executable) == "nginx"
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "HTTP front: nginx" in caplog.text


def test_without_nginx_auto_falls_back_to_gunicorn_with_a_warning(caplog, tmp_path):
    with caplog.at_level(logging.INFO, logger="bootstrap.http.front"):
        assert resolve_front("auto", nginx=str(tmp_path / "no-nginx")) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "slow clients" in caplog.text
    assert resolve_front("gunicorn") is None and resolve_front(None) is None
    assert resolve_front("nginx") == "nginx"
    with pytest.raises(ValueError, match="unknown HTTP front"):
        resolve_front("apache")
