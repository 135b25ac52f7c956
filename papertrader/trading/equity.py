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


def curve(start_cash, changes, closes, buckets):
    """Equity at the end of each bucket ``[buckets[i], buckets[i + 1])`` (the last one is open-ended).

    ``changes``: Changes in time order.  ``closes``: {symbol: [(bucket time, close)...] in time order}.
    Returns a list of Decimals (money), one per bucket.  One walk over both (linear time).
    """
    cash, held, last_close, pointers = start_cash, {}, {}, {s: 0 for s in closes}
    out, k = [], 0
    for i, start in enumerate(buckets):
        end = buckets[i + 1] if i + 1 < len(buckets) else None
        while k < len(changes) and (end is None or changes[k].time < end):
            change = changes[k]
            cash = change.cash_after
            if change.position_after is not None:
                held[change.symbol] = change.position_after
            k += 1
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
