"""The `pnc` command line."""
