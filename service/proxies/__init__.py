"""Proxy implementations; importing this package registers all of them (see ``catalog`` for specs)."""

from service.proxies import cost  # noqa: F401
