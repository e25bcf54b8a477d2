"""The docker runtime: container dynos, release images, builds in containers."""
