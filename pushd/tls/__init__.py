"""HTTPS: certificates (parsing, checks, files), the router's TLS view of each app, ACME."""
