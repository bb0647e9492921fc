"""Fixtures of the HTTP unit tests (flaskr style): a lab plan, a store, the app, a client.

Loaded by the ``test_http_*`` modules with ``pytest_plugins``; the top-level
conftest stays the lead's. Helpers are in ``http_helpers``.
"""

from __future__ import annotations

import pytest

from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone
from http_helpers import LAB, make_app


@pytest.fixture(scope="session")
def http_plan():
    return compile_plan(load_zone(LAB))


@pytest.fixture
def http_store(http_plan, tmp_path):
    store = Store(str(tmp_path / "state" / "zone.db"))
    store.seed(http_plan)
    yield store
    store.close()


@pytest.fixture
def app(http_plan, http_store):
    return make_app(http_plan, http_store)


@pytest.fixture
def client(app):
    return app.test_client()
