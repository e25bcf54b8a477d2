"""HTTPS through the real router: nginx with real certificates, HTTP/2, forwarded headers,
redirect-https, trusted proxies, and certificates from a real ACME CA (pebble) on loopback."""

from __future__ import annotations

import stat

import pytest

from tests.polling import wait_until
from tests.tlsgen import make_ca, make_leaf

from .harness import PushdUnderTest, new_root, python_app, sh
from .pebble import Pebble, low_port

APP = "tls-https"
HOST = "www.tls-https.test"  # a custom domain: reached with curl --resolve
ACME_HOST = "acme.tls-https.test"
BLOCKED = "blocked.tls-https.test"  # pebble refuses it: a failing order
VALIDITY = 30  # seconds of pebble's certificates: renewal is due within the test
RENEW_SECONDS = 22  # renewed with this much left, so ~8 s after each issue


@pytest.fixture(scope="module")
def tls():
    root = new_root("pushd-https-")
    platform = PushdUnderTest(root)
    pebble = Pebble(root / "pebble", platform.http_port, validity=VALIDITY, blocked=(BLOCKED,))
    pebble.start()
    platform.settings = {
        "https_port": low_port(), "trusted_proxies": ["127.0.0.2"],
        "acme_directory": pebble.directory, "acme_ca_bundle": str(pebble.ca_bundle),
        "acme_renew_days": RENEW_SECONDS / 86400, "boot_timeout": 8, "stop_timeout": 5,
        "drain_seconds": 0.5, "build_timeout": 300, "dyno_disk_mb": 64}
    try:
        platform.start()
        platform.deploy(APP, python_app("tls app"))
        platform.https_port = platform.settings["https_port"]
        yield platform, pebble
    finally:
        platform.stop(everything=True)
        pebble.stop()
        sh(["rm", "-rf", str(root)])


def curl(platform: PushdUnderTest, url: str, *extra: str, check: bool = True
         ) -> tuple[str, str, str]:
    """(body, status, HTTP version) of one request with curl; unless `check`, a failed
    request (e.g. a certificate not yet served) gives ("", "", curl's error)."""
    done = sh(["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code} "
               "%{http_version} %{redirect_url}", *extra, url])
    if not check and done.returncode != 0:
        return "", "", done.stderr
    assert done.returncode == 0, done.stderr
    body, _, tail = done.stdout.rpartition("\n")
    status, version, *_ = tail.split(" ")
    return body, status, version


def https_url(platform: PushdUnderTest, host: str, path: str = "/") -> str:
    return f"https://{host}:{platform.https_port}{path}"


def resolve(platform: PushdUnderTest, host: str) -> list[str]:
    return ["--resolve", f"{host}:{platform.https_port}:127.0.0.1",
            "--resolve", f"{host}:{platform.http_port}:127.0.0.1"]


def test_platform_certificate_http2_and_forwarded_headers(tls):
    platform, _ = tls
    host = f"{APP}.localhost"
    body, status, version = curl(platform, https_url(platform, host, "/header/X-Forwarded-Proto"),
                                 "--http2", "--insecure")  # self-signed *.localhost
    assert (body, status, version) == ("https", "200", "2")
    port, _, _ = curl(platform, https_url(platform, host, "/header/X-Forwarded-Port"),
                      "--insecure")
    assert port == str(platform.https_port)
    plain, _, _ = curl(platform, f"http://{host}:{platform.http_port}/header/X-Forwarded-Proto")
    assert plain == "http"
    shown = sh(["openssl", "s_client", "-connect", f"127.0.0.1:{platform.https_port}",
                "-servername", host, "-tls1_1"], input="")
    assert "Cipher is (NONE)" in shown.stdout or shown.returncode != 0  # no TLS 1.1


def test_certs_add_refuses_wrong_domain_and_key_then_serves(tls):
    platform, _ = tls
    assert platform.ssh("domains:add", APP, HOST).returncode == 0
    ca = make_ca()
    (platform.root / "ca.pem").write_bytes(make_leaf(["x.example"], ca)[0].split(
        b"-----END CERTIFICATE-----\n", 1)[1])
    wrong_chain, wrong_key = make_leaf(["www.other.test"], ca)
    refused = platform.ssh("certs:add", APP, input=(wrong_chain + wrong_key).decode())
    assert refused.returncode != 0
    assert refused.stderr.strip().splitlines()[-1].endswith(
        f"Certificate is for www.other.test, which matches none of the app's domains "
        f"({APP}.localhost, {HOST})"), refused.stderr
    chain, key = make_leaf([HOST], ca)
    mismatch = platform.ssh("certs:add", APP, input=(chain + wrong_key).decode())
    assert mismatch.returncode != 0 and "does not match" in mismatch.stderr
    added = platform.ssh("certs:add", APP, input=(chain + key).decode())
    assert added.returncode == 0, added.stderr
    assert f"Certificate for {HOST}, expires" in added.stdout
    assert "PRIVATE KEY" not in added.stdout + added.stderr
    cacert = ["--cacert", str(platform.root / "ca.pem"), *resolve(platform, HOST)]
    body = wait_until(lambda: curl(platform, https_url(platform, HOST), *cacert, check=False)[0]
                      .startswith("tls app") or None, timeout=20)
    assert body
    listed = platform.ssh("certs", APP).stdout
    assert HOST in listed and "UTC (" in listed and "SNI" in listed
    assert f"{HOST}  (certificate expires " in platform.ssh("domains", APP).stdout
    info = platform.ssh("certs:info", APP).stdout
    assert "Issuer:         CN=pushd test CA" in info and "PRIVATE" not in info
    keys = list((platform.state / "certs").glob("app-*/*.key"))
    assert keys and all(stat.S_IMODE(k.stat().st_mode) == 0o600 for k in keys)
    assert stat.S_IMODE((platform.state / "certs").stat().st_mode) == 0o700
    log = (platform.state / "pushd.log").read_text()
    assert key.decode().splitlines()[1] not in log


