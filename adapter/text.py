"""Text from outside made safe to store (`storable`) and to show to people (`printable`)."""

from __future__ import annotations

import re

# What no database column can hold (NUL: PostgreSQL refuses it) or no encoder can write (a lone
# UTF-16 surrogate, which JSON's "\ud800" decodes to).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# C0 and C1 controls but tab and newline, and the two non-characters: they garble terminals and
# mail clients, and XML 1.0 (Atom feeds) forbids them even escaped.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ufffe\uffff]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def storable(text: str) -> str:
    """`text` with NUL and lone surrogates replaced by U+FFFD: the same input always maps to the
    same output, so dedupe keys made of it still match their repeats."""
    return _UNSTORABLE.sub(REPLACEMENT, text)


def printable(text: str) -> str:
    """`text` without control characters (tabs and line breaks kept, CR LF and CR as LF) and with
    lone surrogates as U+FFFD: readable in a mail client, a terminal and an XML feed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNPRINTABLE.sub("", _SURROGATE.sub(REPLACEMENT, text))
