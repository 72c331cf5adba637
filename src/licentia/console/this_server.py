"""Placeholder while the page is being built."""

from __future__ import annotations

from licentia.console.pages import Page

PAGES: list[Page] = []
