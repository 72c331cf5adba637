"""Process configuration: where this server keeps its data and how it listens.

Values come from defaults, then a TOML file (`licentia serve --config FILE`),
then command-line flags. Settings shared by every member of a relationship
(lease TTL, printer window, ...) are license state instead: see
`licentia.core.settings`. `docs/configuration.md` lists every key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass
class Config:
    data_dir: Path = Path("licentia-data")
    host: str = "127.0.0.1"
    port: int = 8470
    trusted_issuers: list[Path] = field(default_factory=list)
    durability: str = "FULL"
    snapshot_every: int = 10_000
    max_body_bytes: int = 64 * 1024
    reclaim_interval_s: float = 5.0
    token_ttl_s: float = 12 * 3600.0
    log_level: str = "info"
    log_format: str = "text"
    access_log: bool = False

    @property
    def database(self) -> Path:
        return self.data_dir / "licentia.db"

    @property
    def issuers_dir(self) -> Path:
        return self.data_dir / "trusted-issuers"

    def validate(self) -> Config:
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be 1-65535, got {self.port}")
        if self.durability not in ("FULL", "NORMAL", "EXTRA"):
            raise ConfigError("durability must be FULL, NORMAL or EXTRA")
        if not 1 <= self.max_body_bytes <= 16 * 1024 * 1024:
            raise ConfigError("max_body_bytes must be between 1 and 16 MiB")
        if self.snapshot_every < 1:
            raise ConfigError("snapshot_every must be at least 1")
        if not 0.1 <= self.reclaim_interval_s <= 3600:
            raise ConfigError("reclaim_interval_s must be between 0.1 and 3600")
        if self.log_format not in ("text", "json"):
            raise ConfigError("log_format must be 'text' or 'json'")
        return self

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Config:
        values: dict[str, Any] = {}
        if path is not None:
            try:
                values.update(tomllib.loads(path.read_text()).get("server", {}))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from None
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
