"""When the renewer orders a certificate, what it keeps after a failure, and the files it
leaves: fakes for the CA and the router, real files in a temporary folder."""

from __future__ import annotations

import datetime as dt
import stat
from types import SimpleNamespace

import pytest

from pushd.errors import CertificateError, UsageError
from pushd.models import App
from pushd.settings import load
from pushd.tls.files import CertFiles
from pushd.tls.renewal import Renewer, backoff, due
from tests.tlsgen import make_ca, make_leaf

DAY = 86400.0


class FakeStore:
    def __init__(self, domains: list[str]) -> None:
        self.app_row = App(7, "shop", "alice", 0.0)
        self._domains = domains

    def apps(self) -> list[App]:
        return [self.app_row]

    def domains(self, app_id: int) -> list[str]:
        return list(self._domains)


class FakeCA:
    def __init__(self, ca, error: str | None = None) -> None:
        self.ca, self.error, self.orders = ca, error, []

    def issue(self, domains: list[str]) -> tuple[bytes, bytes]:
        self.orders.append(domains)
        if self.error:
            raise CertificateError(self.error)
        return make_leaf(domains, self.ca, start=dt.datetime.now(dt.UTC)
                         - dt.timedelta(minutes=1), days=90)


@pytest.fixture
def setup(tmp_path):
    files = CertFiles(tmp_path / "certs")
    store = FakeStore(["shop.example.com"])
    platform = SimpleNamespace(
        settings=SimpleNamespace(acme_renew_days=30.0, https_port=0, domain="localhost"),
        certs=files, store=store, notify=lambda: None)
    return platform, files


def test_orders_when_enabled_and_keeps_the_certificate(setup):
    platform, files = setup
    ca = FakeCA(make_ca())
    renewer = Renewer(platform, lambda: ca)
    renewer.run_once()
    assert ca.orders == []  # not enabled
    files.update_state(7, auto=True)
    renewer.run_once()
    assert ca.orders == [["shop.example.com"]]
    cert = files.app_cert(7)
    assert cert.source == "acme" and cert.info.covers("shop.example.com")
    assert stat.S_IMODE(cert.key_path.stat().st_mode) == 0o600
    assert files.state(7)["status"] == "ok"
    renewer.run_once()
    assert len(ca.orders) == 1  # 90 days left: not due


def test_failure_is_kept_with_the_error_and_backed_off(setup):
    platform, files = setup
    clock = [1_000_000.0]
    ca = FakeCA(make_ca(), error="ACME error: rejectedIdentifier :: blocked")
    renewer = Renewer(platform, lambda: ca, clock=lambda: clock[0])
    files.update_state(7, auto=True)
    renewer.run_once()
    state = files.state(7)
    assert state["status"] == "failing" and state["failures"] == 1
    assert state["error"] == "ACME error: rejectedIdentifier :: blocked"
    renewer.run_once()
    assert len(ca.orders) == 1  # backing off
    clock[0] += 61
    renewer.run_once()
    assert len(ca.orders) == 2 and files.state(7)["failures"] == 2
    assert files.app_cert(7) is None  # nothing was installed


def test_due_reasons():
    ca = make_ca()
    files_now = dt.datetime.now(dt.UTC).timestamp()
    assert due({}, None, ["a.example"], files_now, dt.timedelta(days=30)) is None
    assert due({"auto": True}, None, [], files_now, dt.timedelta(days=30)) is None
    assert due({"auto": True}, None, ["a.example"], files_now,
               dt.timedelta(days=30)) == "no certificate yet"
    chain, key = make_leaf(["a.example"], ca, start=dt.datetime.now(dt.UTC)
                           - dt.timedelta(days=70), days=90)
    from pushd.tls import certs
    cert = SimpleNamespace(source="acme", info=certs.parse_chain(chain))
    assert due({"auto": True}, cert, ["a.example"], files_now,
               dt.timedelta(days=30)).startswith("expires in 20.0 days")
    assert due({"auto": True}, cert, ["a.example"], files_now, dt.timedelta(days=10)) is None
    assert due({"auto": True}, cert, ["a.example", "b.example"], files_now,
               dt.timedelta(days=10)) == "not covering b.example"
    assert due({"auto": True, "next_attempt": files_now + 5}, None, ["a.example"], files_now,
               dt.timedelta(days=30)) is None
    assert [backoff(n) for n in (1, 2, 3)] == [60, 120, 240] and backoff(30) == DAY


def test_files_are_named_by_fingerprint_and_forgotten(tmp_path):
    files = CertFiles(tmp_path / "certs")
    ca = make_ca()
    first = files.install_app(3, *make_leaf(["a.example"], ca), "manual")
    second = files.install_app(3, *make_leaf(["a.example"], ca), "manual")
    assert first.cert_path != second.cert_path and not first.cert_path.exists()
    assert files.app_cert(3).info.fingerprint == second.info.fingerprint
    files.forget(3)
    assert files.app_cert(3) is None and not (tmp_path / "certs" / "app-3").exists()
    platform = files.platform_cert("pushd.example")
    assert platform.source == "self-signed" and platform.info.covers("x.pushd.example")
    assert files.platform_cert("pushd.example").cert_path == platform.cert_path  # kept


def test_https_settings(tmp_path):
    settings = load({"state_dir": str(tmp_path), "https_port": 8443},
                    env={"PUSHD_TRUSTED_PROXIES": "10.0.0.1, 192.168.1.0/24"})
    assert settings.https_port == 8443
    assert settings.trusted_proxies == ("10.0.0.1/32", "192.168.1.0/24")
    with pytest.raises(UsageError, match="trusted_proxies"):
        load({"state_dir": str(tmp_path)}, env={"PUSHD_TRUSTED_PROXIES": "example.com"})
    with pytest.raises(UsageError, match="must differ"):
        load({"state_dir": str(tmp_path), "https_port": 8080, "http_port": 8080}, env={})


def test_a_certificate_nginx_refuses_never_goes_live(setup):
    from pushd.errors import RouterError
    from pushd.tls.install import install

    platform, files = setup
    checked = []

    def check(routes):
        checked.append(routes)
        assert open(routes[0].tls[0].key).read().startswith("-----BEGIN")  # the candidate
        raise RouterError("[emerg] SSL_CTX_use_PrivateKey failed")

    platform.settings.https_port = 8443
    platform.router = SimpleNamespace(check=check)
    chain, key = make_leaf(["shop.example.com"], make_ca())
    with pytest.raises(RouterError):
        install(platform, platform.store.app_row, chain, key, "manual")
    assert checked and files.app_cert(7) is None
    assert not list((files.root / "app-7").glob("candidate*"))  # nothing left behind
