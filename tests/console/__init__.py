"""Console tests. A package, so the shared browser (package scope) closes when these tests end:
Playwright's sync API keeps an event loop marked running, which would break asyncio.run in later tests."""
