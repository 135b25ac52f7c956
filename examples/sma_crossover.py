#!/usr/bin/env python3
"""A moving-average crossover strategy written with alpaca-py only; it runs unchanged against Alpaca's paper
trading or against a PaperTrader cluster.

Each new bar of SYMBOL (alpaca-py's StockDataStream) updates a fast and a slow simple moving average of the
closes. While the fast one is above the slow one the strategy holds QTY shares; below, none: it buys when
the fast average rises above the slow one and sells when it falls below. Its orders go through
TradingClient; their fills come back through TradingStream, which keeps the strategy's idea of its position
honest (an order is never sent while another one is still open).

Configuration (environment): APCA_API_KEY_ID and APCA_API_SECRET_KEY (an API key: 'papertrader api-key
create'); APCA_API_BASE_URL (or PAPERTRADER_URL; default http://127.0.0.1:2060, the first worker of a local
'twistd papertrader-cluster'), the REST base without /v2: the streams are at ws(s)://same-host/stream and
/v2/iex (https://paper-api.alpaca.markets: Alpaca's own URLs); PAPERTRADER_CA: a CA certificate to trust
for https (a deployment's own ca.pem).

    python examples/sma_crossover.py --symbol AAPL --fast 3 --slow 8 --qty 10 --bars 50

--bars N stops after N bars (0: run until Ctrl-C). One line per bar, order and fill on standard output.
"""

import argparse
import asyncio
import logging
import os
import ssl
import sys
import threading
from collections import deque
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

try:
    from alpaca.common.exceptions import APIError
    from alpaca.data.enums import DataFeed
    from alpaca.data.live import StockDataStream
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest
    from alpaca.trading.stream import TradingStream
except ImportError:  # PaperTrader itself does not need it: the quick start does not install it
    sys.exit("sma_crossover.py: alpaca-py is not installed; install it with: .venv/bin/pip install alpaca-py==0.44.0")


