"""The embedded status page: a delivered notice is a published one (see adapter.web.status)."""

from __future__ import annotations

from adapter.providers.base import Message, Provider


class BuiltinStatusPage(Provider):
    type = "builtin"

    def send(self, message: Message) -> str:
        # The page reads delivered notices from the store, so publishing is marking delivered;
        # going through the outbox keeps the page in the same order as every other provider.
        return f"{self.name}/{message.notice_id}"
