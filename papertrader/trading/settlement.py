"""When a trade settles: the ``n``th settlement day after its trade day (T+n), ``n`` by the rules of its day.

Settlement days are the days the exchange trades and the banks (the Federal Reserve) are open: the exchange's
sessions less the two holidays banks keep and the exchanges do not, Columbus Day (the second Monday of October)
and Veterans Day (11 November; the Monday after when it falls on a Sunday, none when on a Saturday).  A trade on
such a day is made, and settles on the settlement days after it.
"""

from datetime import date, timedelta

#: (first trade day, n): T+1 from 28 May 2024, T+2 from 5 September 2017, T+3 from 7 June 1995, T+5 before (SEC
#: rule 15c6-1).
SETTLEMENT_CYCLES = ((date(2024, 5, 28), 1), (date(2017, 9, 5), 2), (date(1995, 6, 7), 3), (date.min, 5))


def cycle(day):
    """``n`` of T+n for a trade on ``day``."""
    return next(n for first, n in SETTLEMENT_CYCLES if day >= first)


def bank_only_holiday(day):
    """Whether ``day`` is a holiday of the banks on which the exchanges may trade (see the module's doc)."""
    if day.month == 10 and day.weekday() == 0 and 8 <= day.day <= 14:  # Columbus Day, a Monday holiday since 1971
        return day.year >= 1971
    if day.month == 11 and day.year >= 1978:  # Veterans Day back on 11 November since 1978
        return (day.day == 11 and day.weekday() < 5) or (day.day == 12 and day.weekday() == 0)
    return False


def settlement_date(sessions, i):
    """The settlement day of a trade on ``sessions[i]``, ``sessions`` being the exchange's sessions' days in
    order (enough of them after ``i``); past the last, the weekdays that are not bank-only holidays."""
    left = cycle(sessions[i])
    for day in sessions[i + 1:]:
        if not bank_only_holiday(day):
            left -= 1
            if not left:
                return day
    settles = sessions[-1]
    while left:
        settles += timedelta(days=1)
        if settles.weekday() < 5 and not bank_only_holiday(settles):
            left -= 1
    return settles
