"""Prometheus-style durations: parse_duration and its inverse format_duration."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapter.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d", timedelta(days=1)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1y", timedelta(days=365)),
        ("500ms", timedelta(milliseconds=500)),
        ("1m500ms", timedelta(minutes=1, milliseconds=500)),
        ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
        ("90m", timedelta(minutes=90)),
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("0m", timedelta(0)),
        ("01s", timedelta(seconds=1)),
        ("1h0m", timedelta(hours=1)),
        ("86400s", timedelta(days=1)),
    ],
)
def test_parse_valid(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_milliseconds_are_not_minutes() -> None:
    # `ms` must win over `m` followed by `s`.
    assert parse_duration("5ms") == timedelta(milliseconds=5)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration("5m5s") == timedelta(minutes=5, seconds=5)


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "10",
        "1x",
        "h1",
        "",
        "1h30",
        "1.5h",
        "-1s",
        " 30s",
        "30s ",
        "30 s",
        "1H",
        "s",
        "00",
        "1h 30m",
        "30sec",
        "+5m",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(ValueError, match="duration such as 30s"):
        parse_duration(text)


def test_error_message_quotes_the_input() -> None:
    with pytest.raises(ValueError, match=r"'1x' is not a duration"):
        parse_duration("1x")


@pytest.mark.parametrize("value", [None, 30, 1.5, b"30s", ["30s"]])
def test_parse_non_string(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["1m1h", "1h1h", "30s1m", "1s1d"],
)
def test_units_out_of_order_or_repeated_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=30), "30s"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=2), "2h"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(hours=2, minutes=30), "2h30m"),
        (timedelta(days=1), "1d"),
        (timedelta(weeks=1), "7d"),
        (timedelta(days=1, seconds=1), "1d1s"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4), "1d2h3m4s"),
        (timedelta(seconds=90), "1m30s"),
        (timedelta(seconds=30, milliseconds=999), "30s"),
        (timedelta(milliseconds=500), "0s"),
    ],
)
def test_format(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


@pytest.mark.parametrize("text", ["30s", "15m", "2h", "1h30m", "1d", "1d2h3m4s", "1m30s"])
def test_format_of_parse_is_identity_for_canonical_text(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_round_trip_whole_seconds(seconds: int) -> None:
    delta = timedelta(seconds=seconds)
    text = format_duration(delta)
    assert parse_duration(text) == delta


@given(
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
    st.integers(min_value=0, max_value=10_000),
)
def test_compound_sums_parts(days: int, hours: int, minutes: int, seconds: int) -> None:
    text = f"{days}d{hours}h{minutes}m{seconds}s"
    assert parse_duration(text) == timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


@given(st.integers(min_value=1, max_value=10**6))
def test_bare_number_is_rejected(number: int) -> None:
    with pytest.raises(ValueError):
        parse_duration(str(number))
