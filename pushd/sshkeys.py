"""Public keys: parse an OpenSSH `authorized_keys`-style line, compute its fingerprint the
way `ssh-keygen -l` prints it (SHA256:base64, no padding)."""

from __future__ import annotations

import base64
import binascii
import hashlib

import paramiko

from .errors import Forbidden, UsageError

MIN_RSA_BITS = 2048  # what NIST and OpenSSH's own default consider safe today
KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
             "ecdsa-sha2-nistp521")


def fingerprint_blob(blob: bytes) -> str:
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def fingerprint(key: paramiko.PKey) -> str:
    return fingerprint_blob(key.asbytes())


def weakness(key: paramiko.PKey) -> str | None:
    """Why `key` is too weak to be accepted, in one line; None if it is fine."""
    if isinstance(key, paramiko.RSAKey) and key.get_bits() < MIN_RSA_BITS:
        return (f"RSA keys under {MIN_RSA_BITS} bits are refused (this one has "
                f"{key.get_bits()}): make a new one with ssh-keygen -t ed25519")
    return None


def parse_public_key(text: str) -> tuple[str, str]:
    """`ssh-ed25519 AAAA... comment` -> (normalised "type base64" line, fingerprint)."""
    fields = text.strip().split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        raise UsageError("Expected one OpenSSH public key line (ssh-ed25519 AAAA... comment) "
                         "on stdin")
    try:
        blob = base64.b64decode(fields[1], validate=True)
        key = paramiko.PKey.from_type_string(fields[0], blob)
    except (binascii.Error, ValueError, paramiko.SSHException) as err:
        raise UsageError(f"Not a valid {fields[0]} public key: {err}") from None
    weak = weakness(key)
    if weak is not None:
        raise Forbidden(weak)
    return f"{fields[0]} {fields[1]}", fingerprint_blob(blob)
