"""What the flows make of vendor quirks, as pure functions: installed vs previous images,
Targets negotiation, ImageURI forms, MAC lists, error message ids, the library's log lines."""

import logging

import pytest

from bootstrap.redfish import client as rc  # noqa: F401  (installs the library log filter)
from bootstrap.redfish import systems
from bootstrap.redfish.errors import BmcRefused, error_for, message_ids
from bootstrap.redfish.update_service import (Item, Offer, _negotiate, choose, shown,
                                              simple_update_body, target_choices)

INV = "/redfish/v1/UpdateService/FirmwareInventory"


def item(iid, name, version, state="Enabled", updateable=True, related=()):
    return Item(f"{INV}/{iid}", iid, name, version, related, state, updateable)


def test_dell_installed_wins_over_previous_whatever_the_order():
    installed = item("Installed-159-2.10.2", "BIOS", "2.10.2")
    previous = item("Previous-159-2.9.4", "BIOS", "2.9.4", updateable=False)
    for items in ([installed, previous], [previous, installed]):
        assert choose(items)["bios"] is installed
        assert shown(items) == {"BIOS": "2.10.2"}
        assert choose(items)["previous-159-2.9.4"] is previous   # still reachable by its Id


def test_standby_state_and_shared_names_are_shown_by_id():
    active = item("a1b2", "Software Inventory", "2.14", related=("/redfish/v1/Managers/bmc",))
    spare = item("e5f6", "Software Inventory", "2.13", state="StandbySpare", updateable=False)
    host = item("bios_active", "Software Inventory", "1.0.7")
    assert shown([active, spare, host]) == {"a1b2": "2.14", "bios_active": "1.0.7"}
    assert choose([spare, active])["software inventory"] is active
    assert active.belongs_to({"/redfish/v1/Managers/bmc"}) and not active.belongs_to({"/x"})


def test_targets_follow_action_info_else_item_owner_none():
    listed = Offer(simple_update="/u", targets=(f"{INV}/BIOS/",))
    assert target_choices(listed, f"{INV}/BIOS", "/redfish/v1/Systems/1") == [[f"{INV}/BIOS"]]
    assert target_choices(listed, f"{INV}/BMC", None) == [[]]   # never a target not named
    assert target_choices(Offer(simple_update="/u"), f"{INV}/BIOS", "/redfish/v1/Systems/1") == [
        [f"{INV}/BIOS"], ["/redfish/v1/Systems/1"], []]


def refusal(message_id, *args):
    body = {"error": {"code": "Base.1.0.GeneralError", "@Message.ExtendedInfo": [
        {"MessageId": f"Base.1.8.{message_id}", "MessageArgs": list(args)}]}}
    return error_for(400, body, "bmc", "SimpleUpdate")


def test_negotiation_moves_on_what_the_bmc_names():
    choices, form = [["item"], ["system"], []], {"schemeless": False, "protocol": True}
    assert _negotiate(refusal("ActionParameterValueNotInList", "item", "Targets"), choices, form)
    assert choices == [["system"], []]
    assert _negotiate(refusal("ActionParameterNotSupported", "TransferProtocol"), choices, form)
    assert form == {"schemeless": False, "protocol": False} and choices == [["system"], []]
    assert _negotiate(refusal("ActionParameterValueFormatError", "x", "ImageURI"), choices, form)
    assert form == {"schemeless": True, "protocol": True}
    assert _negotiate(refusal("PropertyValueNotInList", "system"), choices, form)
    assert not _negotiate(refusal("PropertyValueNotInList", "none"), choices, form)   # none left
    other = error_for(400, {"error": {"@Message.ExtendedInfo": [{"MessageId": "Base.1.8.Busy"}]}},
                      "bmc", "x")
    assert not _negotiate(other, [["a"], []], form)            # not a refusal of a parameter
    assert not _negotiate(BmcRefused("x"), [["a"], []], form)   # no HTTP status at all


def test_image_uri_forms():
    url = "http://192.0.2.1:8080/files/bios.bin"
    assert simple_update_body(url, ["/t"], {"schemeless": False, "protocol": True}) == {
        "ImageURI": url, "Targets": ["/t"], "TransferProtocol": "HTTP"}
    assert simple_update_body(url, [], {"schemeless": True, "protocol": True}) == {
        "ImageURI": "192.0.2.1:8080/files/bios.bin", "TransferProtocol": "HTTP"}
    assert simple_update_body(url, [], {"schemeless": False, "protocol": False}) == {"ImageURI": url}


def test_message_ids_from_either_error_shape():
    assert message_ids({"error": {"code": "Base.1.8.PropertyUnknown"}}) == (
        ("Base.1.8.PropertyUnknown", ()),)
    assert message_ids({"Messages": [{"MessageId": "X.Y", "MessageArgs": "not a list"}]}) == (
        ("X.Y", ()),)
    assert message_ids("<html>") == () and message_ids({}) == ()


@pytest.mark.parametrize("raw, clean", [
    ("AA:BB:CC:00:11:22", "aa:bb:cc:00:11:22"), ("aa-bb-cc-00-11-22", "aa:bb:cc:00:11:22"),
    ("00:00:00:00:00:00", None), ("", None), (None, None), ("aa:bb:cc", None), (42, None)])
def test_clean_mac(raw, clean):
    assert systems.clean_mac(raw) == clean


def test_host_interface_by_name():
    assert systems.host_interface_nic({"Id": "1", "Name": "Host Interface"})
    assert systems.host_interface_nic({"Id": "HostInterface_1"})
    assert not systems.host_interface_nic({"Id": "NIC.Integrated.1-1-1", "Name": "Ethernet 1"})


def test_library_error_is_one_line_of_ours(caplog):
    page = "Service responded with invalid JSON at URI /x\n<html><body>" + "x" * 5000 + "</body></html>"
    with caplog.at_level(logging.WARNING):
        logging.getLogger("redfish.rest.v1").error(page)
    ours = [r for r in caplog.records if r.name == "bootstrap.redfish.client"]
    assert len(ours) == 1 and "\n" not in ours[0].getMessage()
    assert ours[0].getMessage() == "redfish library: Service responded with invalid JSON at URI /x"
    assert not [r for r in caplog.records if r.name == "redfish.rest.v1"]
