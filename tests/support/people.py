"""The people tests act as: one author per role."""

from __future__ import annotations

from adapter.engine.humans import Author

ONCALL = Author("oncall", "author", "SRE")
APPROVER = Author("lead", "approver", "SRE")
ADMIN = Author("root", "admin")
