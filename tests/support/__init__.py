"""Helpers shared by the test suites (real components, fixtures)."""
