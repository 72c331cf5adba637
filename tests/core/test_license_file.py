"""Signed license files: what `TrustedIssuers.verify` accepts and what AddLicense refuses."""

from __future__ import annotations

import base64
import json

import pytest
from harness import Issuer

from licentia import license_file
from licentia.core.commands import AddLicense, RemoveLicense
from licentia.license_file import LicenseFileError, TrustedIssuers

T0 = 1_700_000_000.0  # the install time the `signed`/`install` fixtures default to
DAY = 86400.0


def document(issuer: Issuer, **fields) -> dict:
    return license_file.issue(issuer.terms(**fields), issuer.key)


def test_valid_license_file_verifies_into_add_license(issuer, trusted):
    terms = issuer.terms(license_id="LIC-1", count=7, features=["rfid"])
    data = json.dumps(license_file.issue(terms, issuer.key))

    command = trusted.verify(data)

    assert isinstance(command, AddLicense)
    assert command.terms == terms
    assert command.key_id == license_file.key_id(issuer.key.public_key())
    assert trusted.verify(data.encode()) == command


def test_license_signed_by_untrusted_key_is_refused(issuer, trusted):
    forger = Issuer()
    with pytest.raises(LicenseFileError, match="does not trust"):
        trusted.verify(json.dumps(document(forger)))


def test_forged_license_claiming_trusted_key_id_is_refused(issuer, trusted):
    forged = document(Issuer())
    forged["key_id"] = license_file.key_id(issuer.key.public_key())
    with pytest.raises(LicenseFileError, match="forged or tampered"):
        trusted.verify(json.dumps(forged))


@pytest.mark.parametrize(
    ("field", "value"),
    [("count", 500), ("expires", T0 + 100 * 365 * DAY), ("product", "OtherProduct"), ("grace_days", 3650)],
)
def test_terms_edited_after_signing_are_refused(issuer, trusted, field, value):
    tampered = document(issuer, count=5)
    tampered["terms"][field] = value
    with pytest.raises(LicenseFileError, match="forged or tampered"):
        trusted.verify(json.dumps(tampered))


def test_terms_with_added_feature_are_refused(issuer, trusted):
    tampered = document(issuer, features=["basic"])
    tampered["terms"]["features"].append("unlimited")
    with pytest.raises(LicenseFileError):
        trusted.verify(json.dumps(tampered))


@pytest.mark.parametrize("data", [b"{not json", b"", b"\xff\xfe\x00garbage", b'{"format": '])
def test_malformed_json_is_refused(trusted, data):
    with pytest.raises(LicenseFileError, match="not valid JSON"):
        trusted.verify(data)


@pytest.mark.parametrize("payload", ["[]", '"licentia-license/1"', "42", "null"])
def test_json_that_is_not_an_object_is_refused(trusted, payload):
    with pytest.raises(LicenseFileError, match="not a Licentia license file"):
        trusted.verify(payload)


@pytest.mark.parametrize("marker", ["licentia-license/2", "", None, "LICENTIA-LICENSE/1"])
def test_wrong_format_marker_is_refused(issuer, trusted, marker):
    doc = document(issuer)
    doc["format"] = marker
    with pytest.raises(LicenseFileError, match="format"):
        trusted.verify(json.dumps(doc))


def test_missing_format_marker_is_refused(issuer, trusted):
    doc = document(issuer)
    del doc["format"]
    with pytest.raises(LicenseFileError, match="format"):
        trusted.verify(json.dumps(doc))


def test_extra_top_level_field_is_refused(issuer, trusted):
    doc = document(issuer)
    doc["comment"] = "harmless?"
    with pytest.raises(LicenseFileError, match="unexpected fields"):
        trusted.verify(json.dumps(doc))


def test_missing_top_level_field_is_refused(issuer, trusted):
    doc = document(issuer)
    del doc["signature"]
    with pytest.raises(LicenseFileError, match="missing or unexpected fields"):
        trusted.verify(json.dumps(doc))


def test_extra_field_inside_terms_is_refused(issuer, trusted):
    doc = document(issuer)
    doc["terms"]["unlimited"] = True
    with pytest.raises(LicenseFileError, match="malformed"):
        trusted.verify(json.dumps(doc))


