"""Getting a certificate from an ACME CA (RFC 8555) with certbot's `acme` library: HTTP-01
challenges answered by files the router serves at /.well-known/acme-challenge/ on every
HTTP host. No threads, no state besides the account key: the renewer (renewal.py) decides
when to call it."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import CertificateError
from ..files import replace_file

USER_AGENT = "pushd"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:400]


class AcmeIssuer:
    def __init__(self, directory: str, ca_bundle: str, account_dir: Path,
                 challenge_dir: Path, timeout: float = 90.0) -> None:
        self.directory, self.ca_bundle = directory, ca_bundle
        self.account_dir, self.challenge_dir = Path(account_dir), Path(challenge_dir)
        self.timeout = timeout

    def _account_key(self) -> jose.JWKEC:
        path = self.account_dir / "acme-account.key"
        self.account_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            replace_file(path, key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()).decode(), mode=0o600, sync=True)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        return jose.JWKEC(key=key)

    def _client(self) -> client.ClientV2:
        key = self._account_key()
        verify: bool | str = self.ca_bundle or True
        net = client.ClientNetwork(key, alg=jose.ES256, verify_ssl=verify,  # type: ignore[arg-type]
                                   user_agent=USER_AGENT, timeout=30)
        directory = client.ClientV2.get_directory(self.directory, net)
        acme = client.ClientV2(directory, net=net)
        accounts = self.account_dir / "acme-accounts.json"
        try:
            known = json.loads(accounts.read_text())
        except (OSError, ValueError):
            known = {}
        uri = known.get(self.directory)
        if uri:
            net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
            return acme
        try:
            regr = acme.new_account(messages.NewRegistration.from_data(
                terms_of_service_agreed=True))
            uri = regr.uri
        except errors.ConflictError as err:  # the key has an account there already
            uri = err.location
            net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
        replace_file(accounts, json.dumps({**known, self.directory: uri}), mode=0o600)
        return acme

    def issue(self, domains: list[str]) -> tuple[bytes, bytes]:
        """(fullchain PEM, key PEM) for `domains`; CertificateError with the CA's error."""
        key = ec.generate_private_key(ec.SECP256R1())
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        tokens: list[Path] = []
        try:
            acme = self._client()
            order = acme.new_order(crypto_util.make_csr(key_pem, domains))
            for authz in order.authorizations:
                if authz.body.status == messages.STATUS_VALID:
                    continue
                chall = next((c for c in authz.body.challenges
                              if isinstance(c.chall, challenges.HTTP01)), None)
                if chall is None:
                    raise CertificateError(f"ACME: no http-01 challenge offered for "
                                           f"{authz.body.identifier.value}")
                response, validation = chall.response_and_validation(acme.net.key)
                token = self.challenge_dir / chall.chall.encode("token")
                tokens.append(token)
                replace_file(token, validation, mode=0o644)
                acme.answer_challenge(chall, response)
            deadline = dt.datetime.now() + dt.timedelta(seconds=self.timeout)
            order = acme.poll_and_finalize(order, deadline)
        except CertificateError:
            raise
        except messages.Error as err:
            raise CertificateError(f"ACME error: {_one_line(err)}") from None
        except errors.Error as err:
            raise CertificateError(f"ACME error: {_one_line(err)}") from None
        except (OSError, ValueError) as err:  # requests' errors are OSErrors
            raise CertificateError(f"ACME error: {_one_line(err)}") from None
        finally:
            for token in tokens:
                try:
                    os.unlink(token)
                except OSError:
                    pass
        return order.fullchain_pem.encode(), key_pem