def test_redirect_https_is_a_301_except_acme_challenges(tls):
    platform, _ = tls
    enabled = platform.ssh("features:enable", APP, "redirect-https")
    assert enabled.returncode == 0, enabled.stderr
    url = f"http://{APP}.localhost:{platform.http_port}/some/path?q=1"
    wait_until(lambda: curl(platform, url)[1] == "301", timeout=20)
    done = sh(["curl", "-sS", "-o", "/dev/null", "-w", "%{redirect_url}", url])
    assert done.stdout == f"https://{APP}.localhost:{platform.https_port}/some/path?q=1"
    challenge = f"http://{APP}.localhost:{platform.http_port}/.well-known/acme-challenge/x"
    assert curl(platform, challenge)[1] == "404"  # served by the router, not redirected
    # a trusted proxy in front that terminated TLS itself is not redirected
    proxied = curl(platform, url.replace("/some/path?q=1", "/header/X-Forwarded-Proto"),
                   "--interface", "127.0.0.2", "-H", "X-Forwarded-Proto: https")
    assert proxied[:2] == ("https", "200")
    assert platform.ssh("features:disable", APP, "redirect-https").returncode == 0
    wait_until(lambda: curl(platform, url)[1] == "200", timeout=20)


def test_forwarded_headers_kept_from_trusted_proxies_only(tls):
    platform, _ = tls
    base = f"http://{APP}.localhost:{platform.http_port}/header/"
    spoof = ["-H", "X-Forwarded-Proto: https", "-H", "X-Forwarded-For: 203.0.113.9",
             "-H", "X-Forwarded-Port: 4443"]
    assert curl(platform, base + "X-Forwarded-Proto", *spoof)[0] == "http"
    assert curl(platform, base + "X-Forwarded-For", *spoof)[0] == "127.0.0.1"
    assert curl(platform, base + "X-Forwarded-Port", *spoof)[0] == str(platform.http_port)
    trusted = ["--interface", "127.0.0.2", *spoof]
    assert curl(platform, base + "X-Forwarded-Proto", *trusted)[0] == "https"
    assert curl(platform, base + "X-Forwarded-For", *trusted)[0] == "203.0.113.9, 127.0.0.2"
    assert curl(platform, base + "X-Forwarded-Port", *trusted)[0] == "4443"


def test_operator_sets_the_platform_certificate(tls):
    platform, _ = tls
    ca = make_ca("operator CA")
    chain, key = make_leaf(["*.localhost", f"{APP}.localhost"], ca)
    wrong_chain, wrong_key = make_leaf(["*.example.org"], ca)
    refused = platform.ssh("certs:platform", input=(wrong_chain + wrong_key).decode())
    assert refused.returncode != 0 and "matches none" in refused.stderr
    done = platform.ssh("certs:platform", input=(chain + key).decode())
    assert done.returncode == 0, done.stderr
    assert "Setting the certificate of *.localhost... done" in done.stdout
    root = platform.root / "operator-ca.pem"
    root.write_bytes(chain.split(b"-----END CERTIFICATE-----\n", 1)[1])
    body = wait_until(lambda: curl(platform, https_url(platform, f"{APP}.localhost"),
                                   "--cacert", str(root), check=False)[0], timeout=20)
    assert body.startswith("tls app")
    user = platform.ssh("certs:platform", user="alice", input=(chain + key).decode())
    assert user.returncode != 0  # admins only


def fingerprint(platform: PushdUnderTest) -> str | None:
    for line in platform.ssh("certs:info", APP).stdout.splitlines():
        if line.startswith("Fingerprint:") and "ACM" in platform.ssh("certs", APP).stdout:
            return line.split()[-1]
    return None


def test_acme_certificate_issued_renewed_and_failures_shown(tls):
    platform, pebble = tls
    assert platform.ssh("certs:remove", APP).returncode == 0
    assert platform.ssh("domains:remove", APP, HOST).returncode == 0
    assert platform.ssh("domains:add", APP, ACME_HOST).returncode == 0
    enabled = platform.ssh("certs:auto:enable", APP)
    assert enabled.returncode == 0, enabled.stderr
    first = wait_until(lambda: fingerprint(platform), timeout=60)
    status = platform.ssh("certs:auto", APP).stdout
    assert "Automatic Certificate Management is enabled" in status
    assert f"{ACME_HOST}" in status and "OK, expires" in status
    root = pebble.issuing_root()
    cacert = ["--cacert", str(root), *resolve(platform, ACME_HOST)]
    served = wait_until(lambda: (got := curl(platform, https_url(platform, ACME_HOST),
                                             "--http2", *cacert, check=False))[1] and got,
                        timeout=20)
    assert served[0].startswith("tls app") and served[1:] == ("200", "2")
    # the certificate lives 30 s and is renewed with 22 s left
    second = wait_until(lambda: (fp := fingerprint(platform)) != first and fp, timeout=60)
    assert second and second != first
    # a domain the CA refuses: the error is shown, HTTPS and HTTP keep serving
    assert platform.ssh("domains:add", APP, BLOCKED).returncode == 0
    failing = wait_until(lambda: "Last failure:" in (out := platform.ssh(
        "certs:auto", APP).stdout) and out, timeout=60)
    assert "ACME error" in failing and BLOCKED in failing, failing
    assert curl(platform, f"http://{APP}.localhost:{platform.http_port}/")[1] == "200"
    assert platform.ssh("certs:auto:disable", APP).returncode == 0
    assert "disabled" in platform.ssh("certs:auto", APP).stdout
