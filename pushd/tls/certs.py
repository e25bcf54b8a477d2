"""Certificates and keys: parsing and the checks done before one is stored. Pure (no files,
no clock of its own): tests feed generated certificates."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID, NameOID

from ..errors import CertificateError

_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.+?\r?\n-----END \1-----", re.DOTALL)
MAX_INPUT = 256 * 1024  # a fullchain and a key are a few KB


@dataclass(frozen=True)
class Certificate:
    """What `certs` and `certs:info` show, and what the router and renewal need."""

    names: tuple[str, ...]  # DNS names it is valid for (SAN, else the CN)
    not_before: dt.datetime
    not_after: dt.datetime
    issuer: str
    subject: str
    fingerprint: str  # SHA-256 of the leaf, hex with colons
    ocsp: bool  # it names an OCSP responder: the router staples its answer
    self_signed: bool

    def covers(self, host: str) -> bool:
        return any(name_covers(name, host) for name in self.names)

    def expires_in(self, now: dt.datetime) -> dt.timedelta:
        return self.not_after - now


def name_covers(name: str, host: str) -> bool:
    """Whether a certificate name covers a host: equal, or `*.S` for one label more than S
    (TLS wildcards match one label; an app's own `*.S` domain needs a `*.S` certificate)."""
    name, host = name.lower().rstrip("."), host.lower().rstrip(".")
    if name == host:
        return True
    if name.startswith("*.") and not host.startswith("*."):
        label, _, rest = host.partition(".")
        return bool(label) and rest == name[2:]
    return False


def split_bundle(data: bytes) -> tuple[bytes, bytes]:
    """The stdin of `certs:add`: the certificate chain's PEM blocks (leaf first) and one
    private key's PEM block, in any order, concatenated. -> (chain PEM, key PEM)."""
    if len(data) > MAX_INPUT:
        raise CertificateError(f"Certificate input over {MAX_INPUT // 1024} KB")
    certs, keys = [], []
    for match in _PEM_RE.finditer(data):
        kind = match.group(1)
        if kind == b"CERTIFICATE":
            certs.append(match.group(0))
        elif kind.endswith(b"PRIVATE KEY"):
            keys.append(match.group(0))
    if not certs:
        raise CertificateError("No certificate found: send the PEM certificate chain (leaf "
                               "first) followed by its PEM private key on stdin")
    if len(keys) != 1:
        raise CertificateError(f"Expected one PEM private key after the certificate chain, "
                               f"found {len(keys)}")
    return b"\n".join(certs) + b"\n", keys[0] + b"\n"


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
        names = san.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(dict.fromkeys(n.lower() for n in names))


def _has_ocsp(cert: x509.Certificate) -> bool:
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    except x509.ExtensionNotFound:
        return False
    return any(d.access_method == AuthorityInformationAccessOID.OCSP for d in aia.value)


def _printable(text: str, limit: int = 200) -> str:
    """Names inside a certificate are the uploader's: no control characters reach a
    terminal or a log line."""
    return "".join(c if c.isprintable() else "?" for c in text)[:limit]


def describe(leaf: x509.Certificate) -> Certificate:
    digest = leaf.fingerprint(hashes.SHA256()).hex().upper()
    return Certificate(
        names=tuple(_printable(n, 253) for n in _names(leaf)),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issuer=_printable(leaf.issuer.rfc4514_string()),
        subject=_printable(leaf.subject.rfc4514_string()),
        fingerprint=":".join(digest[i:i + 2] for i in range(0, len(digest), 2)),
        ocsp=_has_ocsp(leaf),
        self_signed=leaf.issuer == leaf.subject,
    )


def parse_chain(chain_pem: bytes) -> Certificate:
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as err:
        raise CertificateError(f"Certificate does not parse: {err}") from None
    return describe(chain[0])


def check_pair(chain_pem: bytes, key_pem: bytes, now: dt.datetime) -> Certificate:
    """The leaf certificate of a chain, if `key_pem` is its key and it is valid at `now`."""
    cert = parse_chain(chain_pem)
    leaf = x509.load_pem_x509_certificates(chain_pem)[0]
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as err:
        reason = "it is encrypted" if isinstance(err, TypeError) else str(err).splitlines()[0]
        raise CertificateError(f"Private key does not parse ({reason}): send it unencrypted, "
                               "in PEM") from None
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    if key.public_key().public_bytes(der, spki) != leaf.public_key().public_bytes(der, spki):
        raise CertificateError("Private key does not match the certificate")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 2048:
        raise CertificateError(f"RSA key of {key.key_size} bits: at least 2048 are needed")
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise CertificateError("Unsupported key type: use an RSA (2048+ bits) or ECDSA key")
    if cert.not_after <= now:
        raise CertificateError(f"Certificate expired on {cert.not_after:%Y-%m-%d %H:%M} UTC")
    if cert.not_before > now:
        raise CertificateError(f"Certificate is not valid before "
                               f"{cert.not_before:%Y-%m-%d %H:%M} UTC")
    return cert


def check_domains(cert: Certificate, domains: list[str]) -> list[str]:
    """The app's domains the certificate covers; refused when it covers none."""
    covered = [d for d in domains if cert.covers(d)]
    if not covered:
        listed = ", ".join(domains) if domains else "none: add one with domains:add"
        raise CertificateError(f"Certificate is for {', '.join(cert.names) or 'no name'}, "
                               f"which matches none of the app's domains ({listed})")
    return covered


def self_signed(domain: str, now: dt.datetime, days: int = 3650) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for `*.domain` and `domain`: HTTPS on a fresh install."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"*.{domain}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(f"*.{domain}"), x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
