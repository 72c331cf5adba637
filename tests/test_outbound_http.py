"""A server imports its HTTP client off the event loop (`licentia.outbound_http`)."""

from __future__ import annotations

from import_threads import last_line_printed


def test_after_the_http_client_is_imported_a_first_request_imports_nothing_more() -> None:
    """Its ~145 modules took a triad's active member's loop for 75 ms at the first checkpoint it took from a peer."""
    left = last_line_printed("""
        import asyncio, http.server
        from licentia.outbound_http import import_http_client

        server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        import_http_client()
        before = set(sys.modules)

        async def main():
            import httpx
            async with httpx.AsyncClient(timeout=5.0, verify=False) as client:
                async with client.stream("GET", f"http://127.0.0.1:{server.server_port}/") as answer:
                    async for _ in answer.aiter_bytes():
                        pass

        asyncio.run(main())
        print(sorted(set(sys.modules) - before))
    """)
    assert left == "[]", left


def test_a_standalone_servers_first_webhook_imports_its_http_client_off_the_loop() -> None:
    """A standalone server loads httpx only when an alert is first sent to a webhook: that must not stop the clients
    it serves."""
    imported_by = last_line_printed("""
        import asyncio, http.server
        from licentia.alerts.delivery import Alert, post_webhook

        assert "httpx" not in sys.modules, "imported before the first webhook"
        watch_imports()

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(204)
                self.end_headers()

        server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        alert = Alert(event="opened", kind="license_near_capacity", key="BULK", severity="warning",
                      summary="BULK is at 95% of its seats.", server="lic1", reported_by="lic1", at=1.0, opened_at=1.0)
        asyncio.run(post_webhook(f"http://127.0.0.1:{server.server_port}/hook", alert))
        print(sorted({imported_on[name] for name in ("httpx", "httpcore._async.http11", "h11")}))
    """)
    assert "MainThread" not in imported_by, imported_by
