"""zcscore scoring core. Import ``service.engine`` for the torch parts; this package stays torch-free."""
