"""Daylight saving: the rule of docs/api.md "Time zones and daylight saving", as a table
of real transitions (America/New_York, Europe/Berlin, and Australia/Lord_Howe
whose clocks move by 30 minutes), then checked against a brute-force
reading of the same rule minute by minute."""
from datetime import datetime, timedelta, timezone

import pytest
from croniter import croniter

from common import cron
from common.zones import zone

FIXED, WILDCARD = "fixed hour", "wildcard hour"


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()) * 1000


def fires(expression: str, tz: str, after: str, count: int) -> list[str]:
    found = cron.next_fires_ms(expression, tz, utc(after), count)
    return [datetime.fromtimestamp(f / 1000, timezone.utc).strftime("%m-%d %H:%M")
            for f in found]


# (zone, change, schedule, kind, start (UTC), expected fires (UTC, mm-dd HH:MM))
TABLE = [
    # New York goes back from 02:00 EDT to 01:00 EST on 2026-11-01 (06:00Z).
    ("America/New_York", "back", "0 30 1 * * *", FIXED, "2026-10-31 12:00",
     ["11-01 05:30", "11-02 06:30"]),                       # 01:30 EDT only
    ("America/New_York", "back", "0 30 * * * *", WILDCARD, "2026-11-01 04:00",
     ["11-01 04:30", "11-01 05:30", "11-01 06:30", "11-01 07:30"]),  # 01:30 EDT and EST
    ("America/New_York", "back", "0 */15 * * * *", WILDCARD, "2026-11-01 05:40",
     ["11-01 05:45", "11-01 06:00", "11-01 06:15", "11-01 06:30"]),
    # New York jumps from 02:00 EST to 03:00 EDT on 2026-03-08 (07:00Z).
    ("America/New_York", "forward", "0 30 2 * * *", FIXED, "2026-03-07 12:00",
     ["03-08 07:00", "03-09 06:30"]),                       # at the jump, once
    ("America/New_York", "forward", "0 */15 2 * * *", FIXED, "2026-03-08 00:00",
     ["03-08 07:00", "03-09 06:00"]),                       # four skipped fires make one
    ("America/New_York", "forward", "0 30 * * * *", WILDCARD, "2026-03-08 05:00",
     ["03-08 05:30", "03-08 06:30", "03-08 07:30", "03-08 08:30"]),  # no 02:30
    ("America/New_York", "forward", "0 */15 * * * *", WILDCARD, "2026-03-08 06:20",
     ["03-08 06:30", "03-08 06:45", "03-08 07:00", "03-08 07:15"]),
    # Berlin goes back from 03:00 CEST to 02:00 CET on 2026-10-25 (01:00Z).
    ("Europe/Berlin", "back", "0 30 2 * * *", FIXED, "2026-10-24 12:00",
     ["10-25 00:30", "10-26 01:30"]),
    ("Europe/Berlin", "back", "0 30 * * * *", WILDCARD, "2026-10-24 23:00",
     ["10-24 23:30", "10-25 00:30", "10-25 01:30", "10-25 02:30"]),
    ("Europe/Berlin", "back", "0 */15 * * * *", WILDCARD, "2026-10-25 00:40",
     ["10-25 00:45", "10-25 01:00", "10-25 01:15", "10-25 01:30"]),
    # Berlin jumps from 02:00 CET to 03:00 CEST on 2026-03-29 (01:00Z).
    ("Europe/Berlin", "forward", "0 30 2 * * *", FIXED, "2026-03-28 12:00",
     ["03-29 01:00", "03-30 00:30"]),
    ("Europe/Berlin", "forward", "0 30 * * * *", WILDCARD, "2026-03-28 23:00",
     ["03-28 23:30", "03-29 00:30", "03-29 01:30", "03-29 02:30"]),
    ("Europe/Berlin", "forward", "0 */15 * * * *", WILDCARD, "2026-03-29 00:40",
     ["03-29 00:45", "03-29 01:00", "03-29 01:15"]),
    # Lord Howe goes back 30 minutes, 02:00 (+11) to 01:30 (+10:30), on
    # 2026-04-05 local (15:00Z on the 4th).
    ("Australia/Lord_Howe", "back", "0 45 1 * * *", FIXED, "2026-04-04 12:00",
     ["04-04 14:45", "04-05 15:15"]),                       # 01:45 (+11) only
    ("Australia/Lord_Howe", "back", "0 45 * * * *", WILDCARD, "2026-04-04 13:00",
     ["04-04 13:45", "04-04 14:45", "04-04 15:15", "04-04 16:15"]),
    ("Australia/Lord_Howe", "back", "0 */15 * * * *", WILDCARD, "2026-04-04 14:20",
     ["04-04 14:30", "04-04 14:45", "04-04 15:00", "04-04 15:15"]),
    # Lord Howe jumps 30 minutes, 02:00 (+10:30) to 02:30 (+11), on
    # 2026-10-04 local (15:30Z on the 3rd).
    ("Australia/Lord_Howe", "forward", "0 15 2 * * *", FIXED, "2026-10-03 12:00",
     ["10-03 15:30", "10-04 15:15"]),
    ("Australia/Lord_Howe", "forward", "0 15 * * * *", WILDCARD, "2026-10-03 14:00",
     ["10-03 14:45", "10-03 16:15"]),                       # no 02:15
    ("Australia/Lord_Howe", "forward", "0 */15 * * * *", WILDCARD, "2026-10-03 15:00",
     ["10-03 15:15", "10-03 15:30", "10-03 15:45"]),
]


