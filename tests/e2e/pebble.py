"""A real ACME CA on loopback for tests: Debian's pebble, its challenge port pointed at
pushd's router, names resolved to 127.0.0.1 by pebble-challtestsrv's DNS."""

from __future__ import annotations

import json
import os
import random
import socket
import ssl
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.polling import wait_until
from tests.tlsgen import make_ca, make_leaf


def low_port() -> int:
    """A free loopback port below the kernel's ephemeral range (tests stay under 32768)."""
    while True:
        port = random.randint(30000, 32767)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


@dataclass
class Pebble:
    root: Path
    http_port: int  # pushd's router: where pebble's VA asks for HTTP-01 tokens
    validity: int = 3600  # seconds of the certificates it issues
    blocked: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.port, self.management, self.dns = low_port(), low_port(), low_port()
        self.procs: list[subprocess.Popen] = []
        self.ca_bundle = self.root / "pebble-tls-ca.pem"  # pebble's own HTTPS

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.port}/dir"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        ca = make_ca("pebble TLS test CA")
        chain, key = make_leaf(["localhost"], ca, ips=["127.0.0.1"], days=30)
        (self.root / "pebble.crt").write_bytes(chain)
        (self.root / "pebble.key").write_bytes(key)
        self.ca_bundle.write_bytes(chain.split(b"-----END CERTIFICATE-----\n", 1)[1])
        config = {"pebble": {
            "listenAddress": f"127.0.0.1:{self.port}",
            "managementListenAddress": f"127.0.0.1:{self.management}",
            "certificate": str(self.root / "pebble.crt"),
            "privateKey": str(self.root / "pebble.key"),
            "httpPort": self.http_port, "tlsPort": low_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
            "domainBlocklist": list(self.blocked),
            "certificateValidityPeriod": self.validity}}
        (self.root / "pebble.json").write_text(json.dumps(config))
        log = (self.root / "pebble.log").open("ab")
        self.procs.append(subprocess.Popen(
            ["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
             "-dns01", f"127.0.0.1:{self.dns}", "-http01", "", "-https01", "",
             "-tlsalpn01", "", "-management", f"127.0.0.1:{low_port()}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_WFE_NONCEREJECT="0")
        self.procs.append(subprocess.Popen(
            ["pebble", "-config", str(self.root / "pebble.json"),
             "-dnsserver", f"127.0.0.1:{self.dns}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env))
        wait_until(self._answers, timeout=30)

    def _get(self, url: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(url, context=context, timeout=5) as answer:
            return answer.read()

    def _answers(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise AssertionError(f"pebble ended: {(self.root / 'pebble.log').read_text()}")
        try:
            return b"newOrder" in self._get(self.directory)
        except OSError:
            return False

    def issuing_root(self) -> Path:
        """The root pebble signs with (new at each start), for `curl --cacert`."""
        path = self.root / "pebble-root.pem"
        path.write_bytes(self._get(f"https://127.0.0.1:{self.management}/roots/0"))
        return path

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
