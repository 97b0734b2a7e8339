"""Subcommands of the ``zcscore`` CLI."""
