"""Where certificates and keys live: `<state>/certs/`, root's alone (0700 folders, 0600
files). Files are named by the certificate's fingerprint, so a new certificate is a new path
(a new router config, a reload) and the live config never points at a half-written file."""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import CertificateError
from ..files import replace_file
from . import certs

PLATFORM = "platform"


@dataclass(frozen=True)
class Installed:
    cert_path: Path
    key_path: Path
    info: certs.Certificate
    source: str  # "manual" (certs:add), "acme" (certs:auto) or "self-signed"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CertFiles:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # parsed certificates by file name: names are fingerprints, so never stale; the
        # supervisor asks on every pass
        self._parsed: dict[Path, certs.Certificate] = {}

    def _dir(self, owner: str) -> Path:
        path = self.root / owner
        for folder in (self.root, path):
            folder.mkdir(mode=0o700, exist_ok=True)
            folder.chmod(0o700)
        return path

    @staticmethod
    def _owner(app_id: int) -> str:
        return f"app-{int(app_id)}"

    # -- reading ---------------------------------------------------------------------------
    def _current(self, owner: str) -> Installed | None:
        folder = self.root / owner
        try:
            pointer = json.loads((folder / "current.json").read_text())
            cert_path = folder / f"{pointer['name']}.crt"
            info = self._parsed.get(cert_path)
            if info is None:
                info = certs.parse_chain(cert_path.read_bytes())
                if len(self._parsed) > 4096:
                    self._parsed.clear()
                self._parsed[cert_path] = info
        except (OSError, ValueError, KeyError, TypeError, CertificateError):
            return None
        return Installed(cert_path, folder / f"{pointer['name']}.key", info,
                         str(pointer.get("source", "manual")))

    def app_cert(self, app_id: int) -> Installed | None:
        return self._current(self._owner(app_id))

    def platform_cert(self, domain: str) -> Installed:
        """The certificate for *.DOMAIN: the operator's, else a self-signed one made now."""
        found = self._current(PLATFORM)
        if found is None or (found.source == "self-signed" and not found.info.covers(
                f"x.{domain}")):
            chain, key = certs.self_signed(domain, _utcnow())
            found = self._install(PLATFORM, chain, key, "self-signed")
        return found

    # -- writing ---------------------------------------------------------------------------
    def _install(self, owner: str, chain: bytes, key: bytes, source: str) -> Installed:
        folder = self._dir(owner)
        info = certs.parse_chain(chain)
        name = info.fingerprint.replace(":", "")[:24].lower()
        replace_file(folder / f"{name}.key", key.decode(), mode=0o600, sync=True)
        replace_file(folder / f"{name}.crt", chain.decode(), mode=0o600, sync=True)
        replace_file(folder / "current.json", json.dumps({"name": name, "source": source}),
                     mode=0o600, sync=True)
        for path in folder.iterdir():  # earlier certificates: no longer in any config
            if path.suffix in (".crt", ".key") and path.stem != name:
                path.unlink(missing_ok=True)
        return Installed(folder / f"{name}.crt", folder / f"{name}.key", info, source)

    def stage(self, owner_id: int | None, chain: bytes, key: bytes) -> tuple[Path, Path]:
        """Candidate files (for `nginx -t`) beside the live ones; dropped by `discard`."""
        folder = self._dir(PLATFORM if owner_id is None else self._owner(owner_id))
        cert_path, key_path = folder / "candidate.pem", folder / "candidate.key"
        replace_file(key_path, key.decode(), mode=0o600)
        replace_file(cert_path, chain.decode(), mode=0o600)
        return cert_path, key_path

    def discard(self, owner_id: int | None) -> None:
        folder = self.root / (PLATFORM if owner_id is None else self._owner(owner_id))
        for name in ("candidate.pem", "candidate.key"):
            (folder / name).unlink(missing_ok=True)

    def install_app(self, app_id: int, chain: bytes, key: bytes, source: str) -> Installed:
        return self._install(self._owner(app_id), chain, key, source)

    def install_platform(self, chain: bytes, key: bytes) -> Installed:
        return self._install(PLATFORM, chain, key, "manual")

    def remove_app(self, app_id: int) -> bool:
        folder = self.root / self._owner(app_id)
        had = (folder / "current.json").exists()
        for path in folder.glob("*"):
            if path.suffix in (".crt", ".key", ".pem") or path.name == "current.json":
                path.unlink(missing_ok=True)
        return had

    # -- per app HTTPS settings and ACME state ---------------------------------------------
    def state(self, app_id: int) -> dict:
        try:
            data = json.loads((self.root / self._owner(app_id) / "https.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def update_state(self, app_id: int, **changes: object) -> dict:
        data = {**self.state(app_id), **changes}
        replace_file(self._dir(self._owner(app_id)) / "https.json", json.dumps(data),
                     mode=0o600)
        return data

    def forget(self, app_id: int) -> None:
        """Everything of a destroyed app (its id may go to a new app)."""
        folder = self.root / self._owner(app_id)
        if folder.is_dir():
            for path in folder.iterdir():
                path.unlink(missing_ok=True)
            os.rmdir(folder)
