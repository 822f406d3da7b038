"""The ``cx`` command line."""