def test_terms_of_wrong_type_are_refused(issuer, trusted):
    doc = document(issuer)
    doc["terms"]["count"] = "5"
    with pytest.raises(LicenseFileError, match="malformed"):
        trusted.verify(json.dumps(doc))


@pytest.mark.parametrize("signature", ["!!!not base64!!!", "abc", 12345, None])
def test_bad_base64_signature_is_refused(issuer, trusted, signature):
    doc = document(issuer)
    doc["signature"] = signature
    with pytest.raises(LicenseFileError, match="malformed"):
        trusted.verify(json.dumps(doc))


def test_signature_of_wrong_length_is_refused(issuer, trusted):
    doc = document(issuer)
    doc["signature"] = base64.b64encode(base64.b64decode(doc["signature"])[:32]).decode()
    with pytest.raises(LicenseFileError, match="forged or tampered"):
        trusted.verify(json.dumps(doc))


def test_terms_not_in_canonical_form_are_refused(issuer, trusted):
    doc = document(issuer)
    del doc["terms"]["features"]  # a default the signature covered; the decoded terms would differ from the file
    with pytest.raises(LicenseFileError, match="canonical"):
        trusted.verify(json.dumps(doc))


def test_oversized_license_file_is_refused(issuer, trusted):
    doc = document(issuer)
    padded = json.dumps(doc) + " " * license_file.MAX_FILE_BYTES
    with pytest.raises(LicenseFileError, match="too large"):
        trusted.verify(padded)


def test_server_trusting_no_keys_refuses_everything(issuer):
    with pytest.raises(LicenseFileError, match="does not trust"):
        TrustedIssuers().verify(json.dumps(document(issuer)))


def test_trusted_issuers_load_public_keys_from_directory(issuer, tmp_path):
    issuer.trust_in(tmp_path)
    trusted = TrustedIssuers.from_directory(tmp_path / "trusted-issuers")
    assert trusted.ids() == [license_file.key_id(issuer.key.public_key())]
    assert trusted.verify(json.dumps(document(issuer, license_id="LIC-DIR"))).terms.license_id == "LIC-DIR"


# -- installing: AddLicense ----------------------------------------------------------------------


def test_add_license_installs_it(state, signed):
    outcome = state.apply(signed(license_id="LIC-A", count=3), T0)
    assert outcome.ok and outcome.changed
    assert state.licenses["LIC-A"].terms.count == 3
    assert state.licenses["LIC-A"].installed_at == T0
    assert state.used("LIC-A", T0) == 0


def test_expired_license_is_refused_and_changes_nothing(state, signed, install):
    install(license_id="LIC-KEEP")
    before = state.snapshot_bytes()

    outcome = state.apply(signed(license_id="LIC-OLD", not_before=T0 - 10 * DAY, expires=T0 - 1), T0)

    assert not outcome.ok
    assert outcome.code == "license_expired"
    assert not outcome.changed
    assert "LIC-OLD" not in state.licenses
    assert state.snapshot_bytes() == before


def test_license_expiring_exactly_now_is_refused(state, signed):
    outcome = state.apply(signed(license_id="LIC-EDGE", expires=T0), T0)
    assert outcome.code == "license_expired"
    assert state.licenses == {}


def test_duplicate_license_id_is_refused_and_changes_nothing(state, signed, install):
    install(license_id="LIC-DUP", count=5)
    before = state.snapshot_bytes()

    outcome = state.apply(signed(license_id="LIC-DUP", count=50), T0 + 10)

    assert outcome.code == "license_exists"
    assert state.licenses["LIC-DUP"].terms.count == 5
    assert state.snapshot_bytes() == before


@pytest.mark.parametrize("count", [0, -1])
def test_license_count_below_one_is_refused_and_changes_nothing(state, signed, count):
    before = state.snapshot_bytes()
    outcome = state.apply(signed(license_id="LIC-ZERO", count=count), T0)
    assert outcome.code == "invalid_license"
    assert state.snapshot_bytes() == before


def test_license_with_not_before_after_expiry_is_refused(state, signed):
    before = state.snapshot_bytes()
    outcome = state.apply(signed(not_before=T0 + 10 * DAY, expires=T0 + 5 * DAY), T0)
    assert outcome.code == "invalid_license"
    assert state.snapshot_bytes() == before


