"""Kyverno as the suite drives it: policies rendered, reports read, install, lockout."""
