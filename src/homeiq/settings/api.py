"""The HTTP API's settings (``HOMEIQ_API_*``): where it listens, who may call it, how much."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import limits
from pydantic import BaseModel, ConfigDict, Field, field_validator

from homeiq.settings.checks import check_url, split_list


class ApiSettings(BaseModel):
    """The HTTP API; ``HOMEIQ_API_`` + upper-cased field name."""

    model_config = ConfigDict(extra="forbid", validate_default=True, frozen=True)

    enabled: bool = Field(
        default=True,
        description="Serve the HTTP API (and /metrics) from `homeiq run` and `homeiq demo`.",
    )
    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description=(
            "Address the API listens on. Loopback by default; any other address exposes the"
            " API to the network (logged as a warning)."
        ),
    )
    port: int = Field(
        default=8642, ge=0, le=65535, description="TCP port of the API (0 = any free port)."
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description=(
            "Browser origins allowed to call the API (CORS), comma-separated, e.g."
            " https://dash.example:8443. Empty: no CORS headers at all."
        ),
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description=(
            "Reverse proxies (IP addresses or CIDR networks, comma-separated) whose"
            " X-Forwarded-For and X-Forwarded-Proto are believed; the per-IP rate limit then"
            " counts the client they name. Empty: forwarded headers are ignored, whoever"
            " sends them."
        ),
    )
    rate_limit_read: str = Field(
        default="100/minute;20/second",
        description=(
            "Requests allowed per key whose highest scope is read: a sustained rate and a"
            " burst, both enforced (`limits` notation, ';'-separated)."
        ),
    )
    rate_limit_write: str = Field(
        default="100/minute;20/second",
        description="Requests allowed per key whose highest scope is write (as for read).",
    )
    rate_limit_admin: str = Field(
        default="100/minute;20/second",
        description="Requests allowed per key with the admin scope (as for read).",
    )
    rate_limit_ip: str = Field(
        default="300/minute;50/second",
        description=(
            "Requests allowed per client IP address, with or without a key (all but /healthz)."
        ),
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body accepted; larger ones get 413 before being read.",
    )
    max_query_bytes: int = Field(
        default=4096,
        ge=256,
        description="Longest query string accepted; longer ones get 414.",
    )

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return split_list(value)

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        checked = []
        for origin in value:
            origin = origin.strip().rstrip("/")
            parts = urlsplit(origin)
            # An origin is scheme://host[:port]; "*" would turn the allow-list off.
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"{origin!r} is not an origin like https://host:port")
            if "*" in parts.netloc:  # browsers send one exact origin: a pattern never matches
                raise ValueError(f"{origin!r}: wildcards never match; list each origin")
            check_url(origin, ("http", "https"))
            checked.append(origin)
        return checked

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        checked = []
        for entry in value:
            try:
                checked.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return checked

    @field_validator("rate_limit_read", "rate_limit_write", "rate_limit_admin", "rate_limit_ip")
    @classmethod
    def _check_rate_limit(cls, value: str) -> str:
        try:
            parsed = limits.parse_many(value)
        except ValueError:
            parsed = []
        if not parsed:
            raise ValueError("expected limits like 100/minute;20/second")
        return value
