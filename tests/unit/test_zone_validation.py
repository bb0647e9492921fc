"""One test per validation rule: a broken zone file names the exact line."""

from __future__ import annotations

import pytest

from bootstrap.errors import ZoneInvalid
from bootstrap.zone import parse_zone_text


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


def test_unknown_key_suggests(lab_text):
    text = broken(lab_text, "naming:", "nameing:")
    assert_reports(text, "nameing:", "unknown key 'nameing' (did you mean 'naming'?)")


def test_overlapping_networks(lab_text):
    text = broken(lab_text, "supernet: 10.16.0.0/16", "supernet: 10.15.128.0/17")
    assert_reports(text, "10.15.128.0/17", "overlaps networks.mgmt")


def test_pod_subnet_does_not_fit(lab_text):
    text = broken(lab_text, "{name: p01, index: 1}", "{name: p01, index: 256}")
    assert_reports(text, "index: 256", "needs subnet 256")


def test_units_overflow_subnet(lab_text):
    text = broken(lab_text, "{units: 3-4, role: hypervisor}", "{units: 3-250, role: hypervisor}")
    found = problems(text)
    assert any("unit 250 needs host 260" in p for p in found), found


def test_duplicate_pod_name_and_index(lab_text):
    text = lab_text + "  - {name: p01, index: 1}\n"
    last = len(text.splitlines())
    found = problems(text)
    assert f"z.yml:{last}: pods[1]: pod name 'p01' is already used at line {last - 1}" in found
    assert f"z.yml:{last}: pods[1]: pod index 1 is already used at line {last - 1}" in found


def test_missing_role(lab_text):
    text = broken(lab_text, "{units: 2,   role: storage}", "{units: 2,   role: storrage}")
    assert_reports(text, "storrage", "no role 'storrage'")


def test_missing_image(lab_text):
    text = broken(lab_text, "image: debian-12, groups: [storage]", "image: debian-13, groups: [storage]")
    assert_reports(text, "debian-13", "no image 'debian-13'")


def test_missing_firmware(lab_text):
    text = broken(lab_text, "firmware: [bios-2.4.1]", "firmware: [bios-9]")
    assert_reports(text, "bios-9", "no firmware 'bios-9'")


def test_unit_claimed_twice(lab_text):
    text = broken(lab_text, "{units: 2,   role: storage}", "{units: 1-2, role: storage}")
    assert_reports(text, "{units: 1-2", "unit 1 is already claimed")


def test_circuit_template_without_port(lab_text):
    text = broken(lab_text, 'circuit_id: "swp{port}"', 'circuit_id: "swp"')
    assert_reports(text, 'circuit_id: "swp"', "must contain {port}")


def test_clear_text_password(lab_text):
    text = broken(lab_text, "password_file: secrets/bmc.pass", "password: hunter2")
    found = problems(text)
    assert any("clear-text secret" in p for p in found), found
    assert all("hunter2" not in p for p in found)


def test_yaml_syntax_error_has_line(lab_text):
    text = broken(lab_text, "naming:", "naming: [")
    assert problems(text)[0].startswith("z.yml:")


def test_every_problem_reported_at_once(lab_text):
    text = broken(lab_text, "naming:", "nameing:")
    text = broken(text, "firmware: [bios-2.4.1]", "firmware: [bios-9]")
    text = broken(text, "{name: p01, index: 1}", "{name: p01, index: 0}")
    assert len(problems(text)) >= 3


def test_uplink_to_unknown_switch(lab_text):
    text = broken(lab_text, "switch: core-2,", "switch: core-9,")
    assert_reports(text, "core-9", "no switch 'core-9'")


def test_uplink_port_collides_with_unit(lab_text):
    text = broken(lab_text, "port: swp48", "port: swp3")
    assert_reports(text, "port: swp3", "port swp3 of tor-a already carries unit 3")


def test_bad_cidr(lab_text):
    text = broken(lab_text, "10.18.0.0/16", "10.18.0.1/16")
    assert_reports(text, "10.18.0.1/16", "networks.storage.supernet")


def test_not_a_mapping():
    assert problems("- just\n- a list\n") == ["z.yml:1: zone file must be a mapping"]


def test_naming_without_unit(lab_text):
    text = broken(lab_text, 'naming: "{pod}-u{unit:02d}"', 'naming: "{pod}"')
    assert_reports(text, "naming:", "must be a template with {unit}")


def test_firmware_digest_must_be_hex(lab_text):
    import re

    text = re.sub(r'sha256: "[0-9a-f]+"', 'sha256: "abc"', lab_text)
    assert_reports(text, 'sha256: "abc"', "64 hex digits")