def test_license_with_negative_grace_days_is_refused(state, signed):
    before = state.snapshot_bytes()
    outcome = state.apply(signed(grace_days=-1), T0)
    assert outcome.code == "invalid_license"
    assert state.snapshot_bytes() == before


def test_remove_license_uninstalls_it_and_unknown_license_is_refused(state, install):
    install(license_id="LIC-R")
    assert state.apply(RemoveLicense("LIC-R"), T0).ok
    assert "LIC-R" not in state.licenses
    before = state.snapshot_bytes()
    outcome = state.apply(RemoveLicense("LIC-R"), T0)
    assert outcome.code == "license_not_found"
    assert state.snapshot_bytes() == before


BAD_LICENSE_IDS = ["../users/admin2", "a/b", "a\\b", "", ".", "..", "a..b", "x" * 65, "with space", "caf\u00e9",
                   "id%2F", "LIC-1\n"]


@pytest.mark.parametrize("license_id", BAD_LICENSE_IDS)
def test_a_license_id_that_is_not_a_plain_name_is_refused_at_issue_and_at_install(issuer, trusted, license_id):
    with pytest.raises(LicenseFileError, match="license id"):
        license_file.issue(issuer.terms(license_id=license_id), issuer.key)
    with pytest.raises(LicenseFileError, match="license id"):
        trusted.verify(issuer.unchecked_license_bytes(license_id=license_id))


@pytest.mark.parametrize("license_id", ["L", "LIC-0001", "a.b_c-9", "x" * 64, "v1.2"])
def test_plain_license_ids_are_issued_and_installed(issuer, trusted, license_id):
    command = trusted.verify(json.dumps(license_file.issue(issuer.terms(license_id=license_id), issuer.key)))
    assert command.terms.license_id == license_id


def test_an_unbound_license_file_has_no_binding_field_and_verifies_as_before(issuer, trusted):
    """Files issued before binding existed have no `bound_to`: they and their signatures stay valid."""
    doc = document(issuer, license_id="OLD-STYLE")
    assert "bound_to" not in doc["terms"]
    assert trusted.verify(json.dumps(doc)).terms.bound_to == []


def test_the_binding_is_inside_the_signed_terms(issuer, trusted):
    bound = document(issuer, bound_to=["0123456789abcdef"])
    assert trusted.verify(json.dumps(bound)).terms.bound_to == ["0123456789abcdef"]
    for change in (["fedcba9876543210"], ["0123456789abcdef", "fedcba9876543210"]):
        tampered = {**bound, "terms": {**bound["terms"], "bound_to": change}}
        with pytest.raises(LicenseFileError, match="forged or tampered"):
            trusted.verify(json.dumps(tampered))
    unbound = {**bound, "terms": {k: v for k, v in bound["terms"].items() if k != "bound_to"}}
    with pytest.raises(LicenseFileError, match="forged or tampered"):
        trusted.verify(json.dumps(unbound))


@pytest.mark.parametrize("server_id", ["", "xyz", "0123456789ABCDEF", "0123456789abcde", "0123456789abcdef0"])
def test_a_binding_to_something_that_is_not_a_server_id_is_refused(issuer, trusted, server_id):
    with pytest.raises(LicenseFileError, match="not a server id"):
        license_file.issue(issuer.terms(bound_to=[server_id]), issuer.key)
    with pytest.raises(LicenseFileError, match="not a server id"):
        trusted.verify(issuer.unchecked_license_bytes(bound_to=[server_id]))


def test_a_bound_license_installs_only_on_a_server_it_names(issuer):
    here, there, third = "0123456789abcdef", "fedcba9876543210", "00000000000000aa"
    license_file.check_binding(issuer.terms(), here)
    license_file.check_binding(issuer.terms(bound_to=[there, here, third]), here)
    refusal = f"bound to server {there}.*this server's id is {here}"
    with pytest.raises(license_file.LicenseBoundElsewhere, match=refusal):
        license_file.check_binding(issuer.terms(license_id="L-B", bound_to=[there]), here)
