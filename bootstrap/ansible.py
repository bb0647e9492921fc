"""The Ansible handoff: one ansible-runner run of ``playbooks/site.yml`` per pod.

Each run is limited to its pod (group ``pod_<pod>``); pods run in parallel up to
a bound. Every runner event about a host becomes a node event in the state
store (task started, ok / changed / failed / unreachable), and the play recap
per host gives its outcome (``configured`` or ``failed``, with the reason).

This module records task events only: it returns the outcomes, and
:func:`bootstrap.up.configure_pod` moves the nodes and decides the pod (the verdict
of :mod:`bootstrap.lifecycle`). The mapping from runner events to node events and
outcomes is pure (:func:`node_event`, :func:`recap`); :func:`configure_pod` is the
thin adapter around ``ansible_runner.run``.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
from dataclasses import dataclass, field
from typing import Callable, Iterable

import ansible_runner

from .lifecycle import NodeState
from .plan import Plan
from .render import inventory
from .render.inventory import group_name
from .resources import playbooks_dir
from .state import EventWriter, Store

log = logging.getLogger(__name__)

PLAYBOOKS = playbooks_dir()  # playbooks/, in the checkout or the wheel
SOURCE = "ansible"
EVENT_KIND = "ansible"
CONFIGURED, FAILED = NodeState.CONFIGURED, NodeState.FAILED
MAX_MESSAGE = 500
MAX_FORKS = 50

# Runner event -> the status a node event reports for its host.
TASK_STATUS = {
    "runner_on_start": "started",
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}

# What ansible-playbook needs to run unattended and fast.
RUNNER_ENV = {
    "ANSIBLE_PIPELINING": "True",
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    "ANSIBLE_NOCOLOR": "True",
}


@dataclass(frozen=True)
class HostOutcome:
    name: str
    state: str                    # configured | failed
    reason: str | None = None
    stats: dict = field(default_factory=dict)


@dataclass
class PodResult:
    pod: str
    ok: bool | None               # the pod's verdict (bootstrap.up fills it in)
    reason: str | None
    hosts: dict                   # name -> HostOutcome
    status: str = ""              # the runner's status: successful, failed, timeout, …
    rc: int | None = None

    def as_dict(self) -> dict:
        return {"pod": self.pod, "ok": self.ok, "reason": self.reason, "status": self.status,
                "rc": self.rc,
                "hosts": {n: {"state": h.state, "reason": h.reason, "stats": h.stats}
                          for n, h in self.hosts.items()}}


# --- pure core ----------------------------------------------------------------

def failure_message(res: dict) -> str:
    """One line saying why a task failed or a host was unreachable."""
    for key in ("msg", "reason", "stderr", "module_stderr", "stdout"):
        value = res.get(key)
        if value:
            text = " ".join(str(value).split())
            return text[:MAX_MESSAGE]
    return "no message"


def node_event(event: dict) -> tuple[str, dict] | None:
    """The node event a runner event stands for: ``(host, detail)``, or None."""
    status = TASK_STATUS.get(event.get("event", ""))
    data = event.get("event_data") or {}
    host = data.get("host")
    if status is None or not host:
        return None
    res = data.get("res") or {}
    if status == "ok" and res.get("changed"):
        status = "changed"
    elif status == "failed" and data.get("ignore_errors"):
        status = "ignored"
    detail = {"status": status, "task": data.get("task"), "role": data.get("role") or None}
    if status in ("failed", "unreachable"):
        detail["msg"] = failure_message(res)
    return host, detail


STAT_KEYS = ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")


def host_stats(stats: dict, host: str) -> dict:
    return {key: (stats.get(key) or {}).get(host, 0) for key in STAT_KEYS}


def host_outcome(host: str, stats: dict | None, errors: dict, run_error: str | None) -> HostOutcome:
    """Configured or failed, from the recap line of one host."""
    if stats is None:
        return HostOutcome(host, FAILED, run_error or "the run ended without a play recap")
    counts = host_stats(stats, host)
    if counts["dark"]:
        return HostOutcome(host, FAILED, f"unreachable: {errors.get(host, 'no message')}", counts)
    if counts["failures"]:
        return HostOutcome(host, FAILED, f"task failed: {errors.get(host, 'no message')}", counts)
    if host not in (stats.get("processed") or {}):
        return HostOutcome(host, FAILED, "not in the play recap (no play matched the host)", counts)
    return HostOutcome(host, CONFIGURED, None, counts)


def recap(hosts: Iterable[str], stats: dict | None, errors: dict,
          run_error: str | None = None) -> dict:
    """Every host of the pod -> :class:`HostOutcome`."""
    return {h: host_outcome(h, stats, errors, run_error) for h in hosts}


# --- the runner adapter -----------------------------------------------------------

class PodRun:
    """Collects one pod's runner events: node events out, errors and the recap kept."""

    def __init__(self, pod: str, events: EventWriter, on_event: Callable | None = None):
        self.pod, self.events, self.on_event = pod, events, on_event
        self.errors: dict = {}
        self.stats: dict | None = None

    def handle(self, event: dict) -> bool:
        """ansible-runner's ``event_handler``: never raises; True keeps the event."""
        try:
            self._handle(event)
        except Exception:  # a display or store hiccup must not kill the run
            log.exception("pod %s: could not handle runner event %s", self.pod, event.get("event"))
        return True

    def _handle(self, event: dict) -> None:
        if event.get("event") == "playbook_on_stats":
            self.stats = event.get("event_data") or {}
            return
        mapped = node_event(event)
        if mapped is None:
            return
        host, detail = mapped
        if "msg" in detail:
            self.errors[host] = detail["msg"]
        self.events.put(EVENT_KIND, host, SOURCE, pod=self.pod, **detail)
        if self.on_event is not None:
            self.on_event(self.pod, host, detail)


