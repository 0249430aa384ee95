"""The field rules every parser shares: storable text, column bounds, times as strings in range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from adapter.sources import fields
from adapter.sources.pagerduty import EVENT_ID_MAX, INCIDENT_ID_MAX
from adapter.store import schema

TIME = TypeAdapter(fields.Time)


def test_bounds_are_the_lengths_of_the_columns_values_land_in() -> None:
    assert schema.alerts.c.fingerprint.type.length == fields.FINGERPRINT_MAX
    assert schema.incidents.c.incident_type.type.length == fields.INCIDENT_TYPE_MAX
    assert schema.inbound_events.c.key.type.length == fields.INBOUND_KEY_MAX
    assert len("pd-") + INCIDENT_ID_MAX == fields.FINGERPRINT_MAX
    assert EVENT_ID_MAX <= fields.INBOUND_KEY_MAX


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", datetime(1970, 1, 1, tzinfo=UTC)),
        ("1970-01-01T01:00:00+01:00", datetime(1970, 1, 1, tzinfo=UTC)),
        ("2999-12-31T23:59:59.999999Z", datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2015-07-17T08:42:58.315+0000", datetime(2015, 7, 17, 8, 42, 58, 315000, tzinfo=UTC)),
        (" 2026-11-26T20:06:35.164413123-04:30 ", datetime(2026, 11, 27, 0, 36, 35, 164413, tzinfo=UTC)),
    ],
)
def test_times_in_range_are_read_with_their_offset(text: str, expected: datetime) -> None:
    moment = TIME.validate_python(text)
    assert moment == expected and moment.tzinfo is not None


@pytest.mark.parametrize(
    "value",
    [
        "1969-12-31T23:59:59Z",
        "3000-01-01T00:00:00Z",
        "2999-12-31T23:00:00-05:00",  # 3000 in UTC
        "1970-01-01T00:30:00+01:00",  # 1969 in UTC
        "0001-01-01T00:00:00+14:00",  # no UTC value at all
        "9999-12-31T23:59:59-14:00",
        "2026-11-26T20:06:35",  # no offset
        "2026-11-26",
        "tomorrow",
        "",
        1764187595,
        1764187595.5,
        True,
        None,
        ["2026-11-26T20:06:35Z"],
    ],
)
def test_times_out_of_range_not_iso_or_not_strings_are_refused(value: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        TIME.validate_python(value)
    (error,) = raised.value.errors(include_url=False, include_input=False)
    assert error["loc"] == ()


def test_in_range_keeps_the_offset_it_was_given() -> None:
    plus_two = timezone(timedelta(hours=2))
    moment = datetime(2026, 1, 1, 12, tzinfo=plus_two)
    assert fields.in_range(moment).tzinfo is plus_two


@pytest.mark.parametrize(
    ("raw", "stored"), [("a\x00b", "a\ufffdb"), ("\ud800\udc00", "\ufffd\ufffd"), ("\ufffd", "\ufffd")]
)
def test_text_is_stored_as_storable_maps_it(raw: str, stored: str) -> None:
    assert TypeAdapter(fields.Text).validate_python(raw) == stored
