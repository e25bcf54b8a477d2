"""Certificate checks before a certificate is stored: generated certificates, no files."""

from __future__ import annotations

import datetime as dt

import pytest

from pushd.errors import CertificateError
from pushd.tls import certs
from tests.tlsgen import NOW, make_ca, make_leaf


@pytest.fixture(scope="module")
def ca():
    return make_ca()


def test_a_matching_pair_is_described(ca):
    chain, key = make_leaf(["www.example.com", "example.com"], ca)
    info = certs.check_pair(chain, key, NOW)
    assert info.names == ("www.example.com", "example.com")
    assert info.issuer == "CN=pushd test CA" and not info.self_signed
    assert not info.ocsp
    assert info.expires_in(NOW) == dt.timedelta(days=89)
    assert certs.check_domains(info, ["app.localhost", "www.example.com"]) == ["www.example.com"]


def test_wrong_domain_is_refused_naming_both(ca):
    chain, key = make_leaf(["other.example.org"], ca)
    info = certs.check_pair(chain, key, NOW)
    with pytest.raises(CertificateError, match=r"is for other\.example\.org, which matches "
                       r"none of the app's domains \(app\.localhost, www\.example\.com\)"):
        certs.check_domains(info, ["app.localhost", "www.example.com"])


def test_key_of_another_certificate_is_refused(ca):
    chain, _ = make_leaf(["www.example.com"], ca)
    _, other_key = make_leaf(["www.example.com"], ca)
    with pytest.raises(CertificateError, match="Private key does not match the certificate"):
        certs.check_pair(chain, other_key, NOW)


def test_expired_and_not_yet_valid_are_refused(ca):
    chain, key = make_leaf(["www.example.com"], ca, start=NOW - dt.timedelta(days=100),
                           days=90)
    with pytest.raises(CertificateError, match="Certificate expired on 2026-11-18"):
        certs.check_pair(chain, key, NOW)
    chain, key = make_leaf(["www.example.com"], ca, start=NOW + dt.timedelta(days=2))
    with pytest.raises(CertificateError, match="not valid before 2026-11-30"):
        certs.check_pair(chain, key, NOW)


def test_wildcards_cover_one_label():
    assert certs.name_covers("*.example.com", "www.example.com")
    assert not certs.name_covers("*.example.com", "a.b.example.com")
    assert not certs.name_covers("*.example.com", "example.com")
    assert certs.name_covers("*.example.com", "*.example.com")  # an app's wildcard domain
    assert not certs.name_covers("www.example.com", "*.example.com")
    assert certs.name_covers("WWW.Example.com", "www.example.com")


def test_wildcard_certificate_matches_the_apps_subdomain(ca):
    chain, key = make_leaf(["*.example.com"], ca)
    info = certs.check_pair(chain, key, NOW)
    assert certs.check_domains(info, ["api.example.com", "x.y.example.com"]) == [
        "api.example.com"]


def test_bundle_in_either_order_and_garbage_refused(ca):
    chain, key = make_leaf(["www.example.com"], ca)
    assert certs.split_bundle(chain + key) == certs.split_bundle(key + b"junk\n" + chain)
    got_chain, got_key = certs.split_bundle(chain + key)
    assert got_chain.count(b"BEGIN CERTIFICATE") == 2 and b"PRIVATE KEY" in got_key
    with pytest.raises(CertificateError, match="No certificate found"):
        certs.split_bundle(key)
    with pytest.raises(CertificateError, match="found 0"):
        certs.split_bundle(chain)
    with pytest.raises(CertificateError, match="found 2"):
        certs.split_bundle(chain + key + key)
    with pytest.raises(CertificateError, match="over 256 KB"):
        certs.split_bundle(b"x" * 300_000)


def test_messages_never_carry_the_key(ca):
    chain, key = make_leaf(["www.example.com"], ca)
    broken = key.replace(key.splitlines()[2], b"A" * 64)
    with pytest.raises(CertificateError) as caught:
        certs.check_pair(chain, broken, NOW)
    assert str(caught.value).startswith("Private key does not parse")
    assert key.splitlines()[1].decode() not in str(caught.value)


def test_self_signed_platform_certificate_covers_every_app():
    chain, key = certs.self_signed("pushd.example", NOW)
    info = certs.check_pair(chain, key, NOW)
    assert info.self_signed and info.covers("myapp.pushd.example")
    assert info.covers("pushd.example") and not info.covers("a.b.pushd.example")


def test_weak_rsa_keys_and_control_characters(ca):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evil\x1b[2Jname.example")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(NOW - dt.timedelta(days=1))
            .not_valid_after(NOW + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    chain = cert.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with pytest.raises(CertificateError, match="RSA key of 1024 bits"):
        certs.check_pair(chain, pem, NOW)
    info = certs.parse_chain(chain)
    assert "\x1b" not in info.subject and "\x1b" not in info.names[0]


def test_only_admins_name_certificate_files(tmp_path, ca):
    from types import SimpleNamespace

    from pushd.commands.certs import read_bundle
    from pushd.errors import UsageError

    chain, key = make_leaf(["www.example.com"], ca)
    (tmp_path / "c.pem").write_bytes(chain)
    (tmp_path / "k.pem").write_bytes(key)
    files = [str(tmp_path / "c.pem"), str(tmp_path / "k.pem")]

    def ctx(admin: bool):
        return SimpleNamespace(user=SimpleNamespace(is_admin=admin),
                               read_stdin=lambda: b"from stdin")

    assert read_bundle(ctx(True), files, "x").startswith(chain)
    assert read_bundle(ctx(False), [], "x") == b"from stdin"
    with pytest.raises(UsageError, match="Over SSH the certificate comes on stdin"):
        read_bundle(ctx(False), ["/etc/shadow", "/etc/shadow"], "x")
