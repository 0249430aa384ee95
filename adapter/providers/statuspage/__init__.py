"""Atlassian Statuspage: one incident per stream; components set, then restored to what they were."""

from adapter.providers.statuspage.provider import SKIPPED, Statuspage, StatuspageOptions

__all__ = ["SKIPPED", "Statuspage", "StatuspageOptions"]
