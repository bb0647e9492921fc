"""Fixtures shared by every test: the lab zone and its plan; for the HTTP unit tests (flaskr
style) a store, the app and a client (helpers in ``tests/unit/http_helpers.py``)."""

from __future__ import annotations

import os

import pytest

from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(ROOT, "examples", "lab.yml")
ZONE_10K = os.path.join(ROOT, "examples", "zone-10k.yml")


@pytest.fixture(scope="session")
def lab_zone():
    return load_zone(LAB)


@pytest.fixture(scope="session")
def lab_plan(lab_zone):
    return compile_plan(lab_zone)


@pytest.fixture(scope="session")
def lab_text() -> str:
    with open(LAB, encoding="utf-8") as fh:
        return fh.read()


@pytest.fixture(scope="session")
def http_plan(lab_plan):
    return lab_plan


@pytest.fixture
def http_store(http_plan, tmp_path):
    store = Store(str(tmp_path / "state" / "zone.db"))
    store.seed(http_plan)
    yield store
    store.close()


@pytest.fixture
def app(http_plan, http_store):
    from http_helpers import make_app  # tests/unit, on the path once its modules load
    return make_app(http_plan, http_store)


@pytest.fixture
def client(app):
    return app.test_client()
