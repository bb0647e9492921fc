#!/usr/bin/env python3
"""Bench: our ``/boot/ipxe`` (gunicorn) vs nginx serving the same scripts as static files.

10,000 distinct servers of examples/zone-10k.yml; wrk cycles through all of them.
Prints requests/s of both and the ratio (goal ≥ 0.5× nginx). Bench only: not a test.

    python3 bench/http/run.py [--seconds 10] [--connections 64] [--workers 2] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from bootstrap.http import create_app  # noqa: E402
from bootstrap.plan import compile_plan  # noqa: E402
from bootstrap.state import Store  # noqa: E402
from bootstrap.zone import load_zone  # noqa: E402

ZONE = os.path.join(ROOT, "examples", "zone-10k.yml")
LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk-nodes.lua")
NGINX_CONF = """
worker_processes {workers};
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
daemon off;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  default_type text/plain;
  client_body_temp_path {folder}/tmp; proxy_temp_path {folder}/tmp;
  fastcgi_temp_path {folder}/tmp; uwsgi_temp_path {folder}/tmp; scgi_temp_path {folder}/tmp;
  server {{ listen 127.0.0.1:{port}; root {folder}/www; }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render_static(plan, folder: str, count: int) -> list[str]:
    """Every server's script as a file, rendered by the app itself (same bytes as served)."""
    os.makedirs(os.path.join(folder, "www", "boot"))
    store = Store(os.path.join(folder, "render.db"))
    store.seed(plan)
    client = create_app(plan, store, {"NODE_SECRET": "bench"}).test_client()
    addresses = []
    for node in list(plan.servers())[:count]:
        body = client.get("/boot/ipxe", environ_base={"REMOTE_ADDR": node.address}).data
        with open(os.path.join(folder, "www", "boot", f"{node.address}.ipxe"), "wb") as fh:
            fh.write(body)
        addresses.append(node.address)
    store.close()
    with open(os.path.join(folder, "nodes.txt"), "w") as fh:
        fh.write("\n".join(addresses) + "\n")
    return addresses


def wait_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def wrk(port: int, mode: str, folder: str, args) -> tuple[float, int]:
    env = dict(os.environ, NODES_FILE=os.path.join(folder, "nodes.txt"), MODE=mode)
    out = subprocess.run(["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{args.seconds}s",
                          "-s", LUA, f"http://127.0.0.1:{port}/"], env=env, capture_output=True,
                         text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = int(re.search(r"non2xx=(\d+)", out).group(1))
    return rate, bad


def start(cmd: list[str], port: int, log: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_port(port)
    return proc


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            sys.exit(f"{tool} is needed: apt-get install -y wrk nginx-light")
    folder = tempfile.mkdtemp(prefix="bench-http-")
    os.chmod(folder, 0o755)  # nginx workers run as nobody
    os.makedirs(os.path.join(folder, "tmp"))
    plan = compile_plan(load_zone(ZONE))
    addresses = render_static(plan, folder, args.nodes)
    print(f"{len(addresses)} distinct nodes, {args.connections} connections, {args.seconds} s each")

    ours_port, nginx_port = free_port(), free_port()
    ours = start([sys.executable, "-m", "bootstrap.http.wsgi", ZONE, "--state",
                  os.path.join(folder, "state", "zone.db"), "--port", str(ours_port),
                  "--workers", str(args.workers), "--threads", str(args.threads),
                  "--trust-x-forwarded-for"], ours_port, os.path.join(folder, "ours.log"))
    try:
        ours_rate, ours_bad = wrk(ours_port, "ours", folder, args)
    finally:
        stop(ours)
    with open(os.path.join(folder, "nginx.conf"), "w") as fh:
        fh.write(NGINX_CONF.format(workers=args.workers, folder=folder, port=nginx_port))
    nginx = start(["/usr/sbin/nginx", "-c", os.path.join(folder, "nginx.conf"), "-p", folder],
                  nginx_port, os.path.join(folder, "nginx.log"))
    try:
        nginx_rate, nginx_bad = wrk(nginx_port, "static", folder, args)
    finally:
        stop(nginx)
    print(f"ours  (gunicorn {args.workers}x{args.threads} gthread, /boot/ipxe): "
          f"{ours_rate:10.0f} req/s  non-2xx {ours_bad}")
    print(f"nginx (static files, {args.workers} workers):            "
          f"{nginx_rate:10.0f} req/s  non-2xx {nginx_bad}")
    print(f"ratio ours/nginx: {ours_rate / nginx_rate:.3f}  (goal >= 0.5)")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
