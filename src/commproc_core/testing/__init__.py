"""Test helpers for commproc and its plugins."""
