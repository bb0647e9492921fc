"""``zone node-token ZONE NODE``: the per-node token that opens its cloud-init data.

For an operator (or a test) fetching ``/cloud-init/<node>/…?token=…`` from
somewhere other than the node itself. The secret is the HTTP service's, read
from beside the state database (or ZONE_NODE_SECRET), so both agree.
"""

from __future__ import annotations

from ..errors import InputError
from ..http.core.identify import node_token
from ..http.core.settings import node_secret
from ._args import json_arg, load_plan, print_json, state_arg, state_path, zone_arg


def register(sub) -> None:
    p = sub.add_parser("node-token", help="the per-node token for a node's cloud-init data")
    zone_arg(p)
    p.add_argument("node", metavar="NODE", help="a node name of the plan")
    state_arg(p)
    json_arg(p)
    p.set_defaults(func=cmd_node_token)


def cmd_node_token(args) -> int:
    plan = load_plan(args)
    if args.node not in plan.nodes:
        raise InputError(f"{args.node}: no such node in zone {plan.zone.name}")
    token = node_token(node_secret({}, state_path(args)), args.node)
    if args.json:
        print_json({"node": args.node, "token": token})
    else:
        print(token)
    return 0
