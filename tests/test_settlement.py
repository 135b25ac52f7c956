"""Settlement days (papertrader/trading/settlement.py): the exchange's sessions the banks keep open, T+n by the
rules of the trade's day."""

from datetime import date, timedelta

from papertrader.trading.settlement import bank_only_holiday, settlement_date


def weekdays(first, last, closed=()):
    """The weekdays from ``first`` to ``last``, less ``closed`` (the exchange's holidays)."""
    day, out = first, []
    while day <= last:
        if day.weekday() < 5 and day not in closed:
            out.append(day)
        day += timedelta(days=1)
    return out


def settles(sessions, day):
    return settlement_date(sessions, sessions.index(day))


def test_columbus_day_and_veterans_day_are_sessions_but_not_settlement_days():
    sessions = weekdays(date(2024, 10, 1), date(2024, 11, 30), closed={date(2024, 11, 28)})
    assert settles(sessions, date(2024, 10, 10)) == date(2024, 10, 11)  # T+1
    assert settles(sessions, date(2024, 10, 11)) == date(2024, 10, 15)  # over Columbus Day (Monday 14)
    assert settles(sessions, date(2024, 10, 14)) == date(2024, 10, 15)  # a trade on it settles the day after
    assert settles(sessions, date(2024, 11, 8)) == date(2024, 11, 12)   # over Veterans Day (Monday 11)
    assert settles(sessions, date(2024, 11, 27)) == date(2024, 11, 29)  # over Thanksgiving, the exchange's holiday


def test_veterans_day_on_a_weekend_is_kept_by_the_banks_on_the_monday_after_a_sunday_only():
    assert bank_only_holiday(date(2018, 11, 12)) and not bank_only_holiday(date(2018, 11, 11))  # a Sunday
    assert not any(bank_only_holiday(date(2023, 11, d)) for d in (10, 11, 13))  # a Saturday: banks open Friday
    assert [d for d in weekdays(date(2025, 1, 1), date(2025, 12, 31)) if bank_only_holiday(d)] == [
        date(2025, 10, 13), date(2025, 11, 11)]


def test_the_cycle_is_that_of_the_trade_day_and_past_the_sessions_known_the_weekdays_count():
    sessions = weekdays(date(2017, 8, 28), date(2017, 9, 8), closed={date(2017, 9, 4)})  # Labor Day
    assert settles(sessions, date(2017, 9, 1)) == date(2017, 9, 7)  # T+3 (Tuesday 5 to Thursday 7)
    assert settles(sessions, date(2017, 9, 5)) == date(2017, 9, 7)  # T+2 from 5 September 2017
    assert settles(sessions, date(2017, 9, 8)) == date(2017, 9, 12)  # beyond the last session known
    old = weekdays(date(1995, 6, 1), date(1995, 6, 6))
    assert settles(old, date(1995, 6, 6)) == date(1995, 6, 13)  # T+5 before 7 June 1995
    late = weekdays(date(2025, 10, 6), date(2025, 10, 10))
    assert settles(late, date(2025, 10, 10)) == date(2025, 10, 14)  # the weekdays beyond skip Columbus Day too
