"""``/v2/iex`` and ``/v2/sip``: Alpaca's live market-data stream, as alpaca-py 0.44's ``StockDataStream``
speaks it.

::

    <- [{"T": "success", "msg": "connected"}]                        (at once)
    -> {"action": "auth", "key": KEY, "secret": SECRET}
    <- [{"T": "success", "msg": "authenticated"}]
    -> {"action": "subscribe", "trades": ["AAPL"], "quotes": ["AAPL"], "bars": ["*"]}   (adds)
    <- [{"T": "subscription", "trades": [...], "quotes": [...], "bars": [...], ...}]  (the whole set)
    -> {"action": "unsubscribe", "bars": ["*"]}                       (removes)
    <- [{"T": "t", "S": "AAPL", ...}, {"T": "q", ...}, {"T": "b", ...}, ...]           (each update)

msgpack in binary frames when the upgrade says ``Content-Type: application/msgpack`` (alpaca-py
does), with ``t`` a msgpack Timestamp; JSON in text frames otherwise, with ``t`` an RFC 3339 string.
Errors are ``[{"T": "error", "code": N, "msg": TEXT}]`` (:data:`.connection.CODES`).

Each new price of a symbol (a quote the master pushes with the bar it came from) gives a trade at
that price (its size the bar's volume, so the trades of a period add up to its volume; ``i`` the
time in nanoseconds), a quote (the bid and the ask of the fill model's spread, one round lot each)
and a bar (``t`` its start; a whole session's bar, a replay of whole days': midnight of its day in the market's
zone, as the REST API's daily bar of that day). A quote pushed without a fresh bar (a snapshot, a stale mark) sends
nothing. Prices are msgpack/JSON floats, as Alpaca sends them.
"""

import re

from papertrader import commands
from papertrader.worker.fanout import ALL
from papertrader.worker.http import alpaca
from papertrader.worker.http.streams import limits
from papertrader.worker.http.streams.connection import StreamProtocol, message_of

#: The channels served, and the ``T`` of their messages.
CHANNELS = {"trades": "t", "quotes": "q", "bars": "b"}
#: Channels alpaca-py may subscribe to that PaperTrader does not stream (accepted, refused with 410).
NOT_STREAMED = ("updatedBars", "dailyBars", "statuses", "lulds", "orderbooks", "news", "corrections",
                "cancelErrors")
SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9.\-/]{0,15}")

def data_points(quote, wanted):
    """The trade, quote and bar of one pushed quote, for the channels in ``wanted``."""
    symbol, time = quote["symbol"], quote["time"]
    out = []
    if "trades" in wanted:  # (as the REST API's latest trade and quote)
        out.append({"T": "t", "S": symbol, **alpaca.trade_fields(quote), "t": time})
    if "quotes" in wanted:
        out.append({"T": "q", "S": symbol, **alpaca.quote_fields(quote), "t": time})
    if "bars" in wanted:
        out.append({"T": "b", "S": symbol, "o": quote["open"], "h": quote["high"], "l": quote["low"],
                    "c": quote["price"], "v": int(quote.get("volume") or 0), "n": None, "vw": None,
                    "t": quote.get("bar_day") or quote["bar_start"]})
    return out


class MarketDataProtocol(StreamProtocol):
    def __init__(self, hub, path):
        super().__init__(hub, path)
        self.subscribed = {channel: set() for channel in CHANNELS}
        self._outgoing = []
        self._flush = None

    def opened(self):
        self.send([{"T": "success", "msg": "connected"}])

    def received(self, message):
        action = message.get("action")
        if action == "auth":
            return self.authenticate(message.get("key"), message.get("secret"))
        if action in ("subscribe", "unsubscribe"):
            if not self.authenticated:
                return self.error(401)
            return self.subscribe(message, action == "subscribe")
        return self.error(400, f"unknown action {str(action)[:32]!r}" if action is not None else "no action")

    def authorized(self):
        self.send([{"T": "success", "msg": "authenticated"}])

    def send_error(self, code, detail=None):
        self.send([{"T": "error", "code": code, "msg": message_of(code, detail)}])

    # --- subscriptions ------------------------------------------------------------------------

    def subscribe(self, message, add):
        change = {}
        for channel in CHANNELS:
            symbols = message.get(channel)
            if symbols is None:
                continue
            if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
                return self.error(400, f"{channel} must be a list of symbols")
            wanted = set()
            for symbol in symbols:
                symbol = symbol.strip().upper()
                if symbol != ALL and not SYMBOL_RE.fullmatch(symbol):
                    return self.error(400, f"{symbol[:20]!r} is not a symbol")
                wanted.add(symbol)
            change[channel] = wanted
        unsupported = [channel for channel in NOT_STREAMED if message.get(channel)]
        new = {channel: (held | change.get(channel, set())) if add else (held - change.get(channel, set()))
               for channel, held in self.subscribed.items()}
        if sum(len(held) for held in new.values()) > limits.MAX_SUBSCRIPTIONS:
            return self.error(405, f"at most {limits.MAX_SUBSCRIPTIONS} subscriptions on one connection")
        self.subscribed = new
        fanout = self.hub.worker.fanout
        fanout.forget(self.watcher)
        symbols = set().union(*new.values())
        if symbols:
            fanout.watch(self.watcher, sorted(symbols))
        if unsupported and add:
            self.error(410, f"{', '.join(unsupported)}: PaperTrader streams trades, quotes and bars only")
        reply = {"T": "subscription"}
        reply.update({channel: sorted(held) for channel, held in new.items()})
        reply.update({channel: [] for channel in ("updatedBars", "dailyBars", "statuses", "lulds", "corrections",
                                                  "cancelErrors")})
        self.send([reply])

    # --- pushed prices --------------------------------------------------------------------------

    def pushed(self, command, quote):
        if command is not commands.Tick or self.closed or "bar_start" not in quote:
            return
        symbol = quote["symbol"]
        wanted = [channel for channel, held in self.subscribed.items() if symbol in held or ALL in held]
        if not wanted:
            return
        self._outgoing.extend(data_points(quote, wanted))
        if self._flush is None:
            # Every quote of one update is pushed in one go: send them as one frame (or a few), like Alpaca.
            self._flush = self.hub.worker.reactor.callLater(0, self.flush)

    def flush(self):
        self._flush = None
        points, self._outgoing = self._outgoing, []
        for start in range(0, len(points), limits.MAX_BATCH):
            self.send(points[start:start + limits.MAX_BATCH])

    def _gone(self):
        super()._gone()
        self._outgoing = []
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        self._flush = None
