"""Weekly and monthly bars folded from daily ones (Alpaca's ``1Week`` and ``NMonth`` timeframes).

A week runs Monday to Sunday, a period of ``N`` months starts in a month that is 1 + a multiple of N (January,
then every N months), both by the UTC day of each daily bar (a daily bar is stamped at its session's open,
which falls on its session's day in UTC).  A folded bar keeps the first open, the highest high, the lowest low,
the last close and the summed volume, and is stamped, as the daily bars are, at its first session's open.
Pure functions: no I/O.
"""

from datetime import datetime, timedelta, timezone

#: Alpaca's timeframe name -> (unit, how many): a week, or 1, 2, 3, 4, 6 or 12 months.
PERIODS = {"1Week": ("week", 1), **{f"{n}Month": ("month", n) for n in (1, 2, 3, 4, 6, 12)}}
#: The most daily bars one period can hold (5 sessions a week, 23 a month): how many to read for a period.
MOST_SESSIONS = {"week": 5, "month": 23}


def period_start(moment, unit, count=1):
    """Midnight UTC of the first day of the period holding ``moment``."""
    day = moment.astimezone(timezone.utc).date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    else:
        day = day.replace(month=(day.month - 1) // count * count + 1, day=1)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


def next_period(moment, unit, count=1):
    """Midnight UTC of the first day of the period after the one holding ``moment``."""
    start = period_start(moment, unit, count)
    if unit == "week":
        return start + timedelta(days=7)
    month = start.month - 1 + count
    return start.replace(year=start.year + month // 12, month=month % 12 + 1)


def fold(bars, unit, count=1):
    """Daily ``bars`` (dicts with time, open, high, low, close, volume; oldest first) folded into periods."""
    out, key = [], None
    for bar in bars:
        here = period_start(bar["time"], unit, count)
        if out and here == key:
            last = out[-1]
            last.update(high=max(last["high"], bar["high"]), low=min(last["low"], bar["low"]), close=bar["close"],
                        volume=last["volume"] + bar["volume"])
        else:
            out.append(dict(bar))
            key = here
    return out
