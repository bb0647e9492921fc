"""Helpers of the HTTP unit tests: building the app, requests from a node's address, tokens."""

from __future__ import annotations

import os

from bootstrap.http import create_app
from bootstrap.http.core.identify import node_token
from bootstrap.plan import compile_plan
from bootstrap.zone import parse_zone_text

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB = os.path.join(ROOT, "examples", "lab.yml")
SECRET = "unit-test-node-secret"
API_TOKEN = "unit-test-api-token"


def make_app(plan, store, **config):
    settings = {"TESTING": True, "NODE_SECRET": SECRET, "API_TOKEN": API_TOKEN}
    settings.update(config)
    return create_app(plan, store, settings)


def from_address(address: str) -> dict:
    """Request keyword arguments that make the request come from ``address``."""
    return {"environ_base": {"REMOTE_ADDR": address}}


def token_for(name: str) -> str:
    return node_token(SECRET.encode(), name)


def variant_plan(old: str, new: str):
    """The lab plan with one text change to its zone file (another ZTP kind, a VLAN, …)."""
    with open(LAB, encoding="utf-8") as fh:
        text = fh.read()
    if old not in text:
        raise ValueError(f"{old!r} is not in {LAB}")
    return compile_plan(parse_zone_text(text.replace(old, new), LAB))


def kinds(store, node=None) -> list[str]:
    return [e["kind"] for e in store.events(node=node)]
