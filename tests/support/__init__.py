"""Helpers shared by the tests: real processes, sinks and configs."""
