"""Correlation, severity, and planning of notices: the rules between inbound signals and the outbox."""
