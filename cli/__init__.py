"""The `knet` command (installed as the package knet.cli)."""
