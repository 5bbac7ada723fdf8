"""Fixtures shared by every test folder: moto's SQS (in-process and over HTTP)."""

pytest_plugins = ["commproc_core.testing.moto"]
