"""Live prices from Alpaca's Market Data API v2 (a free key is enough: ``feed=iex``).

Every update ``fetch`` asks ``GET {data_url}/v2/stocks/bars`` for the one-minute bars
of the asked symbols (``symbols=`` a comma list, ``batch_size`` symbols per request,
following ``next_page_token`` for at most ``max_pages`` pages) since the newest bar it
has already returned for each symbol.  It keeps only *completed* minutes (bar start +
1 minute <= ``end``) that are newer than that, and folds each symbol's new minutes into
one :class:`Bar` for the step: the start of the first minute, the end of the last, the
first open, the highest high, the lowest low, the last close and the summed volume.  A
symbol without a new completed minute is left out, so nothing fills on stale data.
Prices are Decimals rounded to 1e-4; no float is involved.  Bars older than
``lookback`` seconds are never asked for (after a long outage the step starts afresh);
a minute Alpaca publishes late is still returned by the next update that sees it.

``assets`` reads ``GET {trading_url}/v2/assets?status=active&asset_class=us_equity``
and ``corporate_actions`` ``GET {data_url}/v1/corporate-actions`` (forward and reverse
splits, cash dividends).  Requests carry ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY``;
timeouts, back-off, 429 handling and the outage log are :mod:`papertrader.market.http`'s.
With the free plan use ``feed="iex"`` (bars exist only for minutes with an IEX trade and
carry IEX volume only); ``"sip"`` needs a paid plan.  The free plan allows 200 requests
a minute: a fetch costs ceil(symbols / batch_size) requests (more with pages).
"""

from datetime import timedelta, timezone
from urllib.parse import urlsplit

from twisted.internet import defer
from zope.interface import implementer

from papertrader.logs import counted
from papertrader.market import answers
from papertrader.market.answers import Malformed
from papertrader.market.http import ProviderHTTP, batches
from papertrader.market.sources import Asset, IMarketDataSource
from papertrader.trading.corporate import Dividend, Split
from papertrader.trading.market import BadBar, Bar

MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)
#: How much later than its ex-date a corporate action may be processed (Alpaca filters on process_date).
PROCESSING_LAG = timedelta(days=90)
FEEDS = ("iex", "sip", "delayed_sip", "boats", "overnight", "otc")
ACTION_TYPES = "forward_split,reverse_split,cash_dividend"


def _check_url(url, what):
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} must be an http(s) URL")
    return url.rstrip("/")


def _rfc3339(moment):
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _minute(moment):
    return moment.replace(second=0, microsecond=0)


