"""Market-data commands the master answers: candles and the market clock (quotes come from a worker's cache)."""

from datetime import timedelta

from twisted.internet import defer

from papertrader.errors import InvalidInput
from papertrader.master import validation
from papertrader.market.sources import asset_uuid
from papertrader.master.candles import INTERVALS

#: Most candles one answer holds (fewer if they do not fit one AMP value: page on with --start).
MAX_CANDLES = 1000


class MarketDataCommands:
    def __init__(self, board, candles, market_clock, source=None):
        self.board = board
        self.candles_store = candles
        self.market_clock = market_clock
        self.source = source

    @property
    def default_interval(self):
        """Daily candles for a replay that plays whole sessions, minute candles otherwise."""
        return "1d" if getattr(self.market_clock, "step_text", None) == "1d" else "1m"

    @defer.inlineCallbacks
    def candles(self, stamp, symbol, limit, interval=None, start=None, end=None):
        symbol = validation.symbol(symbol, self.board.assets)
        validation.limit(limit, MAX_CANDLES)
        interval = interval or self.default_interval
        if interval not in INTERVALS:
            raise InvalidInput(f"interval must be one of {', '.join(INTERVALS)}")
        if start is not None and end is not None and end <= start:
            raise InvalidInput("the end must come after the start")
        candles = yield self.candles_store.read(symbol, interval, limit, start, end)
        return {"candles": candles, "interval": interval}

    def clock(self, stamp):
        answer = self.market_clock.describe()
        if self.source is not None:
            state = getattr(self.source, "state", "ok")
            answer["source"] = self.source.name + ("" if state == "ok" else f" ({state})")
        return answer

    def calendar(self, stamp, start=None, end=None):
        """The sessions between two days (default: from today to the end of next month), at most 10 years."""
        from datetime import timedelta

        now = self.market_clock.now()
        start = start or now.replace(hour=0, minute=0, second=0, microsecond=0)
        end = end or start + timedelta(days=62)
        if end < start:
            raise InvalidInput("the end must not come before the start")
        end = min(end, start + timedelta(days=3660))
        calendar = self.market_clock.calendar
        sessions = calendar.sessions(start, end + timedelta(days=1))
        return {"sessions": [dict(date=s.open.date().isoformat(), open=s.open, close=s.close) for s in sessions]}

    def asset_list(self, stamp, symbol=None):
        """The traded assets, as the source describes them (``symbol``: just that one)."""
        symbols = self.board.assets
        if symbol is not None:
            symbols = [validation.symbol(symbol, self.board.assets)]
        out = []
        for s in symbols:
            info = self.board.info[s]
            quote = self.board.get(s)
            asset = dict(id=asset_uuid(s), symbol=s, name=info.name or s, exchange=info.exchange or "",
                         asset_class=info.asset_class or "us_equity", tradable=info.tradable,
                         fractionable=info.fractionable,
                         price=quote.price if quote else None,
                         previous_close=quote.previous_close if quote else None)
            out.append({k: v for k, v in asset.items() if v is not None})
        return {"assets": out}

    @defer.inlineCallbacks
    def bars(self, stamp, symbols, timeframe, start=None, end=None, limit=None, page_token=None, sort=None):
        """Bars of several symbols, sorted by symbol then time, at most ``limit`` (1-10000) in all; the next
        page starts after ``page_token`` (symbol and time of the last bar given)."""
        interval = BAR_TIMEFRAMES.get(timeframe)
        if interval is None:
            raise InvalidInput(f"timeframe must be one of {', '.join(BAR_TIMEFRAMES)}")
        if not symbols or len(symbols) > 200:
            raise InvalidInput("give 1 to 200 symbols")
        wanted = sorted({validation.symbol(s, self.board.assets) for s in symbols})
        limit = limit or 1000
        validation.limit(limit, 10_000)
        if sort not in (None, "asc", "desc"):
            raise InvalidInput("sort must be asc or desc")
        after_symbol, after_time = None, None
        if page_token:
            after_symbol, after_time = _page_token(page_token)
        out, left, more = [], limit, None
        for symbol in wanted:
            if after_symbol is not None and symbol < after_symbol:
                continue
            first = start
            if symbol == after_symbol:
                first = after_time + timedelta(microseconds=1)
            if start is None and first is None:
                from datetime import datetime, timezone

                first = datetime(1900, 1, 1, tzinfo=timezone.utc)
            candles = yield self.candles_store.read(symbol, interval, left + 1, first, end)
            for c in candles[:left]:
                out.append(dict(c, symbol=symbol))
            if len(candles) > left:
                more = out[-1]
                break
            left -= len(candles)
            if left <= 0:
                more = out[-1] if out else None
                break
        if sort == "desc":
            out.sort(key=lambda b: (b["symbol"], b["time"]), reverse=True)
        answer = {"bars": out}
        if more is not None:
            answer["next_page_token"] = f"{more['symbol']}|{more['time'].isoformat()}"
        return answer


#: The bar timeframes served, and the candles they read.
BAR_TIMEFRAMES = {"1Min": "1m", "5Min": "5m", "15Min": "15m", "1Hour": "1h", "1Day": "1d"}


def _page_token(token):
    from datetime import datetime

    try:
        symbol, when = token.split("|", 1)
        return symbol, datetime.fromisoformat(when)
    except ValueError:
        raise InvalidInput("page_token: the next_page_token of an earlier page")
