"""The [alerts] configuration table, the documented configuration reference, and the systemd unit."""

from __future__ import annotations

import configparser
import json
import logging
import re
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from licentia.config import AlertConfig, Config, ConfigError
from licentia.core.alert_settings import AlertSettings

ROOT = Path(__file__).resolve().parents[2]


def load(tmp_path: Path, text: str, **overrides) -> Config:
    path = tmp_path / "licentia.toml"
    path.write_text(text)
    return Config.load(path, **overrides)


def test_alerts_table_is_read_and_defaults_fill_the_rest(tmp_path: Path):
    config = load(tmp_path, '[server]\nport = 9000\n[alerts]\nsmtp_host = "mail.example.net"\nsmtp_tls = "tls"\n'
                            'smtp_user = "me"\ninterval_s = 2\n')
    assert config.port == 9000
    alerts = config.alerts
    assert (alerts.smtp_host, alerts.smtp_tls, alerts.port, alerts.smtp_user, alerts.interval_s) == (
        "mail.example.net", "tls", 465, "me", 2)
    assert alerts.email_configured
    assert Config().alerts == AlertConfig() and not AlertConfig().email_configured
    assert AlertConfig(smtp_port=2525).port == 2525 and AlertConfig().port == 587


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[alerts]\nsmtp_hots = "x"\n', "unknown [alerts] key"),
        ('[alerts]\nsmtp_tls = "ssl"\n', "smtp_tls"),
        ('[alerts]\nsmtp_port = "25"\n', "alerts.smtp_port must be a int"),
        ("[alerts]\nsmtp_port = 70000\n", "smtp_port"),
        ("[alerts]\ninterval_s = 0\n", "interval_s"),
        ("[alerts]\nsmtp_timeout_s = true\n", "smtp_timeout_s"),
        ('[alerts]\nsmtp_password_file = "/nonexistent/smtp-password"\n', "cannot read smtp_password_file"),
        ('[server]\nalerts = "x"\n', "[alerts] table"),
    ],
)
def test_bad_alerts_configuration_is_refused(tmp_path: Path, text: str, message: str):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load(tmp_path, text)


def test_smtp_password_sources_and_it_never_shows_in_repr(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("LICENTIA_SMTP_PASSWORD", raising=False)
    in_file = tmp_path / "smtp-password"
    in_file.write_text("from-the-file\n")
    config = load(tmp_path, '[alerts]\nsmtp_password = "from-the-toml"\n').alerts
    assert config.password() == "from-the-toml"
    monkeypatch.setenv("LICENTIA_SMTP_PASSWORD", "from-the-env")
    assert config.password() == "from-the-env"
    config = load(tmp_path, f'[alerts]\nsmtp_password = "from-the-toml"\nsmtp_password_file = "{in_file}"\n').alerts
    assert config.password() == "from-the-file"
    assert "from-the-toml" not in repr(config) and "from-the-toml" not in repr(Config(alerts=config))


def _documented_keys(section: str) -> dict[str, str]:
    """`key` -> default column of the table under `section` in docs/configuration.md."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^\| `([a-z_]+)` \| ([^|]*) \|", body, re.M)}


def test_every_configuration_key_is_documented_with_its_default():
    server = _documented_keys("# Configuration reference")
    for field in fields(Config):
        if field.name != "alerts":
            assert field.name in server, f"[server] key {field.name} is not in docs/configuration.md"
    alerts = _documented_keys("## `[alerts]`")
    for field in fields(AlertConfig):
        assert field.name in alerts, f"[alerts] key {field.name} is not in docs/configuration.md"
        default = str(field.default).lower()
        assert alerts[field.name].strip("`").lower() in (default, f'"{default}"', repr(field.default)), field.name
    settings = _documented_keys("## Alert settings")
    assert set(settings) == set(AlertSettings.__struct_fields__)


def test_systemd_unit_runs_serve_with_a_config_as_a_dedicated_user_and_restarts_on_failure():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # keys are case-sensitive
    unit.read(ROOT / "packaging" / "licentia.service")
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "licentia" and service["Group"] == "licentia"
    assert service["StateDirectory"] == "licentia"
    command = service["ExecStart"].split()
    assert command[0].endswith("/licentia") and command[1] == "serve"
    assert command[command.index("--config") + 1].endswith(".toml")
    assert command[command.index("--data") + 1] == "${STATE_DIRECTORY}"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "licentia" in (ROOT / "packaging" / "licentia.sysusers").read_text().split()
    example = Config.load(ROOT / "packaging" / "licentia.toml")  # the shipped example is valid
    assert example.alerts.smtp_tls == "starttls" and example.port == 8470


def test_json_log_lines_are_one_object_a_line_and_keep_exceptions():
    from licentia.logs import JsonLines

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("licentia.alerts", logging.ERROR, __file__, 1, "Alert %s failed.", ("x",),
                                   exc_info=sys.exc_info())
    line = JsonLines().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["message"] == "Alert x failed." and data["level"] == "error" and "ValueError: boom" in data["exception"]
