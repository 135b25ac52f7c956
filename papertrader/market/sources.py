"""What every source of market data answers: simulated prices, replayed history, live HTTP providers.

A source is asked, every update interval, for the bars of the interval that
just ended (``fetch``); once at start (and then daily) for the asset list
(``assets``); and for the corporate actions (splits, cash dividends) of a range
of dates (``corporate_actions``).  Sources that drive their own market time
(the replay of history) also provide ``clock``; the others follow the wall
clock.

A live source may also give the daily bars of the days before its start (``daily_bars``,
Alpaca's): a fresh data dir then has each symbol's last close as its price until its first bar
of a session (a weekend install takes market orders, for the next open) and charts with a past.

A source never raises for one bad answer: a symbol without data is left out
of the bars.  A source that cannot answer at all fails the Deferred with
:class:`SourceUnavailable` (the market service keeps the last good prices,
shows them as stale and logs the outage once).
"""

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Optional

from zope.interface import Attribute, Interface


class SourceUnavailable(Exception):
    """The source cannot answer now (network, rate limit, server error); try again next interval."""


@dataclass(frozen=True)
class Asset:
    symbol: str
    name: str = ""
    exchange: str = ""
    asset_class: str = "us_equity"
    tradable: bool = True
    fractionable: bool = True
    # The first day the source has a price for it (a replay's history of a company listed later, e.g. FB
    # from 2012-05-18); None when the source cannot tell.
    first_day: Optional[date] = None


def asset_uuid(symbol):
    """A stable id per symbol (the HTTP API's asset ids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"papertrader:asset:{symbol}"))


class IMarketDataSource(Interface):
    name = Attribute("a short name for logs and the clock ('simulated', 'replay', 'alpaca'...)")

    def assets(symbols):
        """Fire with [Asset] for ``symbols`` (those the source knows; missing ones left out)."""

    def fetch(symbols, start, end):
        """Fire with {symbol: Bar} of the interval [start, end): only bars the source has not given before."""

    def corporate_actions(symbols, start, end):
        """Fire with the Splits and Dividends of ``symbols`` whose dates (a split's date, a dividend's ex-date)
        fall in (start, end]: after the last day already done, up to today."""

    def resume(symbol, price):
        """Continue ``symbol`` from its last known ``price`` (after a restart), if the source cares."""
