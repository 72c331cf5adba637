def test_installed_license_serves_a_print_check(server, issuer):
    with server.admin() as admin:
        added = admin.post("/api/v1/admin/licenses", content=issuer.license_bytes(license_id="L1"),
                           headers={"Content-Type": "application/json"})
        assert added.status_code == 201, added.text
        import httpx

        answer = httpx.post(f"{server.url}/api/v1/print-checks",
                            json={"product": "LabelStudio", "printer": {"name": "P1"}})
        assert answer.status_code == 200
        assert answer.json()["license_id"] == "L1"
        assert admin.get("/api/v1/admin/licenses/L1").json()["used"] == 1
