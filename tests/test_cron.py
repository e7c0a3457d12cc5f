"""Cron evaluation is a pure function: tested without any server."""
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from common import cron
from common.errors import ValidationError


def ms(*args, tz=timezone.utc) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def test_six_fields_are_seconds_first():
    assert cron.next_fire_ms("*/5 * * * * *", "UTC", ms(2026, 11, 22, 10, 0, 1)) == \
        ms(2026, 11, 22, 10, 0, 5)


def test_five_fields_fire_at_second_zero():
    assert cron.next_fire_ms("*/15 * * * *", "UTC", ms(2026, 11, 22, 10, 1, 30)) == \
        ms(2026, 11, 22, 10, 15, 0)


def test_next_fire_is_strictly_after_even_on_a_fire_instant():
    at = ms(2026, 11, 22, 10, 0, 5)
    assert cron.next_fire_ms("*/5 * * * * *", "UTC", at) == at + 5000
    assert cron.next_fire_ms("* * * * * *", "UTC", at + 999) == at + 1000


def test_example_from_the_issue_weekdays_hours_range():
    # 31 10-15 1 * * MON-FRI: second 31, minutes 10..15, hour 1, Monday to Friday.
    start = ms(2026, 11, 21, 0, 0, 0)  # a Saturday
    fires = cron.next_fires_ms("31 10-15 1 * * MON-FRI", "UTC", start, 7)
    assert fires[0] == ms(2026, 11, 23, 1, 10, 31)  # Monday
    assert fires[5] == ms(2026, 11, 23, 1, 15, 31)
    assert fires[6] == ms(2026, 11, 24, 1, 10, 31)


def test_time_zone_is_applied():
    paris = ZoneInfo("Europe/Paris")
    nxt = cron.next_fire_ms("0 0 9 * * *", "Europe/Paris", ms(2026, 11, 22, 0, 0, 0))
    assert nxt == ms(2026, 11, 22, 9, 0, 0, tz=paris)  # 08:00 UTC in winter


def test_daily_job_across_spring_forward_keeps_local_time():
    # Europe/Paris jumps from 02:00 to 03:00 on 2026-03-29.
    paris = ZoneInfo("Europe/Paris")
    fires = cron.next_fires_ms("0 0 9 * * *", "Europe/Paris", ms(2026, 3, 28, 0, 0, 0), 2)
    assert fires == [ms(2026, 3, 28, 9, 0, 0, tz=paris), ms(2026, 3, 29, 9, 0, 0, tz=paris)]
    assert fires[1] - fires[0] == 23 * 3600 * 1000


def test_daily_job_across_fall_back_fires_once_per_day():
    # Europe/Paris goes back from 03:00 to 02:00 on 2026-10-25.
    fires = cron.next_fires_ms("0 0 9 * * *", "Europe/Paris", ms(2026, 10, 24, 0, 0, 0), 2)
    assert fires[1] - fires[0] == 25 * 3600 * 1000


def test_hourly_in_utc_is_unaffected_by_any_dst():
    fires = cron.next_fires_ms("0 0 * * * *", "UTC", ms(2026, 3, 29, 0, 30, 0), 4)
    assert [b - a for a, b in zip(fires, fires[1:])] == [3600_000] * 3


@pytest.mark.parametrize("expression", ["", "* * * *", "* * * * * * * *", "61 * * * * *",
                                        "* * 25 * * *", "every minute", "* * * * * FOO"])
def test_invalid_expressions_name_the_schedule_field(expression):
    with pytest.raises(ValidationError) as e:
        cron.normalize(expression)
    assert e.value.field == "schedule"


def test_unknown_time_zone_names_the_timezone_field():
    with pytest.raises(ValidationError) as e:
        cron.zone("Mars/Olympus_Mons")
    assert e.value.field == "timezone"
