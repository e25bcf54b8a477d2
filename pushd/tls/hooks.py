"""The daemon's wiring of automatic certificates: the renewer with an ACME issuer built from
the settings each time (a changed acme_directory takes effect at the next order)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .acmeclient import AcmeIssuer
from .renewal import Renewer

if TYPE_CHECKING:
    from ..platform import Platform


def start_renewer(platform: Platform) -> Renewer:
    settings = platform.settings

    def issuer() -> AcmeIssuer:
        return AcmeIssuer(settings.acme_directory, settings.acme_ca_bundle,
                          platform.paths.root / "certs",
                          platform.paths.nginx_dir / "acme-challenge")

    renewer = Renewer(platform, issuer)
    platform.renewer = renewer
    renewer.start()
    return renewer
