"""Inbound formats, one module each: pure parse(raw) -> signals, no I/O."""
