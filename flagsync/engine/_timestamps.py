"""Timestamps for schedules and the ``before``/``after`` operators.

A timestamp is either an RFC 3339 date-time string with an explicit offset
(``2026-11-30T09:00:00Z``, ``2026-11-30T10:00:00.5+01:00``) or a Unix time in
seconds (int or float, not bool). Both become float Unix seconds, and both
must fall in the years 1 to 9999 once converted to UTC: the compiler writes
schedule times as RFC 3339 UTC strings, which cannot name any other year.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone

from flagsync.engine._exact import exact_scalar
from flagsync.engine._limits import MAX_TIMESTAMP_CHARS

# RFC 3339 §5.6 ``date-time``; 'T'/'Z' may be lower case and the separator a
# space (§5.6 NOTE). No offset means local time of unknown zone: rejected.
_RFC3339_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# The representable range, 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z (whole
# seconds: a float this large cannot hold the last microsecond of year 9999).
# '0001-01-01T00:00:00+01:00' is a valid RFC 3339 string but lies in year 0 UTC.
MIN_SECONDS = (datetime(1, 1, 1, tzinfo=timezone.utc) - _EPOCH).total_seconds()
MAX_SECONDS = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc) - _EPOCH).total_seconds()


def _in_range(seconds: float, value: object) -> float:
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise ValueError(f"timestamp {value!r} is outside the years 1 to 9999 (UTC)")
    return seconds


def to_rfc3339(seconds: float) -> str:
    """``seconds`` as an RFC 3339 UTC string (``…Z``), exact to the microsecond.

    Computed from the epoch with a timedelta, not ``fromtimestamp``, so the
    result does not depend on the platform's ``time_t`` range.
    """
    moment = _EPOCH + timedelta(seconds=_in_range(seconds, seconds))
    return moment.isoformat().replace("+00:00", "Z")


def parse_timestamp(value: object) -> float:
    """Return ``value`` as Unix seconds; :class:`ValueError` when it is not a timestamp.

    Strings must be RFC 3339 date-times with ``Z`` or a numeric offset (leap
    second ``:60`` is not representable and is rejected), at most
    ``MAX_TIMESTAMP_CHARS`` long; numbers must be finite. Booleans are
    rejected although Python counts them as ints. Either must lie in the
    years 1 to 9999 once converted to UTC. Subclasses of ``str``, ``int`` and
    ``float`` are read by value, without calling their overridable methods.
    """
    scalar = exact_scalar(value)
    if scalar is None:
        raise ValueError(f"a timestamp must be a string or a number, not {type(value).__name__}")
    if isinstance(scalar, bool):
        raise ValueError("a boolean is not a timestamp")
    if isinstance(scalar, int):
        try:
            seconds = float(scalar)
        except OverflowError:  # beyond any float: certainly beyond year 9999
            raise ValueError("timestamp is outside the years 1 to 9999 (UTC)") from None
        return _in_range(seconds, seconds)
    if isinstance(scalar, float):
        if not math.isfinite(scalar):
            raise ValueError(f"timestamp is not finite: {scalar!r}")
        return _in_range(scalar, scalar)
    text = scalar
    if len(text) > MAX_TIMESTAMP_CHARS:
        raise ValueError(f"a timestamp string is at most {MAX_TIMESTAMP_CHARS} characters long")
    m = _RFC3339_RE.fullmatch(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time with offset: {text!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    if m.group(8) is not None:
        tz = timezone.utc
    else:
        off_h, off_m = int(m.group(10)), int(m.group(11))
        if off_h > 23 or off_m > 59:
            raise ValueError(f"bad UTC offset in {text!r}")
        sign = -1 if m.group(9) == "-" else 1
        tz = timezone(sign * timedelta(hours=off_h, minutes=off_m))
    # datetime() checks the calendar (month 13, 30 February, second 60 …).
    moment = datetime(year, month, day, hour, minute, second, tzinfo=tz)
    fraction = m.group(7)
    return _in_range(moment.timestamp() + (float(fraction) if fraction else 0.0), text)
