"""age encryption of backup archives (pyrage), readable by the standard ``age`` tool.

Two ways to encrypt, as age offers them:

* to **recipients** (``age1…`` public keys, ``HOMEIQ_BACKUP_RECIPIENTS``): the machine
  that makes backups holds no secret able to read them; verify and restore need the
  matching identity file (``HOMEIQ_BACKUP_IDENTITY_FILE`` or ``--identity``), as
  ``age -d -i FILE`` does. Streamed: memory stays flat whatever the archive's size.
* with a **passphrase** (``HOMEIQ_BACKUP_PASSPHRASE_FILE``): age's scrypt mode, which
  pyrage offers only on whole byte strings, so the archive is held in memory once while
  it is encrypted or decrypted. Fine for the embedded store of a home; recipients are
  the choice for archives of many gigabytes.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyrage
from pyrage import passphrase as age_passphrase
from pyrage import x25519

from homeiq.errors import ConfigError, DecryptionFailed

_AGE_HEADER = b"age-encryption.org/v1\n"


@dataclass(frozen=True, slots=True)
class Encryption:
    """How archives are encrypted: to recipients, or with a passphrase."""

    recipients: tuple[str, ...] = ()
    passphrase: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if bool(self.recipients) == (self.passphrase is not None):
            raise ConfigError(
                "HOMEIQ_BACKUP_RECIPIENTS",
                "set either HOMEIQ_BACKUP_RECIPIENTS (age public keys) or"
                " HOMEIQ_BACKUP_PASSPHRASE_FILE, not both and not neither",
            )
        for recipient in self.recipients:
            try:
                x25519.Recipient.from_str(recipient)
            except Exception:  # pyrage raises its own RecipientError, or ValueError
                raise ConfigError(
                    "HOMEIQ_BACKUP_RECIPIENTS",
                    f"{recipient[:12]}... is not an age public key (age1...)",
                ) from None

    def encrypt_file(self, source: Path, dest: Path) -> None:
        """Encrypt ``source`` into ``dest`` (written whole, then renamed into place)."""
        partial = dest.with_name(dest.name + ".partial")
        try:
            if self.passphrase is not None:
                partial.write_bytes(age_passphrase.encrypt(source.read_bytes(), self.passphrase))
            else:
                keys = [x25519.Recipient.from_str(r) for r in self.recipients]
                with source.open("rb") as reader, partial.open("wb") as writer:
                    pyrage.encrypt_io(reader, writer, keys)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)


@dataclass(frozen=True, slots=True)
class Decryption:
    """What opens archives: identities (secret keys) or a passphrase."""

    identities: tuple[Any, ...] = field(default=(), repr=False)
    passphrase: str | None = field(default=None, repr=False)

    @classmethod
    def from_identity_file(cls, path: Path) -> Decryption:
        """Identities from an age identity file (``age-keygen -o FILE``'s format)."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(
                "HOMEIQ_BACKUP_IDENTITY_FILE", f"cannot read {path}: {exc.strerror}"
            ) from None
        keys = []
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                try:
                    keys.append(x25519.Identity.from_str(line))
                except Exception:
                    raise ConfigError(
                        "HOMEIQ_BACKUP_IDENTITY_FILE", f"{path} holds a line that is not an age key"
                    ) from None
        if not keys:
            raise ConfigError("HOMEIQ_BACKUP_IDENTITY_FILE", f"{path} holds no age identity")
        return cls(identities=tuple(keys))

    def decrypt_file(self, source: Path, dest: Path) -> None:
        """Decrypt ``source`` into ``dest``; DecryptionFailed when it cannot."""
        with source.open("rb") as reader:
            if reader.read(len(_AGE_HEADER)) != _AGE_HEADER:
                raise DecryptionFailed(f"{source.name} is not an age-encrypted file")
        try:
            if self.passphrase is not None:
                dest.write_bytes(age_passphrase.decrypt(source.read_bytes(), self.passphrase))
            else:
                with source.open("rb") as reader, dest.open("wb") as writer:
                    pyrage.decrypt_io(reader, writer, list(self.identities))
        except Exception as exc:  # pyrage.DecryptError, or an I/O error mid-stream
            dest.unlink(missing_ok=True)
            raise DecryptionFailed(
                f"cannot decrypt {source.name}: wrong key or passphrase, or the archive is"
                f" damaged ({exc})"
            ) from None


def new_identity() -> tuple[str, str]:
    """A new (secret identity, public recipient) pair, as ``age-keygen`` makes them."""
    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def age_cli() -> str | None:
    """The ``age`` command, when installed (to decrypt by hand, and in tests)."""
    return shutil.which("age")
