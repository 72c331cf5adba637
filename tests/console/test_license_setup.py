"""License Setup: adding a license by uploading its signed file, refusals, details and removal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from harness import Issuer
from playwright.sync_api import Page, expect

from licentia import license_file

from .console_support import CONSOLE, JSON_HEADERS, as_sentence, install, screenshot


def _licenses(admin) -> list[dict]:
    return admin.get("/api/v1/admin/licenses").json()["licenses"]


def _upload(page: Page, path: Path) -> None:
    page.goto(f"{CONSOLE}/licenses")
    page.get_by_label("Signed license file").set_input_files(str(path))
    page.get_by_role("button", name="Add license").click()


def test_uploading_a_signed_license_file_adds_and_lists_it(page: Page, admin, console_issuer, tmp_path):
    data = console_issuer.license_bytes(product="UploadStudio", customer="Upload Ltd", count=12)
    license_id = json.loads(data)["terms"]["license_id"]
    path = tmp_path / "upload.lic"
    path.write_bytes(data)
    _upload(page, path)
    message = page.locator("#license-upload .form-message")
    expect(message).to_contain_text("Added license")
    expect(message).to_contain_text("UploadStudio, 12 printers")
    assert [lic["license_id"] for lic in _licenses(admin) if lic["product"] == "UploadStudio"] == [license_id]
    row = page.locator(f'tr[data-license-id="{license_id}"]')
    expect(row).to_contain_text("Upload Ltd")
    expect(row).to_contain_text("0 / 12")
    screenshot(page, "license-setup")


@pytest.mark.expected_resource_failures(422)
def test_forged_expired_or_garbage_files_are_refused_with_the_api_message_and_change_nothing(
    page: Page, admin, console_issuer, tmp_path
):
    signed = json.loads(console_issuer.license_bytes(product="ForgedStudio", count=5))
    signed_text = json.dumps(signed)
    forged = signed_text.replace('"count": 5', '"count": 500')
    assert forged != signed_text
    cases = {
        "forged.lic": forged.encode(),
        "expired.lic": console_issuer.license_bytes(product="ExpiredStudio", expires=time.time() - 86400),
        "garbage.lic": b"this is not a license",
    }
    before = _licenses(admin)
    for name, data in cases.items():
        expected = admin.post("/api/v1/admin/licenses", content=data, headers=JSON_HEADERS).json()["error"]["message"]
        path = tmp_path / name
        path.write_bytes(data)
        _upload(page, path)
        message = page.locator("#license-upload .form-message")
        expect(message).to_have_text(as_sentence(f"{name} was not added: {expected}"))
        expect(message).to_have_attribute("role", "alert")
        expect(message).to_have_class("form-message wide is-error")
        if name == "forged.lic":
            screenshot(page, "license-setup-refused")
    assert _licenses(admin) == before


def test_license_details_show_its_terms_and_remove_takes_it_off_the_server(page: Page, admin, console_issuer):
    added = install(admin, console_issuer.license_bytes(product="DetailStudio", customer="Detail AG", count=4,
                                                        features=["export", "rfid"]))
    page.goto(f"{CONSOLE}/licenses")
    page.get_by_role("link", name=added["license_id"]).click()
    page.wait_for_url(f"**/licenses/{added['license_id']}")
    details = page.locator("dl.details")
    expect(details).to_contain_text("Detail AG")
    expect(details).to_contain_text("4 printers")
    expect(details).to_contain_text("export, rfid")
    screenshot(page, "license-details")
    page.get_by_role("button", name="Remove license").click()
    page.get_by_role("button", name="Yes, remove license", exact=True).click()
    page.wait_for_url(f"**{CONSOLE}/licenses")
    expect(page.locator(f'tr[data-license-id="{added["license_id"]}"]')).to_have_count(0)
    assert admin.get(f"/api/v1/admin/licenses/{added['license_id']}").status_code == 404


@pytest.mark.expected_resource_failures(404)
def test_an_unknown_license_shows_a_not_found_page(page: Page):
    answer = page.goto(f"{CONSOLE}/licenses/NO-SUCH-LICENSE")
    assert answer is not None and answer.status == 404
    expect(page.get_by_role("alert")).to_contain_text("No license NO-SUCH-LICENSE")
    screenshot(page, "license-not-found")


def test_license_setup_and_this_server_show_the_server_id_a_license_is_bound_to(page: Page, admin, console_issuer):
    server_id = admin.get("/api/v1/server").json()["server_id"]
    page.goto(f"{CONSOLE}/licenses")
    expect(page.locator("#server-id")).to_have_text(server_id)
    page.goto(f"{CONSOLE}/this-server")
    expect(page.locator("#server-id")).to_have_text(server_id)

    other = "0123456789abcdef"
    bound = install(admin, console_issuer.license_bytes(product="BoundStudio", bound_to=[other, server_id]))
    page.goto(f"{CONSOLE}/licenses/{bound['license_id']}")
    expect(page.locator("dl.details")).to_contain_text(f"Bound to{other}, {server_id} (this server)")
    screenshot(page, "license-details-bound")
    unbound = install(admin, console_issuer.license_bytes(product="AnyStudio"))
    page.goto(f"{CONSOLE}/licenses/{unbound['license_id']}")
    expect(page.locator("dl.details")).to_contain_text("Bound toany server")


def test_console_links_encode_a_name_as_one_path_segment():
    from licentia.console.views import environment

    segment = environment.filters["segment"]
    assert segment("../users/admin2") == "..%2Fusers%2Fadmin2"
    assert segment("a b?c#d%e") == "a%20b%3Fc%23d%25e"
    assert segment("LIC-1.2_x") == "LIC-1.2_x"


@pytest.mark.expected_resource_failures(404)
def test_an_unknown_console_address_shows_a_console_page_not_json(page: Page):
    answer = page.goto(f"{CONSOLE}/no-such-page")
    assert answer is not None and answer.status == 404
    assert answer.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    expect(page.get_by_role("alert")).to_have_text(
        "The console has no page at this address. Use the link below or the navigation."
    )
    expect(page.get_by_role("link", name="Back to the console")).to_be_visible()


@pytest.mark.expected_resource_failures(422)
def test_an_administrator_trusts_a_new_vendors_key_from_license_setup_and_its_license_then_adds(
    page: Page, admin, tmp_path
):
    vendor = Issuer()
    kid = license_file.key_id(vendor.key.public_key())
    lic = tmp_path / "new-vendor.lic"
    lic.write_bytes(vendor.license_bytes(product="NewVendorStudio", count=3))
    _upload(page, lic)
    message = page.locator("#license-upload .form-message")
    expect(message).to_contain_text("which this server does not trust")
    expect(message).to_contain_text("Trust an issuer key on the License Setup page")

    pub = tmp_path / "new-vendor.pub"
    pub.write_bytes(vendor.public_pem())
    trust = page.locator("#issuer-upload")
    trust.get_by_label("Issuer public key (.pub)").set_input_files(str(pub))
    trust.get_by_role("button", name="Trust key").click()
    expect(trust.locator(".form-message")).to_have_text(
        f"This server now trusts issuer key {kid}; licenses it signed can be added.")
    expect(page.locator("#trusted-ids")).to_contain_text(kid)
    screenshot(page, "license-setup-trusted-issuer")

    _upload(page, lic)  # no restart in between
    expect(message).to_contain_text("Added license")
    expect(message).to_contain_text("NewVendorStudio, 3 printers")
    assert any(lic["product"] == "NewVendorStudio" for lic in _licenses(admin))


@pytest.mark.expected_resource_failures(422)
def test_a_file_that_is_not_an_issuer_public_key_is_refused_in_a_sentence_and_not_trusted(page: Page, admin, tmp_path):
    before = admin.get("/api/v1/admin/status").json()["trusted_issuers"]
    bad = tmp_path / "notes.pub"
    bad.write_text("hello, this is not a key\n")
    page.goto(f"{CONSOLE}/licenses")
    trust = page.locator("#issuer-upload")
    trust.get_by_label("Issuer public key (.pub)").set_input_files(str(bad))
    trust.get_by_role("button", name="Trust key").click()
    expect(trust.locator(".form-message")).to_have_text(
        "notes.pub was not trusted: this is not a PEM public key file; upload the .pub file made by "
        "'licentia keys new'.")
    assert admin.get("/api/v1/admin/status").json()["trusted_issuers"] == before


def test_a_manager_sees_no_trust_form(page_as):
    page = page_as("manager")
    page.goto(f"{CONSOLE}/licenses")
    expect(page.locator("#license-upload")).to_be_visible()
    expect(page.locator("#issuer-upload")).to_have_count(0)


def test_a_file_over_a_forms_size_limit_is_refused_in_the_browser_with_a_sentence(page: Page, admin, tmp_path):
    """Both upload forms check the chosen file the same way before anything is sent."""
    licenses, trusted = _licenses(admin), admin.get("/api/v1/admin/status").json()["trusted_issuers"]
    page.goto(f"{CONSOLE}/licenses")
    limit = int(page.locator("#license-upload").get_attribute("data-max-bytes") or 0)
    big_license = tmp_path / "big.lic"
    big_license.write_bytes(b" " * (limit + 1))
    page.get_by_label("Signed license file").set_input_files(str(big_license))
    page.get_by_role("button", name="Add license").click()
    expect(page.locator("#license-upload .form-message")).to_have_text(
        f"big.lic is {limit + 1} bytes; a license file is at most {limit}.")
    big_key = tmp_path / "big.pub"
    big_key.write_bytes(b"k" * 4097)
    trust = page.locator("#issuer-upload")
    trust.get_by_label("Issuer public key (.pub)").set_input_files(str(big_key))
    trust.get_by_role("button", name="Trust key").click()
    expect(trust.locator(".form-message")).to_have_text(
        "big.pub is 4097 bytes; an issuer public key file is at most 4096.")
    assert _licenses(admin) == licenses
    assert admin.get("/api/v1/admin/status").json()["trusted_issuers"] == trusted
