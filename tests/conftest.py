"""Fixtures shared by every test: the lab zone and its plan."""

from __future__ import annotations

import os

import pytest

from bootstrap.plan import compile_plan
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
