"""The one HTTP → exception mapping, against bodies recorded from sushy-emulator."""

import json
import os

import pytest

from bootstrap.redfish import errors

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "redfish")


def recorded(name):
    with open(os.path.join(DATA, f"{name}.json")) as fh:
        return json.load(fh)


def test_401_is_auth_failed_and_names_the_bmc_not_the_password():
    r = recorded("error_401")
    exc = errors.error_for(r["status"], r["body"], "p01-u03-bmc", "GET /redfish/v1/Systems")
    assert isinstance(exc, errors.AuthFailed)
    assert str(exc).startswith("p01-u03-bmc: ") and "credentials refused" in str(exc)


def test_404_carries_the_bmcs_own_message():
    r = recorded("error_404")
    exc = errors.error_for(r["status"], r["body"], "b", "system")
    assert isinstance(exc, errors.ResourceMissing)
    assert "Domain not found" in exc.message and "HTTP 404" in exc.message


def test_400_from_simple_update_is_refused_with_reason():
    r = recorded("ext_simple_update_bad")
    exc = errors.error_for(r["status"], r["body"], "b", "SimpleUpdate")
    assert isinstance(exc, errors.BmcRefused)
    assert "Missing ImageURI" in exc.message


@pytest.mark.parametrize("status,kind", [(429, errors.Transient), (503, errors.Transient),
                                         (502, errors.Transient), (500, errors.BmcServerError),
                                         (403, errors.AuthFailed), (409, errors.BmcRefused)])
def test_status_classes(status, kind):
    assert isinstance(errors.error_for(status, {}, "b", "x"), kind)


def test_success_is_no_error_and_raise_for_response_is_quiet():
    assert errors.error_for(204, {}, "b", "x") is None
    errors.raise_for_response(200, {}, "b", "x")
    with pytest.raises(errors.ResourceMissing):
        errors.raise_for_response(404, {}, "b", "x")


def test_extended_info_text_wins_over_generic_message():
    body = {"error": {"message": "generic", "@Message.ExtendedInfo": [
        {"MessageId": "Base.1.8.PropertyValueNotInList", "Message": "Pxe is not allowed"}]}}
    assert errors.bmc_message(body) == "Pxe is not allowed"
    assert errors.bmc_message({"error": "not a dict"}) == ""
    assert errors.bmc_message(None) == ""
