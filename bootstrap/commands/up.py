"""``zone up``: the whole flow with live progress; ``--lab`` builds a virtual pod first."""

from __future__ import annotations

import os
import signal
import tempfile
import threading

from ..errors import InputError, WorkError
from ..lifecycle import PodState
from ..progress import Progress, pod_line, snapshot
from ..serve import ServeOptions, Services
from ..up import Steps, run_up
from ..up_steps import Hooks, announce_resumed, bmc_step, configure_step
from ._args import ansible_args, check_ansible_args, json_arg, load_plan, open_store, pod_arg, \
    state_arg, zone_arg


def register(sub) -> None:
    p = sub.add_parser("up", help="the whole flow, metal to ready, with live progress")
    zone_arg(p)
    pod_arg(p)
    state_arg(p)
    json_arg(p)
    p.add_argument("--lab", action="store_true", help="build a virtual pod on this machine first")
    p.add_argument("--timeout", type=float, default=None, metavar="T", help="give up after T s")
    p.add_argument("--no-serve", action="store_true", help="use services that already run")
    p.add_argument("--bind", default="0.0.0.0", metavar="ADDR", help="where services listen")
    p.add_argument("--max-parallel", type=int, default=20, metavar="N",
                   help="firmware updates in flight at once")
    p.add_argument("--switch-wait", type=float, default=0.0, metavar="S",
                   help="seconds to wait for switches to finish ZTP before the BMCs")
    p.add_argument("--install-wait", type=float, default=1800.0, metavar="S",
                   help="seconds to wait for the pod's min_ready share of installs")
    p.add_argument("--straggler-wait", type=float, default=120.0, metavar="S",
                   help="then seconds more for servers still booting")
    p.add_argument("--no-configure", action="store_true", help="stop at installed (no Ansible)")
    ansible_args(p)
    p.add_argument("--insecure", action="store_true", help="do not verify BMC TLS certificates")
    p.add_argument("--vm", action="append", default=[], metavar="UNIT[:uefi]",
                   help="with --lab: this unit is a real QEMU guest PXE-booting through iPXE "
                        "(BIOS, or UEFI through OVMF and TFTP); repeatable")
    p.set_defaults(func=cmd_up)


def _pods(plan, args) -> list[str]:
    return [args.pod] if args.pod else list(plan.pods)


def cmd_up(args) -> int:
    plan = load_plan(args)
    check_ansible_args(args)
    store = open_store(args, plan)
    pods = _pods(plan, args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.lab:
        return _up_lab(args, plan, store, pods, stop)
    services = None
    if not args.no_serve:
        services = Services(plan, store, ServeOptions(
            bind=args.bind, tftp_root=plan.zone.path(plan.zone.site.ipxe_dir)))
        services.start()
    try:
        return _drive(args, plan, store, pods, _steps(args, plan, store, stop, Hooks(),
                                                      args.inventory))
    finally:
        if services:
            services.stop()


def _steps(args, plan, store, stop, hooks: Hooks, inventories=()) -> Steps:
    return Steps(bmcs=bmc_step(plan, store, args, hooks), stop=stop,
                 configure=None if args.no_configure else
                 configure_step(plan, store, args, inventories),
                 switch_wait=args.switch_wait, install_wait=args.install_wait,
                 straggler_wait=args.straggler_wait)


def _drive(args, plan, store, pods, steps) -> int:
    progress = Progress(store, json_mode=args.json)
    try:
        results = run_up(plan, store, pods, steps, progress, timeout=args.timeout)
    except KeyboardInterrupt:
        steps.stop.set()
        raise
    finally:
        progress.close()
    if not args.json:
        for pod in snapshot(store)["pods"]:
            if pod["name"] in pods:
                print(pod_line(pod))
    failed = [pod for pod, state in results.items() if state != PodState.READY]
    if failed:
        raise WorkError(f"pods not ready: {', '.join(failed)} (see `zone status`)")
    return 0


def _lab_module(name: str):
    """A module of the lab package, which ships beside the product but is not part of it."""
    import importlib

    try:
        return importlib.import_module(f"zonelab.{name}")
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("zonelab"):
            raise
        raise InputError("--lab needs the zonelab package, which this installation lacks: "
                         "install zone-bootstrap from its source tree (pip install .)") from None


def _up_lab(args, plan, store, pods, stop) -> int:
    Lab = _lab_module("topology").Lab

    if len(pods) != 1:
        raise InputError("--lab builds one pod: give --pod P or a zone with one pod")
    workdir = tempfile.mkdtemp(prefix="zone-lab-")
    vms = _vm_units(args.vm)
    if vms:
        _install_payload(plan)
    lab = Lab(plan, pods[0], workdir, vm_units=vms)
    lab.build()
    try:
        lab.start_services(os.path.abspath(args.zone), store.path)
        lab.power_up()
        inventories = () if args.no_configure else (*lab.start_targets(), *args.inventory)
        lab.enter_controller()
        lab.start_bmcs()
        announce_resumed(store, pods, lab)
        print(f"lab {lab.prefix}: status page: sudo ip netns exec {lab.ctl} "
              f"curl {plan.zone.controller_url}/ ; logs in {workdir}", flush=True)
        args.switch_wait = args.switch_wait or 60.0  # the lab's switches do ZTP for real
        return _drive(args, plan, store, pods, _steps(args, plan, store, stop, lab, inventories))
    finally:
        lab.close()


def _vm_units(values) -> dict:
    out = {}
    for value in values:
        unit, _, firmware = value.partition(":")
        if not unit.isdigit() or firmware not in ("", "bios", "uefi"):
            raise InputError(f"--vm {value}: want UNIT or UNIT:uefi")
        out[int(unit)] = firmware or "bios"
    return out


def _install_payload(plan) -> None:
    """The lab VMs boot a kernel and initrd built here, where the zone's image names them."""
    import shutil

    kernel, initrd = _lab_module("vm").build_payload()
    for image in plan.zone.images.values():
        for src, rel in ((kernel, image.kernel), (initrd, image.initrd)):
            dest = plan.zone.path(rel)
            if not os.path.exists(dest):
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copy(src, dest)
