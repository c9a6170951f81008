"""Service configuration: defaults < config file (YAML) < `WATCHFLOOR_*` environment < command line.

Names carry their units (`*_seconds`, `*_bytes`). Secrets (`token_pepper`) are never logged or printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from watchfloor.core.errors import ConfigError


def default_data_dir() -> Path:
    """The user's data folder: $XDG_DATA_HOME/watchfloor, else ~/.local/share/watchfloor."""
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else Path.home() / ".local" / "share") / "watchfloor"


class TenantRulesSettings(BaseModel):
    """A tenant's overlay on the base rules: its own rule files, rule ids switched off, placeholder values."""

    model_config = ConfigDict(extra="forbid")

    extra: list[Path] = Field(default_factory=list)
    disabled: list[str] = Field(default_factory=list)
    placeholders: dict[str, list[str]] = Field(default_factory=dict)


class ServeSettings(BaseSettings):
    """Everything `watchfloor serve` needs; every field also reads `WATCHFLOOR_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="WATCHFLOOR_", extra="forbid")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None  # default: sqlite:///<data_dir>/watchfloor.db
    host: str = "127.0.0.1"
    log_level: str = "info"
    port: int = 8088
    rules: list[Path] = Field(default_factory=list)  # default: the project's content/rules
    tenant_rules: dict[str, TenantRulesSettings] = Field(default_factory=dict)  # tenant id -> overlay
    syslog_host: str = "127.0.0.1"
    syslog_udp_port: int | None = None
    syslog_tcp_port: int | None = None
    syslog_tenant: str | None = None  # the tenant a syslog listener's senders belong to
    token_pepper: SecretStr | None = None
    # AES-256-GCM key(s) sealing connector credentials at rest: base64 of 32 random bytes; a comma-separated
    # list rotates keys (the first seals, the others only open). None: refused unless dev_mode.
    secrets_key: SecretStr | None = None
    # Local development: without secrets_key, a key is made once and kept in <data_dir>/secrets.key (0600).
    dev_mode: bool = False
    admin_token_sha256: str | None = None  # SHA-256 hex of the operator API token; None: /api/v1 answers 503
    archive_dir: Path | None = None  # default: <data_dir>/archive
    archive_enabled: bool = True  # raw + normalized events per tenant and day, in Parquet
    archive_flush_seconds: float = 5.0
    retention_days_by_tier: dict[str, int] = Field(
        default_factory=lambda: {"basic": 30, "essentials": 30, "standard": 90, "premium": 365}
    )
    max_request_bytes: int = 16 * 1024 * 1024
    max_event_bytes: int = 1024 * 1024
    spool_max_bytes: int | None = None
    spool_min_free_bytes: int = 256 * 1024 * 1024
    detect_batch_size: int = 512
    health_interval_seconds: float = 60.0
    health_tiers: dict[str, Any] = Field(default_factory=dict)  # tier -> silent/low-volume thresholds
    tiers_file: Path | None = None  # default: the project's content/tiers/tiers.yml
    soc_roster: Path | None = None  # the SOC roster (see content/soc/roster.example.yml); None: no routing
    autoclose_file: Path | None = None  # default: the project's content/triage/autoclose.yml
    triage_enabled: bool = True  # the triage stage (detections -> alerts -> incidents) and the SLA sweeper
    triage_lag_seconds: float | None = None  # default: 0 on SQLite, 5 on PostgreSQL
    sla_interval_seconds: float = 30.0  # how often the SLA engine checks warnings, breaches, routing
    response_enabled: bool = True  # the response stage (playbook runs, approvals, their deadlines)
    playbooks_dir: Path | None = None  # default: the project's content/playbooks
    response_interval_seconds: float = 15.0  # how often the response stage starts and resumes runs

    @property
    def resolved_archive_dir(self) -> Path:
        return self.archive_dir or self.data_dir / "archive"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'watchfloor.db'}"

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> ServeSettings:
        """Defaults, then the YAML file, then the environment, then `overrides` (None values ignored)."""
        values: dict[str, Any] = {}
        if config_file is not None:
            try:
                loaded = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as exc:
                msg = f"cannot read configuration {config_file}: {exc}"
                raise ConfigError(msg) from exc
            if not isinstance(loaded, dict):
                msg = f"configuration {config_file} must be a mapping of setting names to values"
                raise ConfigError(msg)
            values.update(loaded)
        env_prefix = "WATCHFLOOR_"
        for name in cls.model_fields:
            if f"{env_prefix}{name.upper()}" in os.environ:
                values.pop(name, None)  # the environment wins over the file
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValueError as exc:
            msg = f"invalid configuration: {exc}"
            raise ConfigError(msg) from exc
