"""The backups' settings (``HOMEIQ_BACKUP_*``): targets, encryption, schedule, retention."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from homeiq.errors import ConfigError
from homeiq.settings.checks import check_schedule, env_name, split_list


class BackupSettings(BaseModel):
    """Backups; ``HOMEIQ_BACKUP_`` + upper-cased field name."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    targets: list[str] = Field(
        default_factory=list,
        description=(
            "Where backup archives go, comma-separated: file:///mnt/nas/homeiq,"
            " s3://bucket/prefix (S3 endpoint and credentials the usual boto3 ways, e.g."
            " AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID). Empty: the backups folder of the data dir."
        ),
    )
    recipients: list[str] = Field(
        default_factory=list,
        description=(
            "age public keys (age1...) archives are encrypted to, comma-separated: the"
            " machine that makes backups cannot read them. Or set a passphrase instead."
        ),
    )
    passphrase: SecretStr | None = Field(
        default=None,
        description=(
            "Passphrase archives are encrypted with (age scrypt), usually given as"
            " HOMEIQ_BACKUP_PASSPHRASE_FILE; instead of recipients."
        ),
    )
    identity_file: Path | None = Field(
        default=None,
        description=(
            "age identity file (age-keygen's output) that decrypts archives made for the"
            " recipients: needed by verify and restore, and by the weekly automatic verify."
        ),
    )
    schedule: str = Field(
        default="03:30",
        description=(
            "Daily time (HH:MM, local time) of the scheduled backup, or `off`. Runs only"
            " when recipients or a passphrase are set."
        ),
    )
    verify_weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun", "off"] = Field(
        default="sun",
        description=(
            "Day of the week whose scheduled backup is followed by a full verify with a"
            " test restore, or `off`."
        ),
    )
    keep_daily: int = Field(default=7, ge=0, description="Daily archives kept per target.")
    keep_weekly: int = Field(
        default=4, ge=0, description="Weekly archives kept per target (the newest of each week)."
    )
    keep_monthly: int = Field(
        default=6, ge=0, description="Monthly archives kept per target (the newest of each month)."
    )
    influxdb_native: bool = Field(
        default=False,
        description=(
            "With the InfluxDB store, also run `influxd backup -portable` into the archive"
            " (needs the influxd binary on this machine)."
        ),
    )
    influxdb_rpc: str = Field(
        default="127.0.0.1:8088",
        description="InfluxDB's RPC address (bind-address) for `influxd backup`.",
    )

    @field_validator("targets", "recipients", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("schedule")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        return check_schedule(value)

    @model_validator(mode="after")
    def _check_encryption(self) -> BackupSettings:
        if self.recipients and self.passphrase is not None:
            # Not a ValueError: pydantic lets it through as is, naming the variable.
            raise ConfigError(
                env_name("backup", "recipients"),
                "set recipients or a passphrase for backups, not both",
            )
        return self
