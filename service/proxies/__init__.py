"""Proxy implementations; importing this package registers all of them (see ``catalog`` for specs)."""

from service.proxies import az_nas, cost, epsinas, gradients, intrain  # noqa: F401
