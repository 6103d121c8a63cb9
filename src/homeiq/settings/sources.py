"""Where settings come from: ``HOMEIQ_*`` variables, ``HOMEIQ_*_FILE`` secrets, the TOML file.

The settings are nested (``settings.influxdb.url``) but every name a user writes stays
flat: ``HOMEIQ_INFLUXDB_URL``, ``influxdb_url = ...`` in TOML (a table ``[influxdb]`` with
``url = ...`` works too). :func:`settings_table` walks the model once and gives each
setting its path, flat name and variable; the sources below, the unknown-variable check,
the error messages, ``config show`` and docs/settings.md all read that one table, so no
list of fields is written twice.
"""

from __future__ import annotations

import difflib
import functools
import os
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from homeiq.errors import ConfigError
from homeiq.settings.checks import ENV_PREFIX, env_name

CONFIG_FILE_ENV = "HOMEIQ_CONFIG"
ALLOW_UNKNOWN_ENV = "HOMEIQ_ALLOW_UNKNOWN"
# HOMEIQ_* variables that are not settings but are legitimately set: the config file's
# name, the escape hatch itself, the shell variable the docs keep an API key in, and the
# test and CI tools' own (Home Assistant's venv and Python, the influxd binary).
NOT_SETTINGS = frozenset(
    {
        CONFIG_FILE_ENV,
        ALLOW_UNKNOWN_ENV,
        "HOMEIQ_API_KEY",
        "HOMEIQ_HA_VENV",
        "HOMEIQ_HA_PYTHON",
        "HOMEIQ_INFLUXD",
    }
)


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting: where it sits in the model, and the names users write it by."""

    path: tuple[str, ...]  # ("influxdb", "url")
    info: FieldInfo

    @property
    def name(self) -> str:
        """Flat name, as in TOML and ``config show``: ``influxdb_url``."""
        return "_".join(self.path)

    @property
    def env(self) -> str:
        """Environment variable: ``HOMEIQ_INFLUXDB_URL``."""
        return env_name(*self.path)

    @property
    def secret(self) -> bool:
        """Holds a secret (never shown, never stored in an archive)."""
        return "SecretStr" in str(self.info.annotation)

    @property
    def from_file(self) -> bool:
        """May come from ``<env>_FILE``: every secret, and credentials that travel with
        them though they are not secret (a user name)."""
        extra = self.info.json_schema_extra
        return self.secret or (isinstance(extra, dict) and bool(extra.get("from_file")))

    def value(self, settings: BaseModel) -> Any:
        """This setting's value in ``settings``."""
        value: Any = settings
        for part in self.path:
            value = getattr(value, part)
        return value


def sub_model(info: FieldInfo) -> type[BaseModel] | None:
    """The model of a field holding a group of settings (``influxdb``), else None."""
    kind = info.annotation
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


@functools.cache
def settings_table(model: type[BaseModel]) -> tuple[Setting, ...]:
    """Every setting of ``model``, sub-models walked in place, in declaration order."""
    table: list[Setting] = []
    for name, info in model.model_fields.items():
        group = sub_model(info)
        if group is None:
            table.append(Setting((name,), info))
        else:
            table += [Setting((name, *s.path), s.info) for s in settings_table(group)]
    return tuple(table)


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        inner = data.setdefault(part, {})
        if not isinstance(inner, dict):  # `influxdb = 5` and `influxdb_url = ...`: keep the
            return  # wrong value, which fails validation naming the setting
        data = inner
    data[path[-1]] = value


def nest(model: type[BaseModel], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with flat names of grouped settings (``influxdb_url``) moved into their
    group (``{"influxdb": {"url": ...}}``), merged with the group when it is given too."""
    by_name = {s.name: s.path for s in settings_table(model) if len(s.path) > 1}
    nested = {key: value for key, value in values.items() if key not in by_name}
    for key, value in values.items():
        path = by_name.get(key)
        if path is None:
            continue
        group = nested.get(path[0])
        if isinstance(group, BaseModel | dict):  # a copy: never change the caller's
            nested[path[0]] = dict(group)  # a model as its fields, not re-validated ones
        _put(nested, path, value)
    return nested


class _Source(PydanticBaseSettingsSource):
    """A source that builds its whole dict at once (nested, ready to deep-merge)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False


class EnvSource(_Source):
    """``HOMEIQ_<NAME>`` for every setting (names compared upper-cased)."""

    def __call__(self) -> dict[str, Any]:
        by_env = {s.env: s.path for s in settings_table(self.settings_cls)}
        found: dict[str, Any] = {}
        for variable, value in os.environ.items():
            path = by_env.get(variable.upper())
            if path is not None:
                _put(found, path, value)
        return found


class SecretFileSource(_Source):
    """``HOMEIQ_<NAME>_FILE``: the setting read from a file (surrounding space stripped)."""

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for setting in settings_table(self.settings_cls):
            if not setting.from_file:
                continue
            env = f"{setting.env}_FILE"
            path = os.environ.get(env)
            if not path:
                continue
            try:
                _put(found, setting.path, Path(path).read_text(encoding="utf-8").strip())
            except OSError as exc:
                raise ConfigError(env, f"cannot read {path}: {exc.strerror}") from exc
        return found


class TomlFileSource(_Source):
    """The TOML file named by ``HOMEIQ_CONFIG``: flat keys (``influxdb_url``) or tables
    (``[influxdb]`` ``url``), case-insensitive. An unknown key is kept where it was
    written, so validation refuses it under its own name."""

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_FILE_ENV)
        if not path:
            return {}
        try:
            with Path(path).open("rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(CONFIG_FILE_ENV, f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(CONFIG_FILE_ENV, f"{path} is not valid TOML: {exc}") from exc
        by_name = {s.name: s.path for s in settings_table(self.settings_cls)}
        groups = {name for name, info in self.settings_cls.model_fields.items() if sub_model(info)}
        found: dict[str, Any] = {}
        for key, value in data.items():
            key = str(key).lower()
            if key in groups and isinstance(value, dict):
                for inner, item in value.items():
                    _put(found, (key, str(inner).lower()), item)
            else:
                _put(found, by_name.get(key, (key,)), value)
        return found


def check_environment(model: type[BaseModel], allow: Iterable[str]) -> None:
    """ConfigError for the first ``HOMEIQ_*`` variable that is no setting of ``model``
    (nor its ``_FILE``, nor allowed), with the closest valid name."""
    allowed = NOT_SETTINGS | {name.strip().upper() for name in allow}
    table = settings_table(model)
    known = {s.env for s in table} | {f"{s.env}_FILE" for s in table if s.from_file}
    for variable in sorted(os.environ):
        name = variable.upper()
        if not name.startswith(ENV_PREFIX) or name in known or name in allowed:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see docs/settings.md"
        raise ConfigError(
            variable, f"unknown setting; {hint} (to keep it, add it to {ALLOW_UNKNOWN_ENV})"
        )
