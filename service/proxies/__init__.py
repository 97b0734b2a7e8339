"""Proxy implementations. Importing this package stays torch-free (the API reads ``catalog`` through it);
``registry.load_implementations()`` imports the modules below, whose decorators register every proxy."""

IMPLEMENTATION_MODULES = (
    "az_nas",
    "classic",
    "cost",
    "epsinas",
    "gradients",
    "intrain",
    "synflow",
    "meco",
    "swap",
    "vkdnw",
    "naswot",
    "zen",
    "tenas",
)
