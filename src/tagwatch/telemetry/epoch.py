"""Stored times are integer milliseconds since the Unix epoch, UTC; code uses aware datetimes."""

from __future__ import annotations

import datetime as dt

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def to_ms(moment: dt.datetime) -> int:
    """An aware datetime as epoch milliseconds (UTC); naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: times must carry a UTC offset")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int) -> dt.datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return _EPOCH + dt.timedelta(milliseconds=ms)
