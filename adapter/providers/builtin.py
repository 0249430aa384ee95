"""The embedded status page: a delivered notice is a published one (see adapter.web.status)."""

from __future__ import annotations

from adapter.providers.base import Message, Provider


class BuiltinStatusPage(Provider):
    type = "builtin"
    # The page reads delivered notices from the store, so publishing is marking delivered: the
    # engine does that in the transaction that writes the notice (adapter.engine.notify).
    publishes_on_commit = True

    def send(self, message: Message) -> str:
        # Only a notice that waited behind an earlier one of its stream (a held first notice,
        # say) comes through the outbox, which keeps the page in order.
        return f"{self.name}/{message.notice_id}"
