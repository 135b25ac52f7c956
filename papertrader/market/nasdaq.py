"""Last prices from nasdaq.com's quote "watchlist" endpoint -- keyless, unofficial, off unless chosen.

**Unofficial.** ``GET {base_url}/api/quote/watchlist?symbol=aapl|stocks&symbol=spy|etf...``
is the website's own internal endpoint, not a documented API: it may change shape,
block this client (Akamai answers 403 with an HTML page) or disappear without notice,
and nasdaq.com's terms of use restrict automated access.  This source is therefore
**never a default**: it runs only when an operator chooses it, knowing that.  Alpaca
(:mod:`papertrader.market.alpaca`, a free key) is the documented live source.

What it gives is a *last sale price* per symbol (consolidated, minute-stamped New York
time, extended-hours prints included) and the day's cumulative volume -- not bars.  So
each update builds an honest bar from it:

- open = high = low = close = the last price (no intra-minute range is invented);
- a bar only when the price's own trade time moved on since the previous poll (no new
  trade: no bar, so nothing fills on a stale price); on the first poll of a symbol, only
  when its trade time falls within the update's interval;
- start/end = the previous poll's time and this one (the fetch's ``end``);
- volume = how much the day's cumulative volume grew since the previous poll, 0 on the
  first poll of a day (the day's volume so far did not all trade in this interval).

Symbols are asked for 20 per request (the endpoint answers at most 20), one request
after another ``spacing`` seconds apart.  A symbol must be asked with its class:
``etfs`` names the ETFs; others are asked as stocks, and one that gets no row switches
class for the next poll until a row confirms it.  A row priced ``N/A``, a missing row and
an answer saying "Symbol not exists" leave symbols out; anything else unexpected fails
the fetch with SourceUnavailable (see :mod:`papertrader.market.http`).

``assets`` gives the company name (this endpoint names no exchange); there are no
corporate actions here (``corporate_actions`` fires with an empty list), so splits and
dividends are not applied with this source.
"""

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from twisted.internet import defer, task
from zope.interface import implementer

from papertrader import __version__
from papertrader.market import answers
from papertrader.market.answers import Malformed
from papertrader.market.http import ProviderHTTP, batches
from papertrader.market.sources import Asset, IMarketDataSource
from papertrader.trading.market import Bar

NEW_YORK = ZoneInfo("America/New_York")
BATCH = 20
USER_AGENT = f"Mozilla/5.0 (compatible; PaperTrader/{__version__})"


@dataclass(frozen=True)
class _Seen:
    """What the previous poll saw of a symbol."""

    trade_time: datetime
    volume: int  # the day's cumulative volume, or None when not given
    poll: datetime


@dataclass(frozen=True)
class _Row:
    symbol: str
    name: str
    price: object  # Decimal or None ("N/A")
    trade_time: object  # aware datetime or None
    volume: object  # int or None


def _trade_time(row, what):
    """The last trade's time: lastTradeTimestampDateTime (New York wall time unless it has an offset),
    else the text form 'Oct 6, 2026 2:41 PM ET'; None when neither is given."""
    text = answers.field(row, "lastTradeTimestampDateTime", (str,), what, optional=True)
    if text and text.strip().upper() not in ("N/A", "NA"):
        return answers.timestamp(text, f"{what}: lastTradeTimestampDateTime", naive_zone=NEW_YORK)
    text = answers.field(row, "lastTradeTimestamp", (str,), what, optional=True)
    if text and text.strip().upper() not in ("N/A", "NA"):
        words = text.strip()
        if words.endswith(" ET"):
            words = words[:-3]
        for layout in ("%b %d, %Y %I:%M %p", "%b %d, %Y"):
            try:
                return datetime.strptime(words, layout).replace(tzinfo=NEW_YORK)
            except ValueError:
                pass
        raise Malformed(f"{what}: lastTradeTimestamp {text[:40]!r} is not a time")
    return None