@pytest.mark.parametrize("tz,change,expression,kind,start,expected", TABLE,
                         ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE])
def test_dst_table(tz, change, expression, kind, start, expected):
    assert fires(expression, tz, start, len(expected)) == expected


@pytest.mark.parametrize("tz,change,expression,kind,start,expected", TABLE,
                         ids=[f"{t[0]}-{t[1]}-{t[2]}" for t in TABLE])
def test_last_fire_mirrors_next_fire(tz, change, expression, kind, start, expected):
    found = cron.next_fires_ms(expression, tz, utc(start), len(expected) + 1)
    for previous, fire in zip(found, found[1:]):
        assert cron.last_fire_until(expression, tz, fire) == fire
        assert cron.last_fire_until(expression, tz, fire - 1) == previous


def _naive_utc(at_ms: int) -> datetime:
    return datetime.fromtimestamp(at_ms / 1000, timezone.utc).replace(tzinfo=None)


def brute_force(expression: str, tz: str, start_ms: int, end_ms: int) -> list[int]:
    """The rule read literally, one UTC minute at a time. (Which wall times
    match the fields is croniter's part, listed once up front; the rule is
    about mapping them to instants.)"""
    six = cron.normalize(expression)
    fixed = "*" not in six.split()[2]
    zinfo = zone(tz)
    it = croniter(six, _naive_utc(start_ms) - timedelta(days=1),
                  second_at_beginning=True)
    walls = set()
    while (wall := it.get_next(datetime)) < _naive_utc(end_ms) \
            + timedelta(days=1):
        walls.add(wall)

    out = []
    for t in range(start_ms - start_ms % 60_000 + 60_000, end_ms, 60_000):
        moment = datetime.fromtimestamp(t / 1000, timezone.utc)
        local = moment.astimezone(zinfo)
        before = (moment - timedelta(minutes=1)).astimezone(zinfo)
        jump = local.utcoffset() - before.utcoffset()
        if local.replace(tzinfo=None, fold=0) in walls and not (fixed and local.fold == 1):
            out.append(t)
        elif fixed and jump > timedelta(0):
            # The first minute after clocks went forward: anything skipped runs now.
            skipped = local.replace(tzinfo=None) - jump
            while skipped < local.replace(tzinfo=None):
                if skipped in walls:
                    out.append(t)
                    break
                skipped += timedelta(minutes=1)
    return out


@pytest.mark.parametrize("tz,day", [("America/New_York", "2026-11-01"),
                                    ("America/New_York", "2026-03-08"),
                                    ("Europe/Berlin", "2026-10-25"),
                                    ("Europe/Berlin", "2026-03-29"),
                                    ("Australia/Lord_Howe", "2026-04-04"),
                                    ("Australia/Lord_Howe", "2026-10-03"),
                                    ("UTC", "2026-03-29")])
@pytest.mark.parametrize("expression", ["0 30 1 * * *", "0 30 2 * * *", "0 45 1 * * *",
                                        "0 15 2 * * *", "0 */15 2 * * *", "0 0 1-3 * * *",
                                        "0 30 * * * *", "0 */15 * * * *", "0 */20 * * * *",
                                        "0 5 */2 * * *", "0 0 * * * *"])
def test_next_fire_agrees_with_the_rule_minute_by_minute(tz, day, expression):
    start = utc(day + " 00:00") - 12 * 3600_000
    end = start + 48 * 3600_000
    expected = brute_force(expression, tz, start, end)
    got, t = [], start
    while True:
        t = cron.next_fire_ms(expression, tz, t)
        if t >= end:
            break
        got.append(t)
    assert got == expected
