"""``homeiq keys``: create, list and revoke API keys in the data directory's metadata."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING

from homeiq.api.scopes import SCOPES
from homeiq.cli.output import table, when
from homeiq.errors import ConfigError
from homeiq.settings import Settings

if TYPE_CHECKING:
    from homeiq.metadata.store import MetadataStore


def cmd_keys_create(settings: Settings, args: argparse.Namespace) -> int:
    """Create an API key and print it (the only time it is shown)."""
    from homeiq.api.auth import create_key
    from homeiq.metadata.store import MetadataStore

    metadata = MetadataStore.in_dir(settings.data_dir)
    try:
        key, stored = create_key(metadata, args.name, args.scope)
    except ValueError as exc:
        print(f"homeiq: {exc}", file=sys.stderr)
        return 2
    finally:
        metadata.close()
    print(key)  # alone on stdout: KEY=$(homeiq keys create ...) works
    print(
        f"key {stored.id} ({stored.name}, scopes {' '.join(stored.scopes)}) created;"
        " store it now, it is not shown again",
        file=sys.stderr,
    )
    return 0


def _existing_metadata(settings: Settings) -> MetadataStore:
    from homeiq.metadata.store import METADATA_DB, MetadataStore

    path = settings.data_dir / METADATA_DB
    if not path.exists():
        raise ConfigError("HOMEIQ_DATA_DIR", f"no metadata at {path} (run homeiq first)")
    return MetadataStore.in_dir(settings.data_dir)


def cmd_keys_list(settings: Settings, _args: argparse.Namespace) -> int:
    """Print every API key's record (never the keys)."""
    metadata = _existing_metadata(settings)
    try:
        keys = metadata.api_keys()
    finally:
        metadata.close()
    if not keys:
        print("no API keys")
        return 0
    rows = [
        (
            k.id,
            k.name,
            " ".join(k.scopes),
            when(k.created_at),
            when(k.last_used_at),
            when(k.revoked_at) or "",
        )
        for k in keys
    ]
    print(table(("id", "name", "scopes", "created", "last used", "revoked"), rows))
    return 0


def cmd_keys_revoke(settings: Settings, args: argparse.Namespace) -> int:
    """Revoke an API key at once."""
    metadata = _existing_metadata(settings)
    try:
        before = metadata.api_key(args.key_id)
        revoked = metadata.revoke_api_key(args.key_id, time.time_ns() // 1000)
    finally:
        metadata.close()
    if before is None or revoked is None:
        print(f"homeiq: no API key with id {args.key_id}", file=sys.stderr)
        return 1
    if before.revoked:
        print(f"key {revoked.id} ({revoked.name}) was already revoked")
    else:
        print(f"revoked key {revoked.id} ({revoked.name})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys create|list|revoke`` to the ``homeiq`` parser."""
    p = sub.add_parser("keys", help="manage API keys: create, list, revoke")
    keys_sub = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", help="create a key and print it (shown only once)")
    create.add_argument("--name", required=True, help="what the key is for, e.g. grafana")
    create.add_argument(
        "--scope",
        required=True,
        action="append",
        choices=SCOPES,
        help="read, write or admin (admin includes write, write includes read)",
    )
    create.set_defaults(func=cmd_keys_create, writes_data_dir=True)
    listing = keys_sub.add_parser("list", help="list keys with their scopes and last use")
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("key_id", type=int, help="the key's id, from keys list")
    revoke.set_defaults(func=cmd_keys_revoke, writes_data_dir=True)