@implementer(IMarketDataSource)
class NasdaqSource:
    name = "nasdaq"

    def __init__(self, base_url="https://api.nasdaq.com", timeout=10.0, reactor=None, log=None, etfs=(),
                 spacing=1.0, batch_size=BATCH):
        parts = urlsplit(base_url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("nasdaq base_url must be an http(s) URL")
        if not 1 <= batch_size <= BATCH:
            raise ValueError(f"nasdaq batch_size must be 1 to {BATCH}")
        if spacing < 0:
            raise ValueError("nasdaq spacing must not be negative")
        self.base_url = base_url.rstrip("/")
        self.spacing = spacing
        self.batch_size = batch_size
        self.http = ProviderHTTP("nasdaq", reactor, timeout, log, user_agent=USER_AGENT, max_body=4 * 1024 * 1024)
        self.reactor = self.http.reactor
        self.log = self.http.log
        self._etfs = {s.upper() for s in etfs}
        self._classes = {}  # symbol -> "stocks" | "etf", as last asked
        self._confirmed = set()  # symbols whose class a row confirmed
        self._seen = {}  # symbol -> _Seen

    def __repr__(self):
        return f"<NasdaqSource {self.base_url} {self.state}>"

    @property
    def state(self):
        return self.http.state

    def resume(self, symbol, price):
        """Live prices need no seed."""

    def close(self):
        return self.http.close()

    def corporate_actions(self, symbols, start, end):
        """None: this endpoint publishes no splits or dividends (an empty list, always)."""
        return defer.succeed([])

    def _class(self, symbol):
        if symbol.upper() in self._etfs:
            return "etf"
        return self._classes.get(symbol, "stocks")

    # --- one poll ---------------------------------------------------------------------------

    @defer.inlineCallbacks
    def _poll(self, symbols):
        """Ask for ``symbols`` (batches, spaced): fires with {symbol: _Row} of those with a row."""
        rows = {}
        for i, batch in enumerate(batches(symbols, self.batch_size)):
            if i and self.spacing:
                yield task.deferLater(self.reactor, self.spacing, lambda: None)
            params = [("symbol", f"{s.lower()}|{self._class(s)}") for s in batch]
            answer = yield self.http.get_json(f"{self.base_url}/api/quote/watchlist", params,
                                              "/api/quote/watchlist",
                                              lambda body: answers.load_json(body, "the watchlist answer"))
            found = self._read(answer, batch)
            if found is None:
                continue  # the whole batch was refused (logged): nothing to learn about classes
            rows.update(found)
            for symbol in batch:
                if symbol in found and found[symbol].price is not None:
                    self._confirmed.add(symbol)
                elif symbol not in self._confirmed and symbol.upper() not in self._etfs:
                    self._classes[symbol] = "etf" if self._class(symbol) == "stocks" else "stocks"
        return rows

    def _read(self, answer, batch):
        what = "the watchlist answer"
        if not isinstance(answer, dict):
            raise Malformed(f"{what} is not an object")
        status = answers.field(answer, "status", (dict,), what)
        code = answers.field(status, "rCode", (int,), f"{what}: status")
        data = answers.field(answer, "data", (list,), what, optional=True)
        if data is None:
            if code == 200:
                raise Malformed(f"{what} has no data")
            messages = status.get("bCodeMessage") or []
            text = "; ".join(str(m.get("errorMessage", "")) for m in messages if isinstance(m, dict))[:120]
            self.http.note_once(("refused", text, code), "{name}: a batch was answered with code {code} "
                                "({text}); its symbols are left out", name="nasdaq", code=code, text=text)
            return None
        if code != 200:
            raise Malformed(f"{what} has data but status {code}")
        wanted = {s.upper(): s for s in batch}
        found = {}
        for item in data:
            symbol_text = answers.field(item, "symbol", (str,), "a watchlist row").strip()
            symbol = wanted.get(symbol_text.upper())
            if symbol is None:
                self.http.note_once(("unknown", symbol_text), "{name}: the answer holds {symbol}, which was not "
                                    "asked for; left out", name="nasdaq", symbol=symbol_text[:32])
                continue
            row_what = f"the row of {symbol}"
            price = answers.dollars(answers.field(item, "lastSalePrice", (str,), row_what), f"{row_what}: price")
            volume = answers.field(item, "volume", (str,), row_what, optional=True)
            found[symbol] = _Row(
                symbol, answers.field(item, "companyName", (str,), row_what, optional=True) or "",
                price, _trade_time(item, row_what) if price is not None else None,
                answers.count(volume, f"{row_what}: volume") if volume is not None else None)
        return found

    # --- bars ---------------------------------------------------------------------------------

    #: The market service passes the session's hours to ``fetch``: a last sale outside them (pre-market,
    #: after-hours) is not the session's price.
    takes_session = True

    def fetch(self, symbols, start, end, session=None):
        return self.http.attempt(self._fetch, list(dict.fromkeys(symbols)), start, end, session)

    @defer.inlineCallbacks
    def _fetch(self, symbols, start, end, session=None):
        rows = yield self._poll(symbols)
        first_trade = start.replace(second=0, microsecond=0)  # trade times are to the minute
        bars = {}
        for symbol, row in rows.items():
            if row.price is None:
                continue  # "N/A": no price for this symbol now
            if row.trade_time is None:
                self.http.note_once(("no time", symbol), "{name}: {symbol} has a price but no trade time; "
                                    "left out", name="nasdaq", symbol=symbol)
                continue
            if session is not None and not session[0] <= row.trade_time <= session[1]:
                # A pre-market or after-hours sale: not the session's (not seen either).  (Its times are to the
                # minute: the closing print says the close's minute itself.)
                continue
            seen = self._seen.get(symbol)
            if seen is None:
                new = row.trade_time >= first_trade
                since, volume = start, 0
            else:
                new = row.trade_time > seen.trade_time
                since = seen.poll
                same_day = row.trade_time.astimezone(NEW_YORK).date() == seen.trade_time.astimezone(NEW_YORK).date()
                volume = (max(0, row.volume - seen.volume)
                          if same_day and row.volume is not None and seen.volume is not None else 0)
            if new and since < end:
                bars[symbol] = Bar(symbol, since, end, row.price, row.price, row.price, row.price, volume)
            trade_time = row.trade_time if seen is None else max(row.trade_time, seen.trade_time)
            day_volume = row.volume if row.volume is not None else (seen.volume if seen else None)
            self._seen[symbol] = _Seen(trade_time, day_volume, end)
        return bars

    # --- assets ---------------------------------------------------------------------------------

    def assets(self, symbols):
        return self.http.attempt(self._assets, list(dict.fromkeys(symbols)))

    @defer.inlineCallbacks
    def _assets(self, symbols):
        rows = yield self._poll(symbols)
        missing = [s for s in symbols if s not in rows or not rows[s].name]
        if missing:  # asked with the other class now (_poll switched them)
            rows.update({s: r for s, r in (yield self._poll(missing)).items() if r.name})
        return [Asset(s, name=rows[s].name) for s in symbols if s in rows and rows[s].name]
