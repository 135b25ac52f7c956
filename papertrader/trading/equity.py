"""An account's equity over time, from its history and the market's prices (pure: no I/O).

``curve`` walks the account's transactions (fills, dividends, splits: each tells the cash after
it, and the position it leaves) and the closes of the held symbols, and values the account at the
end of each time bucket: cash + the sum of position x close.  What happened in a bucket counts in
its value; a symbol without a price in a bucket is valued at its last known close before.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from papertrader.money import round_money


@dataclass(frozen=True)
class Change:
    """One transaction as the curve needs it: when, the cash after it, and the position it leaves."""

    time: datetime
    cash_after: Decimal
    symbol: str = ""
    position_after: Decimal = None


def curve(start_cash, changes, closes, buckets, until=None):
    """Equity at the end of each bucket ``[buckets[i], buckets[i + 1])`` (the last one is open-ended, up to
    ``until``: changes dated later are not in it).

    ``changes``: Changes in the order they were made (each one's cash and position follow from those before
    it).  Their times follow that order, except after market time was moved back (a replay sought back without
    a reset): then a bucket's value is the account as the latest-made change dated before its end left it
    (the account a trader had then, with what the earlier pass did), never a mix of the two passes.
    ``closes``: {symbol: [(bucket time, close)...] in time order}.  Returns a list of Decimals (money), one per
    bucket.  One walk over each (n log n for the changes' dates).
    """
    cash, held, last_close, pointers = start_cash, {}, {}, {s: 0 for s in closes}
    by_time = sorted((k for k in range(len(changes)) if until is None or changes[k].time <= until),
                     key=lambda k: (changes[k].time, k))
    out, p, latest, applied = [], 0, -1, -1
    for i, start in enumerate(buckets):
        end = buckets[i + 1] if i + 1 < len(buckets) else None
        while p < len(by_time) and (end is None or changes[by_time[p]].time < end):
            latest = max(latest, by_time[p])
            p += 1
        while applied < latest:
            applied += 1
            change = changes[applied]
            cash = change.cash_after
            if change.position_after is not None:
                held[change.symbol] = change.position_after
        for symbol, series in closes.items():
            j = pointers[symbol]
            while j < len(series) and series[j][0] <= start:
                last_close[symbol] = series[j][1]
                j += 1
            pointers[symbol] = j
        value = cash
        for symbol, quantity in held.items():
            if quantity and symbol in last_close:
                value += round_money(quantity * last_close[symbol])
        out.append(value)
    return out
