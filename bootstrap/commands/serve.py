"""``zone serve``: DHCP, TFTP, DNS and HTTP for a zone (or one pod) until stopped."""

from __future__ import annotations

import signal
import sqlite3
import sys

from ..errors import WorkError
from ..logs import FORMATS
from ..serve import ServeOptions, Services, pod_plan
from ..zone import load_zone
from ._args import open_store, pod_arg, state_arg, zone_arg


def register(sub) -> None:
    p = sub.add_parser("serve", help="the pod services: DHCP, TFTP, DNS, HTTP")
    zone_arg(p)
    pod_arg(p)
    state_arg(p)
    p.add_argument("--bind", default="0.0.0.0", metavar="ADDR", help="listen address")
    p.add_argument("--server-id", metavar="ADDR", help="our address as clients see it")
    p.add_argument("--http-port", type=int, default=8080, metavar="N")
    p.add_argument("--dhcp-port", type=int, default=67, metavar="N")
    p.add_argument("--tftp-port", type=int, default=69, metavar="N")
    p.add_argument("--dns-port", type=int, default=53, metavar="N")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="DHCP worker processes")
    p.add_argument("--tftp-root", metavar="DIR",
                   help="TFTP's folder (default: the zone's site.ipxe_dir, /usr/lib/ipxe)")
    p.add_argument("--dns-forward", action="store_true",
                   help="forward queries for other zones to the zone's dns.upstreams")
    p.add_argument("--http-front", choices=("auto", "nginx", "gunicorn"), default="auto",
                   help="nginx answers /boot/ipxe from pre-rendered per-node files and holds "
                        "slow clients (needs /usr/sbin/nginx), gunicorn the rest; "
                        "auto (default): nginx when installed")
    p.add_argument("--log-format", choices=FORMATS, metavar="|".join(FORMATS),
                   help="text (default) or json: one JSON object per line (ts, level, logger, "
                        "msg and fields), for every service, the HTTP access log included")
    for name in ("dhcp", "tftp", "dns", "http"):
        p.add_argument(f"--no-{name}", action="store_true", help=f"do not run {name.upper()}")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    plan = pod_plan(load_zone(args.zone), args.pod)
    store = open_store(args)
    try:
        store.seed(plan)
    except sqlite3.Error as exc:  # a full or read-only state disk: serve from the zone
        print(f"warning: state {store.path} not writable ({exc}): serving without it",
              file=sys.stderr, flush=True)
    options = ServeOptions(bind=args.bind, server_id=args.server_id, http_port=args.http_port,
                           dhcp_port=args.dhcp_port, tftp_port=args.tftp_port,
                           dns_port=args.dns_port, dhcp=not args.no_dhcp, tftp=not args.no_tftp,
                           dns=not args.no_dns, http=not args.no_http, workers=args.workers,
                           tftp_root=args.tftp_root or plan.zone.path(plan.zone.site.ipxe_dir),
                           dns_forward=args.dns_forward,
                           http_front=args.http_front)
    services = Services(plan, store, options)
    signal.signal(signal.SIGTERM, lambda *_: services.stopped.set())
    services.start()
    print(f"serving zone {plan.zone.name} ({plan.zone.digest[:12]}) on {services.address}: "
          + ", ".join(name for name, _s, _t in services.running), flush=True)
    try:
        services.wait()
    except KeyboardInterrupt:
        pass
    finally:
        services.stop()
    if services.failure:  # a service ended on its own: exit 1 for the supervisor
        raise WorkError(services.failure)
    return 0
