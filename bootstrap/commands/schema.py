"""``zone schema``: the zone file's JSON Schema (draft 2020-12), for editors.

Point an editor's YAML support at it (``zone schema > zone.schema.json``); ``zone
validate`` still checks what a schema cannot (references, address space, files).
"""

from __future__ import annotations

from ..zone.jsonschema import zone_schema
from ._args import print_json


def register(sub) -> None:
    p = sub.add_parser("schema", help="print the zone file's JSON Schema, for editors")
    p.set_defaults(func=cmd_schema)


def cmd_schema(args) -> int:
    print_json(zone_schema())
    return 0