@implementer(IMarketDataSource)
class AlpacaSource:
    name = "alpaca"

    def __init__(self, data_url, trading_url, key_id, secret_key, feed="iex", timeout=10.0, reactor=None,
                 log=None, batch_size=100, max_pages=10, page_limit=10_000, lookback=900):
        if not key_id or not secret_key:
            raise ValueError("the alpaca source needs a key id and a secret key")
        if feed not in FEEDS:
            raise ValueError(f"alpaca feed must be one of {', '.join(FEEDS)}")
        if not 1 <= batch_size <= 1000 or not 1 <= max_pages <= 1000 or not 1 <= page_limit <= 10_000:
            raise ValueError("alpaca batch_size, max_pages and page_limit are out of range")
        self.data_url = _check_url(data_url, "alpaca data_url")
        self.trading_url = _check_url(trading_url, "alpaca trading_url")
        self.feed = feed
        self.batch_size = batch_size
        self.max_pages = max_pages
        self.page_limit = page_limit
        self.lookback = timedelta(seconds=max(60, lookback))
        credentials = {"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key}
        keys = ("check the master's APCA_API_KEY_ID and APCA_API_SECRET_KEY: a paper account's keys, from"
                " Alpaca's dashboard")
        self.data = ProviderHTTP("alpaca", reactor, timeout, log, credentials, (key_id, secret_key),
                                 refused_hint=keys)
        self.trading = ProviderHTTP("alpaca trading", reactor, timeout, log, credentials, (key_id, secret_key),
                                    max_body=64 * 1024 * 1024, refused_hint=keys)
        self.log = self.data.log
        #: symbol -> start of the newest minute returned (a first fetch sets it just before its interval).
        self._last = {}

    def __repr__(self):
        return f"<AlpacaSource {self.data_url} feed={self.feed} {self.state}>"

    @property
    def state(self):
        """The market data host's state: "ok", "unavailable: ..." or "rate limited until ..."."""
        return self.data.state

    def resume(self, symbol, price):
        """Live prices need no seed."""

    def close(self):
        return defer.gatherResults([self.data.close(), self.trading.close()])

    # --- bars -------------------------------------------------------------------------------

    #: The market service passes the session's hours to ``fetch`` (its minutes only: no pre-market, no after-hours).
    takes_session = True
    #: Seconds after a session's close before its last update asks for its bars: a minute is published some
    #: seconds after it ends, and the closing minute is the one ``cls`` orders trade at.
    close_settle = 60

    def fetch(self, symbols, start, end, session=None):
        return self.data.attempt(self._fetch, list(dict.fromkeys(symbols)), start, end, session)

    @defer.inlineCallbacks
    def _fetch(self, symbols, start, end, session=None):
        if not symbols:
            return {}
        first = _minute(start) - MINUTE
        for symbol in symbols:
            self._last.setdefault(symbol, first)
        oldest = _minute(end) - self.lookback
        if session is not None:  # the session's minutes only: [open, close)
            oldest = max(oldest, _minute(session[0]))
            end = min(end, session[1])
        results = yield defer.gatherResults(
            [self._fetch_batch(batch, end, oldest) for batch in batches(symbols, self.batch_size)],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        minutes = {}
        for result in results:
            minutes.update(result)
        bars = {}
        for symbol, found in minutes.items():
            found = sorted(found.values(), key=lambda bar: bar.start)
            if found:
                bars[symbol] = Bar(symbol, found[0].start, found[-1].end, found[0].open,
                                   max(b.high for b in found), min(b.low for b in found), found[-1].close,
                                   sum(b.volume for b in found), minutes=tuple(found))
                self._last[symbol] = found[-1].start
        return bars

    def _fetch_batch(self, symbols, end, oldest):
        since = max(min(self._last[s] for s in symbols) + MINUTE, oldest)
        found = {}  # symbol -> {minute start: Bar}

        def keep(symbol, bar):
            if self._last[symbol] < bar.start and bar.start >= oldest and bar.end <= end:
                found.setdefault(symbol, {})[bar.start] = bar

        d = self._bars(symbols, "1Min", since, end, MINUTE, keep, "the rest comes next update")
        return d.addCallback(lambda _: found)

    @defer.inlineCallbacks
    def _bars(self, symbols, timeframe, start, end, length, keep, rest, adjustment="raw"):
        """Ask for the ``timeframe`` bars of ``symbols`` in [start, end), page after page; ``keep(symbol, bar)``
        is given each (a Bar ``length`` long from its 't').  Fires with whether every page was read (False: cut
        at ``max_pages``)."""
        wanted = set(symbols)
        params = {"symbols": ",".join(symbols), "timeframe": timeframe, "start": _rfc3339(start),
                  "end": _rfc3339(end), "feed": self.feed, "adjustment": adjustment, "sort": "asc",
                  "limit": str(self.page_limit)}
        token, seen = None, set()
        for page in range(self.max_pages):
            if token is not None:
                params["page_token"] = token
            answer = yield self.data.get_json(f"{self.data_url}/v2/stocks/bars", params, "/v2/stocks/bars",
                                              lambda body: answers.load_json(body, "the bars answer"))
            token = self._read_bars(answer, wanted, length, keep)
            if token is None:
                return True
            if token in seen:
                raise Malformed("the bars answer repeats a next_page_token")
            seen.add(token)
        self.data.note_once(("pages", timeframe, tuple(symbols[:1])), "{name}: bars of {symbols} needed more"
                            " than {pages}; {rest}", name="alpaca", symbols=counted(len(symbols), "symbol"),
                            pages=counted(self.max_pages, "page"), rest=rest)
        return False

    def _read_bars(self, answer, wanted, length, keep):
        if not isinstance(answer, dict):
            raise Malformed("the bars answer is not an object")
        bars = answers.field(answer, "bars", (dict,), "the bars answer", optional=True) or {}
        token = answers.field(answer, "next_page_token", (str,), "the bars answer", optional=True)
        for symbol, items in bars.items():
            if symbol not in wanted:
                self.data.note_once(("unknown", symbol), "{name}: the answer holds {symbol}, which was not asked "
                                    "for; left out", name="alpaca", symbol=symbol[:32])
                continue
            if not isinstance(items, list):
                raise Malformed(f"the bars of {symbol} are not a list")
            for item in items:
                keep(symbol, self._bar(symbol, item, length))
        return token or None

    @staticmethod
    def _bar(symbol, item, length):
        what = f"a bar of {symbol}"
        start = answers.timestamp(answers.field(item, "t", (str,), what), f"{what}: 't'")
        o, h, l, c = (answers.price(answers.number(item, k, what), f"{what}: {k!r}") for k in "ohlc")
        volume = answers.whole(answers.number(item, "v", what), f"{what}: 'v'")
        try:
            return Bar(symbol, start, start + length, o, h, l, c, volume).check()
        except BadBar as e:
            raise Malformed(f"{what} at {item['t']} cannot be true: {e}")

    # --- the days before ----------------------------------------------------------------------

    def daily_bars(self, symbols, start, end):
        """Fire with {symbol: [Bar]}: the daily bars of the days in [start, end), oldest first, each starting at
        its day's 't' (midnight, New York time) and a day long (the market service puts each on its session).
        At a fresh start, so that a symbol has a price, and charts a past, before its first minute trades.
        Adjusted for the splits among them (the market applies only those after its start), as charts show them."""
        return self.data.attempt(self._daily_bars, list(dict.fromkeys(symbols)), start, end)

    @defer.inlineCallbacks
    def _daily_bars(self, symbols, start, end):
        found = {}
        last = []  # the symbol of the newest bar read (pages hold a symbol's days, then the next symbol's)

        def keep(symbol, bar):
            last[:] = [symbol]
            if start <= bar.start < end:
                found.setdefault(symbol, {})[bar.start] = bar

        for batch in batches(symbols, self.batch_size):
            whole = yield self._bars(batch, "1Day", start, end, DAY, keep, "the symbols after are left without a"
                                     " past", adjustment="split")
            if not whole and last:
                found.pop(last[0], None)  # its newest days were not read: an old close is not its price
        return {symbol: [days[t] for t in sorted(days)] for symbol, days in found.items()}

    # --- assets -----------------------------------------------------------------------------

    def assets(self, symbols):
        return self.trading.attempt(self._assets, set(symbols))

    @defer.inlineCallbacks
    def _assets(self, wanted):
        listing = yield self.trading.get_json(
            f"{self.trading_url}/v2/assets", {"status": "active", "asset_class": "us_equity"}, "/v2/assets",
            lambda body: answers.load_json(body, "the assets answer"))
        if not isinstance(listing, list):
            raise Malformed("the assets answer is not a list")
        found = {}
        for item in listing:
            symbol = answers.field(item, "symbol", (str,), "an asset")
            if symbol not in wanted:
                continue
            what = f"the asset {symbol}"
            found[symbol] = Asset(
                symbol,
                name=answers.field(item, "name", (str,), what, optional=True) or "",
                exchange=answers.field(item, "exchange", (str,), what),
                asset_class=answers.field(item, "class", (str,), what),
                tradable=answers.field(item, "tradable", (bool,), what),
                fractionable=answers.field(item, "fractionable", (bool,), what))
        return [found[s] for s in sorted(found)]

    # --- corporate actions ------------------------------------------------------------------

    def corporate_actions(self, symbols, start, end):
        return self.data.attempt(self._corporate_actions, list(dict.fromkeys(symbols)), start, end)

    @defer.inlineCallbacks
    def _corporate_actions(self, symbols, start, end):
        if not symbols or start >= end:
            return []
        actions = {}
        for batch in batches(symbols, self.batch_size):
            # Alpaca filters on process_date (a dividend is processed on its pay date), so look past ``end``.
            params = {"symbols": ",".join(batch), "types": ACTION_TYPES, "start": start.isoformat(),
                      "end": (end - timedelta(days=1) + PROCESSING_LAG).isoformat(), "limit": "1000", "sort": "asc"}
            token, seen = None, set()
            for page in range(self.max_pages):
                if token is not None:
                    params["page_token"] = token
                answer = yield self.data.get_json(
                    f"{self.data_url}/v1/corporate-actions", params, "/v1/corporate-actions",
                    lambda body: answers.load_json(body, "the corporate actions answer"))
                token = self._read_actions(answer, set(batch), start, end, actions)
                if token is None:
                    break
                if token in seen:
                    raise Malformed("the corporate actions answer repeats a next_page_token")
                seen.add(token)
        return sorted(actions.values(), key=lambda a: (getattr(a, "date", None) or a.ex_date, a.symbol))

    def _read_actions(self, answer, wanted, start, end, actions):
        what = "the corporate actions answer"
        groups = answers.field(answer, "corporate_actions", (dict,), what, optional=True) or {}
        token = answers.field(answer, "next_page_token", (str,), what, optional=True)
        for group, items in groups.items():
            if group not in ("forward_splits", "reverse_splits", "cash_dividends"):
                continue  # not asked for
            if not isinstance(items, list):
                raise Malformed(f"{what}: {group!r} is not a list")
            for item in items:
                symbol = answers.field(item, "symbol", (str,), f"an item of {group}")
                if symbol not in wanted:
                    self.data.note_once(("unknown", symbol), "{name}: the answer holds {symbol}, which was not "
                                        "asked for; left out", name="alpaca", symbol=symbol[:32])
                    continue
                item_what = f"{group[:-1].replace('_', ' ')} of {symbol}"
                ex_date = answers.day(answers.field(item, "ex_date", (str,), item_what), f"{item_what}: ex_date")
                if not start < ex_date <= end:
                    continue
                key = answers.field(item, "id", (str,), item_what, optional=True) or (group, symbol, ex_date)
                if group == "cash_dividends":
                    rate = answers.positive(answers.number(item, "rate", item_what), f"{item_what}: rate")
                    paid = answers.field(item, "payable_date", (str,), item_what, optional=True)
                    actions[key] = Dividend(symbol, ex_date, rate,
                                            answers.day(paid, f"{item_what}: payable_date") if paid else None)
                else:
                    new = answers.positive(answers.number(item, "new_rate", item_what), f"{item_what}: new_rate")
                    old = answers.positive(answers.number(item, "old_rate", item_what), f"{item_what}: old_rate")
                    actions[key] = Split(symbol, ex_date, new, old)
        return token or None
