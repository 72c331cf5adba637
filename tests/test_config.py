"""The process configuration refuses an enumerated value it does not know, in a sentence naming the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from licentia.config import Config, ConfigError


def _load(tmp_path: Path, line: str) -> Config:
    path = tmp_path / "licentia.toml"
    path.write_text(f"[server]\n{line}\n")
    return Config.load(path)


def test_an_unknown_log_level_is_refused_with_the_levels_named(tmp_path):
    with pytest.raises(ConfigError, match="log_level must be debug, info, warning or error"):
        _load(tmp_path, 'log_level = "verbose"')
    assert _load(tmp_path, 'log_level = "warning"').log_level == "warning"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('durability = "sometimes"', "durability must be FULL, NORMAL or EXTRA"),
        ('log_format = "xml"', "log_format must be 'text' or 'json'"),
        ('tls = "on"', "tls must be 'auto', 'off' or 'files'"),
    ],
)
def test_other_enumerated_keys_refuse_values_they_do_not_know(tmp_path, line, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, line)