def settings(argv=None):
    parser = argparse.ArgumentParser(description="Moving-average crossover with alpaca-py.")
    parser.add_argument("--symbol", default="AAPL")
    parser.add_argument("--fast", type=int, default=3, help="bars in the fast moving average (default 3)")
    parser.add_argument("--slow", type=int, default=8, help="bars in the slow moving average (default 8)")
    parser.add_argument("--qty", type=int, default=1, help="shares held while fast > slow (default 1)")
    parser.add_argument("--bars", type=int, default=0, help="stop after this many bars (default 0: never)")
    parser.add_argument("--feed", default="iex", choices=("iex", "sip"))
    args = parser.parse_args(argv)
    if not 1 <= args.fast < args.slow:
        parser.error("--fast must be at least 1 and below --slow")
    args.key = os.environ.get("APCA_API_KEY_ID")
    args.secret = os.environ.get("APCA_API_SECRET_KEY")
    if not args.key or not args.secret:
        parser.error("set APCA_API_KEY_ID and APCA_API_SECRET_KEY (papertrader api-key create)")
    args.base = (os.environ.get("APCA_API_BASE_URL") or os.environ.get("PAPERTRADER_URL")
                 or "http://127.0.0.1:2060").rstrip("/")
    parts = urlsplit(args.base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        parser.error(f"APCA_API_BASE_URL: an http(s)://host:port URL, not {args.base!r}")
    ws = "wss" if parts.scheme == "https" else "ws"
    args.trade_url = urlunsplit((ws, parts.netloc, parts.path + "/stream", "", ""))
    args.data_url = urlunsplit((ws, parts.netloc, parts.path + "/v2/" + args.feed, "", ""))
    if (parts.hostname or "").endswith("alpaca.markets"):  # Alpaca itself: alpaca-py's own URLs
        args.base = args.trade_url = args.data_url = None
    # The CA is for https:// (wss://) only: a ws:// stream given one fails ("use a wss:// URI"), forever.
    args.ca = os.environ.get("PAPERTRADER_CA") if parts.scheme == "https" else None
    return args


def say(text):
    print(text, flush=True)


def shares(value):
    """A quantity as people write it (5, not 5.0)."""
    text = format(Decimal(str(value)).normalize(), "f")
    return "0" if text in ("-0", "0") else text


class Strategy:
    def __init__(self, args):
        self.args = args
        if args.ca:
            # alpaca-py's REST client uses requests: PAPERTRADER_CA wins over a system-wide REQUESTS_CA_BUNDLE
            # (many systems set one, which does not hold the deployment's CA).
            os.environ["REQUESTS_CA_BUNDLE"] = args.ca
        self.trading = TradingClient(args.key, args.secret, paper=True, url_override=args.base)
        params = None
        if args.ca:  # websocket_params replace alpaca-py's defaults: keep its pings
            params = {"ssl": ssl.create_default_context(cafile=args.ca), "ping_interval": 10, "ping_timeout": 180,
                      "max_queue": 1024}
        self.data = StockDataStream(args.key, args.secret, url_override=args.data_url, websocket_params=params,
                                    feed=DataFeed(args.feed))
        self.updates = TradingStream(args.key, args.secret, paper=True, url_override=args.trade_url,
                                     websocket_params=params)
        self.closes = deque(maxlen=args.slow)
        self.lock = threading.Lock()
        self.position = self._position()
        self.open_order = None  # the id of our order not yet filled or ended
        self.bars = self.orders = self.fills = 0

    def _position(self):
        try:
            return Decimal(self.trading.get_open_position(self.args.symbol).qty)
        except APIError as e:
            if e.status_code == 404:
                return Decimal(0)
            raise

    async def on_trade_update(self, update):
        with self.lock:
            if self.open_order is None or str(update.order.id) != self.open_order:
                return
            if update.event in ("fill", "partial_fill"):
                self.fills += 1
                self.position = Decimal(str(update.position_qty))
                say(f"fill {update.order.side.value} {shares(update.qty)} {update.order.symbol} @ {update.price},"
                    f" position {shares(self.position)}")
            if update.event in ("fill", "canceled", "expired", "rejected", "replaced"):
                self.open_order = None

    async def on_bar(self, bar):
        self.closes.append(Decimal(str(bar.close)))
        self.bars += 1
        fast = slow = None
        if len(self.closes) == self.args.slow:
            fast = sum(list(self.closes)[-self.args.fast:]) / self.args.fast
            slow = sum(self.closes) / self.args.slow
            await self.decide(fast, slow)
        say(f"bar {self.bars} {bar.symbol} {bar.timestamp:%Y-%m-%d %H:%M:%S} close {bar.close}"
            + (f" fast {fast:.2f} slow {slow:.2f}" if fast is not None else " (filling the averages)")
            + f" position {shares(self.position)}")
        if self.args.bars and self.bars >= self.args.bars:
            await self.data.stop_ws()  # ends data.run() once this handler returns

    async def decide(self, fast, slow):
        with self.lock:
            if self.open_order is not None:
                return  # wait for the last order to end
            target = Decimal(self.args.qty) if fast > slow else Decimal(0)
            change = target - self.position
        if change == 0:
            return
        side = OrderSide.BUY if change > 0 else OrderSide.SELL
        request = MarketOrderRequest(symbol=self.args.symbol, qty=float(abs(change)), side=side,
                                     time_in_force=TimeInForce.DAY)
        order = await asyncio.to_thread(self.trading.submit_order, request)  # REST is blocking: off the loop
        self.orders += 1
        with self.lock:
            if order.status.value not in ("filled", "canceled", "expired", "rejected"):
                self.open_order = str(order.id)
        say(f"order {side.value} {shares(abs(change))} {self.args.symbol}: {order.id} ({order.status.value})")

    def run(self):
        account = self.trading.get_account()
        say(f"account {account.account_number}: cash {account.cash}, {self.args.symbol} position"
            f" {shares(self.position)}")
        self.updates.subscribe_trade_updates(self.on_trade_update)
        updates = threading.Thread(target=self.updates.run, name="trade updates", daemon=True)
        updates.start()
        self.data.subscribe_bars(self.on_bar, self.args.symbol)
        say(f"waiting for bars of {self.args.symbol} ({self.args.data_url or 'Alpaca'})")
        try:
            self.data.run()
        finally:
            if getattr(self.updates, "_loop", None) is not None:  # its stop() needs a started loop
                self.updates.stop()  # it notices within 5 s
            updates.join(10)
        say(f"done: {self.bars} bars, {self.orders} orders, {self.fills} fills, position {shares(self.position)}")


def main(argv=None):
    args = settings(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    Strategy(args).run()


if __name__ == "__main__":
    main()
