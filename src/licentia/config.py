"""Process configuration: where this server keeps its data and how it listens.

Values come from defaults, then a TOML file (`licentia serve --config FILE`,
keys under `[server]`, and how alert mail leaves this server under `[alerts]`),
then command-line flags. Settings shared by every member of a relationship
(lease TTL, printer window, ...) are license state instead: see
`licentia.core.settings`. `docs/configuration.md` lists every key.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from licentia.store.data_directory import DataDirectory
from licentia.tls import TLS_MODES, TlsMode, effective_mode


class ConfigError(ValueError):
    pass


SmtpTls = Literal["starttls", "tls", "none"]
Durability = Literal["FULL", "NORMAL", "EXTRA"]  # SQLite's synchronous setting for the journal
LogLevel = Literal["debug", "info", "warning", "error"]
LogFormat = Literal["text", "json"]
TlsSetting = Literal["", "auto", "off", "files"]  # empty: off on a loopback address, auto anywhere else

SMTP_TLS_MODES: tuple[SmtpTls, ...] = get_args(SmtpTls)
DURABILITIES: tuple[Durability, ...] = get_args(Durability)
LOG_LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
LOG_FORMATS: tuple[LogFormat, ...] = get_args(LogFormat)
CONSOLE_PATH = re.compile(r"(/[A-Za-z0-9_-]+)+")
SERVED_PATHS = ("api", "health", "metrics")  # the console cannot be mounted over these
SMTP_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


@dataclass
class AlertConfig:
    """How this process sends alerts (`[alerts]`); recipients and thresholds are shared license state.

    The SMTP password comes from `smtp_password_file` (e.g. a systemd credential),
    `$LICENTIA_SMTP_PASSWORD`, or `smtp_password`, in that order. It is kept out of
    `repr` so it never reaches a log line, and the API only says whether one is set.
    """

    smtp_host: str = ""
    smtp_port: int = 0
    smtp_tls: SmtpTls = "starttls"
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_password_file: str = ""
    smtp_from: str = ""
    smtp_timeout_s: float = 10.0
    interval_s: float = 5.0

    @property
    def email_configured(self) -> bool:
        return bool(self.smtp_host)

    @property
    def port(self) -> int:
        return self.smtp_port or SMTP_DEFAULT_PORTS[self.smtp_tls]

    @property
    def sender(self) -> str:
        return self.smtp_from or f"licentia@{socket.getfqdn() or 'localhost'}"

    def password(self) -> str:
        if self.smtp_password_file:
            try:
                return Path(self.smtp_password_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read smtp_password_file: {exc.strerror}") from None
        return os.environ.get("LICENTIA_SMTP_PASSWORD") or self.smtp_password

    def validate(self) -> AlertConfig:
        if self.smtp_tls not in SMTP_TLS_MODES:
            raise ConfigError("alerts.smtp_tls must be 'starttls', 'tls' or 'none'")
        if not 0 <= self.smtp_port < 65536:
            raise ConfigError(f"alerts.smtp_port must be 1-65535 (0: by smtp_tls), got {self.smtp_port}")
        if not 1 <= self.smtp_timeout_s <= 300:
            raise ConfigError("alerts.smtp_timeout_s must be between 1 and 300")
        if not 0.1 <= self.interval_s <= 3600:
            raise ConfigError("alerts.interval_s must be between 0.1 and 3600")
        if self.smtp_password_file:
            self.password()
        return self

    @classmethod
    def from_table(cls, values: dict[str, Any]) -> AlertConfig:
        types = {f.name: type(f.default) for f in fields(cls)}
        unknown = sorted(set(values) - set(types))
        if unknown:
            raise ConfigError(f"unknown [alerts] key(s): {', '.join(unknown)}")
        for name, value in values.items():
            expected = (int, float) if types[name] is float else types[name]
            if not isinstance(value, expected) or isinstance(value, bool):
                raise ConfigError(f"alerts.{name} must be a {types[name].__name__}")
        return cls(**values).validate()


@dataclass
class Config:
    data_dir: Path = Path("licentia-data")
    host: str = "127.0.0.1"
    port: int = 8470
    trusted_issuers: list[Path] = field(default_factory=list)
    durability: Durability = "FULL"
    snapshot_every: int = 10_000
    max_body_bytes: int = 64 * 1024
    reclaim_interval_s: float = 5.0
    token_ttl_s: float = 12 * 3600.0
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    access_log: bool = False
    console_path: str = "/console"
    sync_batch_rows: int = 5000
    tls: TlsSetting = ""
    tls_cert: str = ""
    tls_key: str = ""
    forwarded_allow_ips: list[str] = field(default_factory=list)
    alerts: AlertConfig = field(default_factory=AlertConfig)

    @property
    def database(self) -> Path:
        return DataDirectory(self.data_dir).database

    @property
    def issuers_dir(self) -> Path:
        return DataDirectory(self.data_dir).trusted_issuers

    @property
    def tls_mode(self) -> TlsMode:
        """How this server listens: `auto` (a self-signed certificate), `files`, or `off` (plain HTTP)."""
        return effective_mode(self.tls, self.host)

    def validate(self) -> Config:
        if self.tls not in ("", *TLS_MODES):
            raise ConfigError("tls must be 'auto', 'off' or 'files'")
        if self.tls == "files" and not (self.tls_cert and self.tls_key):
            raise ConfigError("tls = 'files' needs tls_cert and tls_key (PEM files)")
        if (self.tls_cert or self.tls_key) and self.tls != "files":
            raise ConfigError("tls_cert and tls_key are used only with tls = 'files'")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be 1-65535, got {self.port}")
        if self.durability not in DURABILITIES:
            raise ConfigError("durability must be FULL, NORMAL or EXTRA")
        if not 1 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise ConfigError("max_body_bytes must be between 1 and 16 MiB")
        if self.snapshot_every < 1:
            raise ConfigError("snapshot_every must be at least 1")
        if not 0.1 <= self.reclaim_interval_s <= 3600:
            raise ConfigError("reclaim_interval_s must be between 0.1 and 3600")
        if not 10 <= self.sync_batch_rows <= 100_000:
            raise ConfigError("sync_batch_rows must be between 10 and 100000")
        if not isinstance(self.forwarded_allow_ips, list):
            raise ConfigError("forwarded_allow_ips must be a list of addresses or networks")
        for entry in self.forwarded_allow_ips:
            try:
                if not isinstance(entry, str):
                    raise TypeError(entry)
                ipaddress.ip_network(entry, strict=False)
            except (TypeError, ValueError):
                raise ConfigError(f"forwarded_allow_ips: {entry!r} is not an IP address or network") from None
        if self.log_format not in LOG_FORMATS:
            raise ConfigError("log_format must be 'text' or 'json'")
        if self.log_level not in LOG_LEVELS:
            raise ConfigError("log_level must be debug, info, warning or error")
        if not CONSOLE_PATH.fullmatch(self.console_path) or self.console_path.split("/")[1] in SERVED_PATHS:
            raise ConfigError("console_path must look like /console (letters, digits, - and _; not under /api)")
        return self

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Config:
        values: dict[str, Any] = {}
        if path is not None:
            try:
                document = tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from None
            values.update(document.get("server", {}))
            if "alerts" in values:
                raise ConfigError("alert keys go in an [alerts] table, not under [server]")
            values["alerts"] = AlertConfig.from_table(document.get("alerts", {}))
        values.update({key: value for key, value in overrides.items() if value is not None})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
        if "data_dir" in values:
            values["data_dir"] = Path(values["data_dir"])
        if "trusted_issuers" in values:
            values["trusted_issuers"] = [Path(p) for p in values["trusted_issuers"]]
        if "durability" in values:
            values["durability"] = str(values["durability"]).upper()
        return cls(**values).validate()
