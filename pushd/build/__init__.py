"""The build phase: BuildpackBuilder runs classic buildpacks in a sandbox and makes slugs."""

from .builder import BuildpackBuilder, default_bundled_dir
from .buildpacks import validate_buildpack

__all__ = ["BuildpackBuilder", "default_bundled_dir", "validate_buildpack"]