def run_error(result) -> str | None:
    """Why a run that produced no recap failed: the last lines ansible printed."""
    if result.status == "successful":
        return None
    try:
        lines = [line for line in result.stdout.read().splitlines() if line.strip()]
    except (OSError, AttributeError):
        lines = []
    tail = " ".join(" ".join(lines[-3:]).split())[:MAX_MESSAGE]
    return f"ansible-runner {result.status} (rc {result.rc}): {tail or 'no output'}"


@dataclass
class Options:
    """How to run: where, against what inventory, with which bounds."""

    work_dir: str                              # private data dirs (artifacts) per pod go here
    inventories: tuple = ()                    # inventory sources: the rendered one first
    playbooks: str = str(PLAYBOOKS)
    playbook: str = "site.yml"
    extravars: dict = field(default_factory=dict)
    max_parallel: int = 4
    timeout: int | None = None                 # seconds per pod run
    on_event: Callable | None = None           # (pod, host, detail) for a live display


def prepare(plan: Plan, state_dir: str, inventories: Iterable[str] = (),
            playbooks: str | None = None, **settings) -> Options:
    """Options for runs beside a state database: the inventory rendered afresh into
    ``<state_dir>/inventory`` (first), then ``inventories`` (connection vars, …);
    artifacts under ``<state_dir>/ansible/<pod>``; ``playbooks`` (else the shipped
    project) is the playbook project."""
    rendered = os.path.join(state_dir, "inventory")
    inventory.write(plan, rendered)
    if playbooks:
        settings["playbooks"] = os.path.abspath(playbooks)
    return Options(work_dir=os.path.join(state_dir, "ansible"),
                   inventories=(rendered, *map(os.path.abspath, inventories)), **settings)


def tied_command(playbook: str) -> dict:
    """ansible-runner arguments that start ansible-playbook with a parent-death signal.

    ansible-runner starts ansible-playbook ignoring SIGHUP, so a ``zone up`` killed with
    SIGKILL would leave it configuring the pod beside the resumed run's own playbooks.
    With ``setpriv --pdeathsig TERM`` it gets SIGTERM when our thread that started it
    dies, and ansible passes SIGTERM on to its workers and their ssh. Without setpriv,
    plain ansible-playbook (and that risk)."""
    if shutil.which("setpriv") is None:
        return {"playbook": playbook}
    return {"binary": "setpriv", "cmdline": shlex.join(
        ["--pdeathsig", "TERM", "--", "ansible-playbook", playbook])}


def _run_pod(pod: str, hosts: list, limit: str, opts: Options, handler) -> object:
    private = os.path.join(opts.work_dir, pod)
    os.makedirs(private, exist_ok=True)
    return ansible_runner.run(
        private_data_dir=private, project_dir=opts.playbooks, **tied_command(opts.playbook),
        inventory=list(opts.inventories), limit=limit,
        extravars=dict(opts.extravars), envvars=dict(RUNNER_ENV),
        forks=max(1, min(MAX_FORKS, len(hosts))), event_handler=handler,
        quiet=True, rotate_artifacts=3, timeout=opts.timeout)


def configure_pod(plan: Plan, pod: str, store: Store, opts: Options,
                  only: Iterable[str] | None = None,
                  on_start: Callable[[int], None] | None = None) -> PodResult:
    """Run the playbook on one pod: its task events recorded, each host's outcome
    returned (no state is written); never raises for a bad run.

    ``only`` limits the run to those servers of the pod (e.g. the installed ones).
    ``on_start(hosts)`` is called just before a run starts (not when nothing runs).
    """
    hosts = [n.name for n in plan.servers(pod)]
    limit = group_name("pod_", pod)
    if only is not None:
        wanted = set(only)
        hosts = [h for h in hosts if h in wanted]
        limit = ",".join(hosts)
    if not hosts:                   # nothing to hand over: never run on an empty limit
        return PodResult(pod, True, None, {}, "skipped")
    if on_start is not None:
        on_start(len(hosts))
    events = EventWriter(store)     # one per pod: closing it flushes the pod's task events
    run = PodRun(pod, events, opts.on_event)
    try:
        result = _run_pod(pod, hosts, limit, opts, run.handle)
        status, rc, error = result.status, result.rc, run_error(result)
    except Exception as exc:  # the runner itself broke (bad private dir, …): the pod fails
        log.exception("pod %s: ansible-runner failed", pod)
        status, rc, error = "error", None, f"ansible-runner could not run: {exc}"
    finally:
        events.close()
    return PodResult(pod, None, None, recap(hosts, run.stats, run.errors, error), status, rc)

