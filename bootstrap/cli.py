"""The ``zone`` command line.

Each module in :mod:`bootstrap.commands` registers its own sub-commands through
``register(subparsers)``; this file only dispatches and maps errors to exit
codes: 0 success, 2 bad input, 1 the work failed.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from . import commands, logs
from .errors import BootstrapError, InputError
from .resources import version


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zone", description="Zone bootstrap appliance")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logs.setup(getattr(args, "log_format", None),
               level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"{exc}", file=sys.stderr)
        return 2
    except BootstrapError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug or an unforeseen failure: one line, the detail with -v
        logging.getLogger("bootstrap").debug("unexpected failure", exc_info=True)
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)",
              file=sys.stderr)
        return 1


def main_up(argv=None) -> int:
    """``zone-up …`` is ``zone up …``."""
    return main(["up", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
