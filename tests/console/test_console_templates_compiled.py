"""The console's templates are compiled before a page needs them (`console.views.compile_templates`)."""

from __future__ import annotations

from licentia.console.views import HERE, compile_templates, environment


def test_every_console_template_is_compiled_ahead_of_its_first_page() -> None:
    environment.cache.clear()
    pages = sorted(path.name for path in (HERE / "templates").glob("*.html"))

    assert compile_templates() == len(pages) > 10
    keys = environment.cache.keys()  # (loader reference, name) pairs
    cached = {key[1] for key in keys}
    assert set(pages) <= cached
