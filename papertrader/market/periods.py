"""Weekly and monthly bars folded from daily ones (Alpaca's ``1Week`` and ``NMonth`` timeframes).

A week runs Monday to Sunday, a period of ``N`` months starts in a month that is 1 + a multiple of N (January,
then every N months), both by each daily bar's day in the market's time zone (a daily bar is stamped at its
session's open: in UTC, an exchange far east opens the day before).  A folded bar keeps the first open, the highest high, the lowest low,
the last close and the summed volume, and is stamped, as the daily bars are, at its first session's open.
Pure functions: no I/O.
"""

from datetime import datetime, timedelta, timezone

#: The minute buckets bars are served in (those that divide an hour: aligned to it), and the months a period
#: of months may have (Alpaca's).
MINUTE_BUCKETS = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30)
MONTHS = (1, 2, 3, 4, 6, 12)
#: Alpaca's timeframe name -> (unit, how many): a week, or MONTHS months.
PERIODS = {"1Week": ("week", 1), **{f"{n}Month": ("month", n) for n in MONTHS}}
#: The most daily bars one period of the unit can hold, whatever the calendar (always_open trades every day).
MOST_DAYS = {"week": 7, "month": 31}


def period_start(moment, unit, count=1, zone=timezone.utc):
    """Midnight (in ``zone``, as a UTC time) of the first day of the period holding ``moment``."""
    day = moment.astimezone(zone).date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    else:
        day = day.replace(month=(day.month - 1) // count * count + 1, day=1)
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(timezone.utc)


def next_period(moment, unit, count=1, zone=timezone.utc):
    """Midnight (in ``zone``, as a UTC time) of the first day of the period after the one holding ``moment``."""
    day = period_start(moment, unit, count, zone).astimezone(zone).date()
    if unit == "week":
        day += timedelta(days=7)
    else:
        month = day.month - 1 + count
        day = day.replace(year=day.year + month // 12, month=month % 12 + 1)
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(timezone.utc)


def fold(bars, unit, count=1, zone=timezone.utc):
    """Daily ``bars`` (dicts with time, open, high, low, close, volume; oldest first) folded into periods."""
    out, key = [], None
    for bar in bars:
        here = period_start(bar["time"], unit, count, zone)
        if out and here == key:
            last = out[-1]
            last.update(high=max(last["high"], bar["high"]), low=min(last["low"], bar["low"]), close=bar["close"],
                        volume=last["volume"] + bar["volume"])
        else:
            out.append(dict(bar))
            key = here
    return out
