"""Graph triggers: schedule expressions, their next firing time, and the event a trigger sends.

A graph's ``triggers`` (:class:`engine.graph.TriggerSpec`) are EventBridge
Scheduler expressions: ``rate(N minute|minutes|hour|hours|day|days)``,
``cron(minutes hours day-of-month month day-of-week year)`` (AWS's six fields,
one of the two day fields ``?``) or ``at(YYYY-MM-DDThh:mm:ss)``, all in UTC.
:func:`check_expression` accepts exactly these forms; :func:`next_fire`
computes when one fires next (for the in-memory adapter and the local stack's
scheduler emulator), without the ``L``, ``W`` and ``#`` cron forms, which it
reports as not computable.

Everything here is pure.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_TRIGGERS = 10
"""The most triggers one graph may declare."""

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\(([^()]+)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAYS = {name: i + 1 for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
_FIELD = re.compile(r"^[0-9A-Z*?,/#LW-]+$")
# (lowest, highest, names) of minutes, hours, day-of-month, month, day-of-week, year
_BOUNDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (1, 7, _DAYS),
    (1970, 2199, {}),
)
_SEARCH_LIMIT = timedelta(days=366 * 5)


class TriggerEvent(BaseModel):
    """What starts a triggered run: the graph, the state, and a key that makes a repeated delivery start nothing.

    ``trigger`` is the index of the graph's trigger that sent it (``None`` for an
    event from elsewhere: an EventBridge rule, an S3 notification);
    ``scheduled_time`` the firing the scheduler filled in.
    """

    model_config = ConfigDict(extra="forbid")

    graph_id: str = Field(min_length=1)
    initial_state: dict[str, Any] = Field(default_factory=dict)
    trigger: int | None = Field(default=None, ge=0)
    scheduled_time: str | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)

    def key(self) -> str | None:
        """The run's idempotency key: the given one, else the trigger and its firing time."""
        if self.idempotency_key is not None:
            return self.idempotency_key
        if self.trigger is not None and self.scheduled_time is not None:
            return f"trigger:{self.graph_id}:{self.trigger}:{self.scheduled_time}"
        return None


def rate_seconds(expression: str) -> int | None:
    """A ``rate()`` expression's period in seconds; ``None`` for another form."""
    match = _RATE.match(expression)
    if match is None:
        return None
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).rstrip("s")]


def at_time(expression: str) -> datetime | None:
    """An ``at()`` expression's moment (UTC); ``None`` for another form."""
    match = _AT.match(expression)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)


def check_expression(expression: str) -> None:
    """``ValueError`` saying what is wrong unless ``expression`` is a rate(), cron() or at() the scheduler takes."""
    rate = _RATE.match(expression)
    if rate is not None:
        value, unit = int(rate.group(1)), rate.group(2)
        if value < 1:
            raise ValueError("a rate() needs a positive value")
        if (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"write rate({value} {unit.rstrip('s')}{'' if value == 1 else 's'})")
        return
    if _AT.match(expression) is not None:
        try:
            at_time(expression)
        except ValueError:
            raise ValueError(f"{expression!r} is not a valid date and time") from None
        return
    cron = _CRON.match(expression)
    if cron is None:
        raise ValueError(
            f"{expression!r} is not a schedule expression: use rate(1 hour), cron(0 12 * * ? *) "
            "or at(2027-01-01T00:00:00)"
        )
    fields = cron.group(1).split(" ")
    if len(fields) != 6:
        raise ValueError("a cron() has six fields: minutes hours day-of-month month day-of-week year")
    for field, (low, high, names) in zip(fields, _BOUNDS, strict=True):
        if not _FIELD.match(field.upper()):
            raise ValueError(f"cron field {field!r} has a character the scheduler does not take")
        if not any(mark in field.upper() for mark in "LW#"):
            _values(field, low, high, names)
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ValueError("a cron() needs '?' in exactly one of day-of-month and day-of-week")


def _number(text: str, names: dict[str, int]) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise ValueError(f"{text!r} is not a number")
    return int(text)


def _values(field: str, low: int, high: int, names: dict[str, int]) -> set[int]:
    """The values a cron field (``*``, ``?``, lists, ranges, ``/`` steps) matches; ``ValueError`` if out of range."""
    out: set[int] = set()
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = _number(step_text, {}) if step_text else 1
        if step < 1:
            raise ValueError("a cron step must be positive")
        if base in ("*", "?"):
            start, end = low, high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, names), _number(last, names)
        else:
            start = _number(base, names)
            end = high if step_text else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise ValueError(f"cron field {field!r} is outside {low}-{high}")
        out.update(range(start, end + 1, step))
    return out


def next_fire(expression: str, after: float, anchor: float) -> float | None:
    """When ``expression`` fires next strictly after ``after`` (epoch seconds); ``None`` if never again.

    A ``rate()`` fires every period from ``anchor`` (when its schedule was
    created). ``ValueError`` for a cron() with ``L``, ``W`` or ``#``.
    """
    period = rate_seconds(expression)
    if period is not None:
        count = max(0, int((after - anchor) // period) + 1)
        return anchor + count * period
    moment = at_time(expression)
    if moment is not None:
        return moment.timestamp() if moment.timestamp() > after else None
    cron = _CRON.match(expression)
    if cron is None:
        raise ValueError(f"{expression!r} is not a schedule expression")
    fields = cron.group(1).split(" ")
    if any(mark in f.upper() for f in fields for mark in "LW#"):
        raise ValueError("cron() with L, W or # is not computed here")
    minutes, hours, days, months, weekdays, years = (
        _values(f, low, high, names) for f, (low, high, names) in zip(fields, _BOUNDS, strict=True)
    )
    any_day, any_weekday = fields[2] in ("*", "?"), fields[4] in ("*", "?")
    candidate = datetime.fromtimestamp(after, UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    limit = candidate + _SEARCH_LIMIT
    while candidate < limit:
        weekday = (candidate.isoweekday() % 7) + 1
        day_ok = (any_day or candidate.day in days) and (any_weekday or weekday in weekdays)
        if candidate.year in years and candidate.month in months and day_ok:
            if candidate.hour in hours:
                if candidate.minute in minutes:
                    return candidate.timestamp()
                candidate += timedelta(minutes=1)
            else:
                candidate = candidate.replace(minute=0) + timedelta(hours=1)
        else:
            candidate = candidate.replace(hour=0, minute=0) + timedelta(days=1)
    return None
