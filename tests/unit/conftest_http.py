"""Fixtures of the HTTP unit tests (flaskr style): a lab plan, a store, the app, a client.

Imported by the ``test_http_*`` modules; the top-level conftest stays the lead's.
"""

from __future__ import annotations

import os

import pytest

from bootstrap.http import create_app
from bootstrap.http.identify import node_token
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone, parse_zone_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "examples", "lab.yml")
SECRET = "unit-test-node-secret"
API_TOKEN = "unit-test-api-token"


@pytest.fixture(scope="session")
def http_plan():
    return compile_plan(load_zone(LAB))


@pytest.fixture
def http_store(http_plan, tmp_path):
    store = Store(str(tmp_path / "state" / "zone.db"))
    store.seed(http_plan)
    yield store
    store.close()


def make_app(plan, store, **config):
    settings = {"TESTING": True, "NODE_SECRET": SECRET, "API_TOKEN": API_TOKEN}
    settings.update(config)
    return create_app(plan, store, settings)


@pytest.fixture
def app(http_plan, http_store):
    return make_app(http_plan, http_store)


@pytest.fixture
def client(app):
    return app.test_client()


def from_address(address: str) -> dict:
    """Request keyword arguments that make the request come from ``address``."""
    return {"environ_base": {"REMOTE_ADDR": address}}


def token_for(name: str) -> str:
    return node_token(SECRET.encode(), name)


def variant_plan(old: str, new: str):
    """The lab plan with one text change to its zone file (another ZTP kind, a VLAN, …)."""
    with open(LAB, encoding="utf-8") as fh:
        text = fh.read()
    assert old in text
    return compile_plan(parse_zone_text(text.replace(old, new), LAB))


def kinds(store, node=None) -> list[str]:
    return [e["kind"] for e in store.events(node=node)]
