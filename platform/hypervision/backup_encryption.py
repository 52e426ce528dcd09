"""Encryption at rest of the backup archives, with age (pyrage, the Rust `rage` library).

See docs/runbook.md, "Backups and restore". An encrypted archive's data files are written
through age as they are produced (`pg_dump` output and the gzip member copies), so no
plain copy ever touches the backup volume:

    databases/hypervision.dump.age      members/<slug>/<table>.copy.gz.age
    KEYCHECK.age                        a known text, to check an identity before a restore

The archive is encrypted for public keys only (`HV_BACKUP_AGE_RECIPIENTS`); the private
key (the identity) is needed by `hypervision backup restore` alone and must live outside
the backup folder. manifest.json and SHA256SUMS stay readable, so that archives can be
listed, rotated and checked (`sha256sum -c`) without the key; they hold names and counts,
not data.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pyrage
from pyrage import x25519

from hypervision.settings import Settings

SUFFIX = ".age"
KEYCHECK = "KEYCHECK.age"
KEYCHECK_TEXT = b"hypervision-backup-keycheck/1\n"


class EncryptionError(RuntimeError):
    """Keys missing, malformed or not matching an archive; the message says what to do."""


# Keys -----------------------------------------------------------------------------------


def parse_recipients(text: str) -> list[x25519.Recipient]:
    """Public keys from a setting or a recipients file: `age1...` separated by commas,
    spaces or new lines; `#` starts a comment."""
    keys = []
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for word in re.split(r"[\s,]+", line.strip()):
            if not word:
                continue
            try:
                keys.append(x25519.Recipient.from_str(word))
            except pyrage.RecipientError as exc:
                raise EncryptionError(
                    f"HV_BACKUP_AGE_RECIPIENTS: {word[:12]}... is not an age public key"
                    f" ({exc}); it starts with age1"
                ) from None
    return keys


def recipients(settings: Settings) -> list[x25519.Recipient]:
    return parse_recipients(settings.backup_age_recipients)


def load_identities(path: Path, backup_root: Path) -> list[x25519.Identity]:
    """The private keys of an age identity file (as `age-keygen` or `backup keygen` write
    it). Refused when it sits inside the backup folder: a key stored with the archives
    would make their encryption pointless."""
    resolved = path.expanduser().resolve()
    if resolved.is_relative_to(backup_root.resolve()):
        raise EncryptionError(
            f"the identity {resolved} is inside the backup folder {backup_root}: move it"
            " off the backup volume (the archives must not carry their own key)"
        )
    try:
        text = resolved.read_text(encoding="utf-8")
    except OSError as exc:
        raise EncryptionError(f"cannot read the identity file {resolved}: {exc}") from None
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("AGE-SECRET-KEY-"):
            try:
                found.append(x25519.Identity.from_str(line))
            except pyrage.IdentityError as exc:
                raise EncryptionError(f"{resolved}: malformed age secret key ({exc})") from None
    if not found:
        raise EncryptionError(f"{resolved} holds no age secret key (AGE-SECRET-KEY-1...)")
    return found


def generate(output: Path) -> str:
    """Write a new identity file (mode 0600, refused if it exists); returns its public key."""
    identity = x25519.Identity.generate()
    public = str(identity.to_public())
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"# hypervision backup key; public key: {public}\n{identity}\n")
    return public


# Streams --------------------------------------------------------------------------------


@contextlib.contextmanager
def encrypting(target: Path, keys: list[x25519.Recipient]) -> Iterator[IO[bytes]]:
    """A binary file object whose bytes land encrypted in `target` (mode 0600).

    age reads from the read end of a pipe in a thread while the caller writes to the
    other end, so the plain bytes only ever exist in memory, a block at a time.
    """
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def pump() -> None:
        try:
            with os.fdopen(read_fd, "rb") as source, _private(target) as out:
                pyrage.encrypt_io(source, out, keys)
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    thread = threading.Thread(target=pump, name="age-encrypt", daemon=True)
    thread.start()
    try:
        with os.fdopen(write_fd, "wb") as sink:
            yield sink
    finally:
        thread.join()
    if errors:
        raise EncryptionError(f"could not encrypt {target.name}: {errors[0]}")


def encrypt_stream(source: IO[bytes], target: Path, keys: list[x25519.Recipient]) -> None:
    """Encrypt everything `source` yields into `target` (mode 0600)."""
    with _private(target) as out:
        pyrage.encrypt_io(source, out, keys)


def write_keycheck(folder: Path, keys: list[x25519.Recipient]) -> None:
    with _private(folder / KEYCHECK) as out:
        out.write(pyrage.encrypt(KEYCHECK_TEXT, keys))


def check_identity(folder: Path, identities: list[x25519.Identity]) -> None:
    """Fail clearly, before anything is restored, if no identity opens this archive."""
    try:
        plain = pyrage.decrypt((folder / KEYCHECK).read_bytes(), identities)
    except OSError as exc:
        raise EncryptionError(f"{folder.name}: {KEYCHECK} cannot be read ({exc})") from None
    except pyrage.DecryptError:
        raise EncryptionError(
            f"the identity does not open archive {folder.name}: it was encrypted for other"
            " public keys (see its manifest.json, \"encryption\"); nothing was restored"
        ) from None
    if plain != KEYCHECK_TEXT:
        raise EncryptionError(f"{folder.name}: {KEYCHECK} does not hold the expected text")


def decrypt_to(source: Path, target: Path, identities: list[x25519.Identity]) -> None:
    """Decrypt a whole file into `target` (mode 0600): pg_restore needs a real file."""
    with source.open("rb") as src, _private(target) as out:
        try:
            pyrage.decrypt_io(src, out, identities)
        except pyrage.DecryptError as exc:
            raise EncryptionError(f"could not decrypt {source.name}: {exc}") from None


@contextlib.contextmanager
def decrypting(source: Path, identities: list[x25519.Identity]) -> Iterator[IO[bytes]]:
    """A binary file object reading `source`'s plain bytes, decrypted as they are read."""
    read_fd, write_fd = os.pipe()
    errors: list[BaseException] = []

    def pump() -> None:
        try:
            with source.open("rb") as src, os.fdopen(write_fd, "wb") as sink:
                pyrage.decrypt_io(src, sink, identities)
        except BrokenPipeError:
            pass  # the reader stopped early; its own error is what matters
        except BaseException as exc:  # handed to the caller below
            errors.append(exc)

    thread = threading.Thread(target=pump, name="age-decrypt", daemon=True)
    thread.start()
    reader = os.fdopen(read_fd, "rb")
    try:
        yield reader
    finally:
        reader.close()
        thread.join()
    if errors:
        raise EncryptionError(f"could not decrypt {source.name}: {errors[0]}")


@contextlib.contextmanager
def _private(path: Path) -> Iterator[Any]:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        yield handle
