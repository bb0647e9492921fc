"""``zone prune``: delete old events so the state database does not grow without bound."""

from __future__ import annotations

import argparse
import time

from ._args import open_store, state_arg, zone_arg

DAY = 86400.0


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def register(sub) -> None:
    p = sub.add_parser("prune", help="delete old events (each node keeps its latest)")
    zone_arg(p)
    state_arg(p)
    p.add_argument("--older-than", type=_count, default=30, metavar="DAYS",
                   help="delete events older than this many days (default 30)")
    p.add_argument("--keep", type=_count, default=10, metavar="N",
                   help="but keep each node's N newest events whatever their age (default 10)")
    p.set_defaults(func=cmd_prune)


def cmd_prune(args) -> int:
    store = open_store(args)
    deleted = store.prune_events(time.time() - args.older_than * DAY,
                                 keep_last_per_node=args.keep)
    print(f"{deleted} events older than {args.older_than} days deleted "
          f"(each node keeps its {args.keep} newest) from {store.path}")
    return 0
