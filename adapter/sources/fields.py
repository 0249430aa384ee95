"""Field types the inbound parsers share: storable text, the bounds of its columns, times in range."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, ValidationError

from adapter.text import storable

# Times are stored and compared in UTC; outside these years a time is a sender's bug (Go's zero
# time in a zone east of UTC, year 9999 with an offset), and some cannot even be converted.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(3000, 1, 1, tzinfo=UTC)  # excluded

# Lengths of the columns inbound values land in (adapter/store/schema.py; a test keeps them equal).
FINGERPRINT_MAX = 128  # alerts.fingerprint
INCIDENT_TYPE_MAX = 64  # incidents.incident_type
INBOUND_KEY_MAX = 255  # inbound_events.key: X-Webhook-Id and PagerDuty event ids

# Inbound text as it will be stored: NUL and lone surrogates as U+FFFD, so the same input always
# maps to the same value (dedupe keys made of it still match their repeats).
Text = Annotated[str, AfterValidator(storable)]


def iso_time(value: Any) -> Any:
    """An ISO 8601 date and time string read as a datetime; numbers and other formats refused."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an ISO 8601 date and time string")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError("must be an ISO 8601 date and time") from None


def in_range(moment: datetime) -> datetime:
    """`moment` (aware), or ValueError when it lies outside [EARLIEST, LATEST) in UTC."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+14:00 has no UTC value
        utc = None
    if utc is None or not EARLIEST <= utc < LATEST:
        raise ValueError(f"must lie between the years {EARLIEST.year} and {LATEST.year - 1} (UTC)")
    return moment


# An aware time, given as an ISO 8601 string, between 1970 and 2999 in UTC.
Time = Annotated[AwareDatetime, BeforeValidator(iso_time), AfterValidator(in_range)]


def error_details(error: ValidationError, *prefix: str | int) -> list[dict[str, Any]]:
    """Each problem as {"field": "alerts.0.startsAt", "message"}, without the input's value."""
    return [
        {"field": ".".join(str(p) for p in (*prefix, *item["loc"])) or "(body)", "message": item["msg"]}
        for item in error.errors(include_url=False, include_input=False)
    ]
