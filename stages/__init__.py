"""Thin command-line entry points that DVC calls (``python -m stages.<name>``)."""
