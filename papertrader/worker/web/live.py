"""The page's live connection: a WebSocket at ``/live`` (autobahn), authenticated by the session cookie.

A page opens it and says what it shows (``{"page": "dashboard"}``, ``{"page": "asset", "symbol": "AAPL",
"interval": "1m"}``, ``{"page": "assets", "symbols": [...]}``: the Trade page's list of prices, at most 200 ...).  The connection then joins the worker's fan-outs like an AMP client that sent
``Watch`` and ``WatchOrders`` (papertrader/worker/fanout.py): the prices of the symbols the page shows,
and the order events of its account (so the master pushes those to this worker).  It is one of the
worker's clients: it counts in the worker's load, hears its notices, and is closed when the worker
stops or is kicked.

What it sends, as JSON text messages, each already formatted by the server (the page does no money
arithmetic):

- ``{"t": "set", "v": {key: [text, sign]}}``: new text for the elements ``data-live=key``; after every update,
  the header's market clock among them (``market``: open or closed, ``clock``: the market's time, as the
  master's QuotesTick says them: what a reload shows, not the time of the newest price);
- ``{"t": "html", "v": {name: html}}``: a part that changed shape (``data-section=name``), rendered by
  the same functions as the page (papertrader/worker/web/views.py); a game's page (``{"page": "game",
  "game": NAME}``) gets its leaderboard again whenever the master says that game's standings changed
  (``GamesChanged``: each update that ranks the games -- asked once per game for all its pages --, a
  player joining or removed, the game ended; these last also set its status and players, and an ended
  game's creator buttons go; the visitor's own part (``{"mine": ...}``: what the page shows, a Join form or their
  portfolio in it) is sent again only when it changes, with the navigation's portfolio menu once they joined);
  a user's every other open page gets that menu (``portfolio-picker``) when they join a game (in another tab,
  from the command line, or enrolled by the operator: ``GamesChanged`` names who joined), with the game's portfolio;
  and when their portfolios change (``PortfoliosChanged``: one made, renamed, closed, another the default), each
  page going on showing the portfolio it shows (by its new name: ``conn.portfolio`` follows a rename);
- ``{"t": "reload"}``: the portfolio the page shows was closed elsewhere: the page is made again (the default one,
  and it says why);
- ``{"t": "candle", "c": [time, open, high, low, close, volume]}`` and ``{"t": "equity", ...}``: the
  newest candle of the chart's interval, and the account's equity, for the charts;
- ``{"t": "toast", "text": ..., "order": UUID}``: an order event in words (it also replaces the words of the
  page's banner about that order, "...: open.", placed from this page); ``{"t": "notice", ...}``: a worker notice;
- ``{"t": "ready"}`` once subscribed; ``{"t": "signed_out"}`` and close code 4001 when the session ends
  (signed out elsewhere, everywhere, password changed, expired).

Prices are coalesced: every price that arrives in one reactor turn makes one message, and a message is
computed from the newest state only (a page never receives a backlog of old prices).  Portfolio values
between order events are revalued on the worker (papertrader/trading/valuation.py); an order event
makes the page's data be asked of the master again.  A page that stops answering pings is closed.

A page shows one portfolio: the one named in the browser's ``__Host-pt_portfolio`` cookie (by its uuid there, if
it holds one: renamed since, by its new name; closed since, the page is made again), else the default one; its
data is of that portfolio, and order events of the account's other portfolios are not
sent to it (filtered by the event's portfolio uuid, as the HTTP trade stream does).
"""

import json
from decimal import Decimal, InvalidOperation
from http.cookies import CookieError, SimpleCookie

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import defer, task
from twisted.web import resource

from papertrader import commands, tls
from papertrader.errors import NotLoggedIn, PaperTraderError, UnknownGame
from papertrader.guard import is_tls
from papertrader.trading.valuation import new_day, revalue
from papertrader.worker.cache import SessionCache
from papertrader.worker.web import formatting as fmt
from papertrader.worker.web import security, views
from papertrader.worker.web.site import Visit

#: Close code telling the page its session ended (it goes to the sign-in page).
SIGNED_OUT = 4001
#: Most symbols a page listing prices may watch (the Trade page lists at most this many).
MAX_LISTED = 200
PAGES = ("dashboard", "asset", "orders", "history", "account", "assets", "order", "game", "replace", "other")
#: Seconds between checks that the session is still live (it may expire or go idle on the master).
SESSION_CHECK = 60
#: Bytes of one message a page may send (autobahn's limit, which applies to what it sends as well: ``send``
#: lifts it for the server's own messages, whose size the pages' data bounds).
MAX_MESSAGE = 4096
#: Messages a page may send a minute (it sends one per page view): more closes its connection.
MAX_MESSAGES = 30
EVENT_WORDS = {"fill": "Filled", "partial_fill": "Partly filled", "canceled": "Canceled", "expired": "Expired",
               "replaced": "Replaced", "rejected": "Rejected"}


class LiveProtocol(WebSocketServerProtocol):
    """One page's connection.  To the worker's fan-outs it looks like an AMP client (``callRemote``,
    ``client_ip``, ``transport``); every push is answered at once (the page gets only the newest state,
    so nothing queues)."""

    username = None
    token = None
    #: The portfolio the page shows (its name; None: the default one), from the browser's cookie, and its uuid
    #: (None: the cookie holds none).
    portfolio = None
    portfolio_uuid = None
    view = None
    _ip = "unknown"
    _said = ()

    # --- the handshake --------------------------------------------------------------------------------

    async def onConnect(self, request):
        live = self.factory.live
        secure = is_tls(self.transport)
        expected = f"{'https' if secure else 'http'}://{request.headers.get('host', '')}"
        if request.headers.get("origin") != expected:
            live.worker.log.info("website: refused a live connection from {ip} for origin {origin}",
                                 ip=self.peer, origin=str(request.headers.get("origin"))[:100])
            raise ConnectionDeny(403, "origin not allowed")
        self._ip = getattr(self.transport.getPeer(), "host", "unknown")
        self.token = security.session_value(_session_cookie(request.headers.get("cookie", "")))
        self.portfolio, self.portfolio_uuid = _portfolio_cookie(request.headers.get("cookie", ""))
        if self.token is not None:
            try:
                self.username = await live.worker.gateway.session(self.token, self._ip)
            except NotLoggedIn:
                self.username = None
            except PaperTraderError:
                raise ConnectionDeny(503, "the server cannot check the session now")
        return None

    def onOpen(self):
        # Small messages that should arrive at once: no waiting for the browser's delayed ACK (Nagle).
        tls.no_delay(self.transport)
        if self.username is None:
            self.signed_out()
            return
        self.factory.live.opened(self)

    def onClose(self, wasClean, code, reason):
        if self.factory is not None and self.username is not None:
            self.factory.live.closed(self)

    # --- what the page says ---------------------------------------------------------------------------

    def onMessage(self, payload, isBinary):
        if isBinary or len(payload) > MAX_MESSAGE or self.username is None:
            self.sendClose(1003)
            return
        now = self.factory.live.reactor.seconds()
        self._said = [t for t in self._said if t > now - 60] + [now]
        if len(self._said) > MAX_MESSAGES:
            self.sendClose(1008, "too many messages")
            return
        try:
            message = json.loads(payload.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            self.sendClose(1003)
            return
        if not isinstance(message, dict):
            self.sendClose(1003)
            return
        self.factory.live.subscribe(self, message)

    # --- as a client of the worker's fan-outs ---------------------------------------------------------

    def client_ip(self):
        return self._ip

    def callRemote(self, command, **arguments):
        if self.view is not None:
            if command is commands.Tick:
                self.view.quote(arguments)
            elif command is commands.OrderEvent:
                self.view.event(arguments)
            elif command is commands.Notice:
                self.send({"t": "notice", "code": arguments.get("code"), "text": arguments.get("message")})
        elif command is commands.Notice:
            self.send({"t": "notice", "code": arguments.get("code"), "text": arguments.get("message")})
        return defer.succeed({})

    def send(self, message):
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            limit, self.maxMessagePayloadSize = self.maxMessagePayloadSize, 0  # a limit on what pages send only
            try:
                self.sendMessage(json.dumps(message, separators=(",", ":")).encode("utf-8"), isBinary=False)
            finally:
                self.maxMessagePayloadSize = limit

    def signed_out(self):
        self.send({"t": "signed_out"})
        if self.state == WebSocketServerProtocol.STATE_OPEN:
            self.sendClose(SIGNED_OUT, "signed out")


def _session_cookie(header, name=security.SESSION_COOKIE):
    try:
        jar = SimpleCookie()
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(name.decode("ascii"))
    if morsel is None or not morsel.value or len(morsel.value) > 512:
        return None
    return morsel.value


def _portfolio_cookie(header):
    """The portfolio the browser's pages show: (its name, its uuid or None); (None, None): the default one."""
    return security.portfolio_choice(_session_cookie(header, security.PORTFOLIO_COOKIE))


class View:
    """What one page shows, and how it is kept up to date."""

    def __init__(self, live, conn, page, symbol=None, interval=None, first=True, base=None, game=None, listed=(),
                 mine=None):
        self.live = live
        #: A game's page: the visitor's part in the game it shows (views.mine_state: "join", "play", "none"; None:
        #: not said), which is sent again only when it changes.
        self.mine = mine
        #: The symbols a list of prices shows (the Trade page: its assets and watchlists).
        self.listed = list(listed)
        #: The game a game's page shows (its name), whose standings it shows again when they change.
        self.game = game
        self.base = base
        self.conn = conn
        self.page = page
        self.symbol = symbol
        self.interval = interval
        self.first = first
        self.portfolio = None
        #: The shown portfolio's uuid and starting cash: order events of the account's other portfolios
        #: are not shown on this page.
        self.portfolio_uuid = None
        self.starting_cash = None
        self.quotes = {}
        #: The market clock of the newest update not sent yet (the header's; None: none).
        self._market = None
        self._quotes_due = None
        self._refresh = None
        self._again = False
        #: A game's page: the game as its visitor sees it (ShowGame's answer), from its last full render.
        self.game_seen = None
        #: The time of a dashboard chart point to send once the master's figures are in (a new session's).
        self._equity_due = None
        #: A new session was seen in the quotes and its trading step is not done yet (Live.stepped).
        self.awaiting_step = False
        #: That session (its open), and how many new sessions the page has seen.
        self._pending_session = None
        self._sessions_seen = 0
        #: A margin portfolio's call as the page shows it (views.margin_call_state): its notice is sent again only
        #: when that changes (an alert re-sent at every update would be read out at every update).
        self._call_shown = None

    @property
    def website(self):
        return self.live.website

    def call(self, command, **arguments):
        arguments = {k: v for k, v in arguments.items() if v is not None}
        if any(name == b"token" for name, _ in command.arguments):
            arguments["token"] = self.conn.token
        if self.conn.portfolio is not None and any(name == b"portfolio" for name, _ in command.arguments):
            arguments.setdefault("portfolio", self.conn.portfolio)
        return self.live.worker.gateway.forward(command, arguments, self.conn.client_ip())

    @defer.inlineCallbacks
    def portfolio_now(self):
        """The shown portfolio from the master (with its starting cash, for the total P&L)."""
        answer = yield self.call(commands.Portfolio)
        return dict(answer, starting_cash=self.starting_cash or self.website.settings.starting_cash)

    @defer.inlineCallbacks
    def find_portfolio(self):
        """Which of the account's portfolios this page shows: its uuid and starting cash."""
        answer = yield self.call(commands.Portfolios)
        wanted = self.conn.portfolio
        if wanted is not None and self.conn.portfolio_uuid is not None:
            same = [p for p in answer["portfolios"] if p["uuid"] == self.conn.portfolio_uuid]
            if not same:  # closed since the page was made: made again, it shows the default one and says so
                self.conn.portfolio = None
                self.conn.send({"t": "reload"})
                return
            self.conn.portfolio = wanted = same[0]["name"]  # (renamed since: by its name now)
        for p in answer["portfolios"]:
            if (p["name"].casefold() == wanted.casefold()) if wanted is not None else p["default"]:
                self.portfolio_uuid, self.starting_cash = p["uuid"], p["starting_cash"]

    def symbols(self):
        if self.page == "dashboard" and self.portfolio is not None:
            # Without a position, one price paces the chart (the master's curve takes its points from one asset's
            # candles then): the freshest, whose updates are the next points of the cash's flat line (a page of an
            # account without positions had no live point, and its line stopped where the page was made).
            held = [p["symbol"] for p in self.portfolio["positions"]]
            quotes = self.live.worker.quotes.all()
            if held or not quotes:
                return held
            return [max(quotes, key=lambda q: q["time"])["symbol"]]
        if self.page in ("asset", "replace") and self.symbol:
            return [self.symbol]
        if self.page == "assets":
            return self.listed
        return []

    @defer.inlineCallbacks
    def start(self):
        yield self.find_portfolio()
        if self.page in ("dashboard", "asset"):
            self.portfolio = yield self.portfolio_now()
            self._call_shown = views.margin_call_state(self.portfolio)
        if self.page == "game" and self.game is not None:
            try:  # the game as this visitor sees it: each ranking update's standings are then rendered for it
                self.game_seen = yield self.call(commands.ShowGame, name=self.game)
            except PaperTraderError:
                pass  # (ended or hidden since the page was made: the next change makes it whole)
            else:
                if self.mine is not None and views.mine_state(self.game_seen) != self.mine:
                    self.refresh()  # joined (or ended) since the page was made: it is made whole now
        self.live.watch(self.conn, self.symbols())
        if self.live.worker.quotes.market is not None:  # an update may have come since the page was made
            self.conn.send({"t": "set", "v": views.market_values(self.live.worker.quotes.market)})
        self.conn.send({"t": "ready"})

    # --- prices ----------------------------------------------------------------------------------------

    def quote(self, quote):
        self.quotes[quote["symbol"]] = quote
        if self.portfolio is not None and quote.get("session_open") != self._pending_session and \
                new_day(self.portfolio, {quote["symbol"]: quote}):
            # A new session, seen as its quotes arrive (before its MarketStepped, which may come in the same read):
            # its figures are the master's once its trading step is done (Live.stepped).
            self._pending_session = quote.get("session_open")
            self.awaiting_step = True
            self._sessions_seen += 1
        self._due()

    def market(self, market):
        """The market clock of an update (every page's header shows it, as a reload would: a price's time is
        not the market's)."""
        self._market = market
        self._due()

    def _due(self):
        if self._quotes_due is None:
            self._quotes_due = self.live.reactor.callLater(0, self._send_quotes)

    def _send_quotes(self):
        self._quotes_due = None
        quotes, self.quotes = self.quotes, {}
        market, self._market = self._market, None
        values = {} if market is None else views.market_values(market)
        latest = max((q["time"] for q in quotes.values()), default=None)
        if self._equity_due is not None and latest is not None:
            # The master's figures of a new session are on their way: this point goes with them (valued from the
            # day before's portfolio, it would be wrong).
            self._equity_due = max(self._equity_due, latest)
            latest = None
        elif self.portfolio is not None and quotes and new_day(self.portfolio, quotes):
            # A new session: the day's figures (today's change) are the master's to give, asked now and again once
            # its trading step is done (MarketStepped: its fills, splits and dividends in them); the chart's point
            # goes with the second (the portfolio here is the day before's: a daily replay's chart stayed a day
            # behind, and a split's shares were valued at its new price).
            self._equity_due = latest
            self.refresh()
            latest = None
        elif self.portfolio is not None and quotes:
            self.portfolio = revalue(self.portfolio, quotes)
            values.update(views.summary_values(self.portfolio))
            values.update(views.position_values(self.portfolio))
        if self.page in ("asset", "replace") and self.symbol in quotes:
            values.update(views.quote_values(self.symbol, quotes[self.symbol]))
        if self.page == "assets":
            for symbol, quote in quotes.items():
                values.update(views.price_values(symbol, quote))
        if self.page == "asset" and self.symbol in quotes:
            self.live.worker.reactor.callLater(0, self._send_candle)
        self.conn.send({"t": "set", "v": values})
        if self.page == "dashboard" and self.portfolio is not None and latest is not None:
            self._send_equity(latest)

    def _send_equity(self, when):
        """The dashboard chart's newest point: the shown portfolio's equity at ``when``, and its change over the
        chart's range."""
        equity = self.portfolio["equity"]
        if self.base is not None:
            self.conn.send({"t": "set", "v": {"equity_range_change": (fmt.money(equity - self.base, signed=True),
                                                                      fmt.sign(equity - self.base))}})
        self.conn.send({"t": "equity", "time": int(when.timestamp()), "value": fmt.number_text(equity)})

    @defer.inlineCallbacks
    def _send_candle(self):
        try:
            answer = yield defer.ensureDeferred(self.website.candles(self.visit(), self.symbol, self.interval, 1))
            day = yield defer.ensureDeferred(self.website.day_candle(self.visit(), self.symbol))
        except PaperTraderError as e:
            self._failed(e)
            return
        except Exception:
            self.live.worker.log.failure("website: sending a page its newest candle failed")
            return
        if answer["candles"]:
            self.conn.send({"t": "candle", "c": views.candle_rows(answer["candles"][-1:])[0]})
        if day is not None:
            low, high = fmt.price(day["low"]), fmt.price(day["high"])
            self.conn.send({"t": "set", "v": {f"quote.{self.symbol}.day_range": [f"{low} – {high}", None]}})

    def visit(self):
        return Visit(self.conn.token, self.conn.username, self.conn.client_ip(), self.conn.portfolio)

    # --- order events ----------------------------------------------------------------------------------

    def event(self, event):
        if event.get("portfolio_uuid") is not None and event["portfolio_uuid"] != self.portfolio_uuid:
            return  # another portfolio's: not shown here
        orders = event.get("order") or []
        if orders and event.get("event") == "accepted" and orders[0].get("leg") and \
                orders[0].get("order_class") in ("bracket", "oto"):
            # A held exit opened: its entry filled (its own acceptance, at placement, the page said already).
            order = orders[0]
            self.conn.send({"t": "toast", "kind": "info",
                            "text": f"Opened: {views.order_summary(order)}"
                                    f" ({fmt.LEGS.get(order['leg'], 'exit').lower()}, {views.order_prices(order)}):"
                                    " its entry filled"})
        elif orders and event.get("event") in EVENT_WORDS:
            order = orders[0]
            text = f"{EVENT_WORDS[event['event']]}: {views.order_summary(order)}"
            if order.get("leg"):
                text += f" ({fmt.LEGS.get(order['leg'], 'exit').lower()})"
            if event.get("price") is not None and event.get("quantity") is not None:
                text += f" — {fmt.quantity(event['quantity'])} at {fmt.exact_price(event['price'])}"
            if event.get("portfolio"):
                text += f" in portfolio {event['portfolio']}"
            if order.get("reason") and event["event"] in ("rejected", "canceled", "expired"):
                text += f" ({fmt.said(order['reason'])})"
            self.conn.send({"t": "toast", "text": text, "kind": "error" if event["event"] == "rejected" else "info",
                            "order": order.get("uuid")})
        self.refresh()

    def refresh(self):
        """Ask the master for the page's data again (once at a time; events meanwhile make one more)."""
        if self._refresh is not None:
            self._again = True
            return
        self._refresh = self._do_refresh()
        self._refresh.addBoth(self._refreshed)

    def _refreshed(self, _):
        self._refresh = None
        if self._again:
            self._again = False
            self.refresh()

    @defer.inlineCallbacks
    def _do_refresh(self):
        # Figures asked before the step, or before the newest session's quotes came, are not the chart's point.
        after_step, seen = not self.awaiting_step, self._sessions_seen
        try:
            sections, values = yield self._render()
        except PaperTraderError as e:
            self._equity_due, self.awaiting_step = None, False  # (the next update's point comes as usual)
            self._failed(e)
            return
        except Exception:
            self._equity_due, self.awaiting_step = None, False
            self.live.worker.log.failure("website: updating a page failed")
            return
        if sections:
            self.conn.send({"t": "html", "v": sections})
        if values:
            self.conn.send({"t": "set", "v": values})
        if self._equity_due is not None and after_step and seen == self._sessions_seen:  # (no new session since)
            due, self._equity_due = self._equity_due, None
            if self.page == "dashboard" and self.portfolio is not None:
                self._send_equity(due)

    @defer.inlineCallbacks
    def _render(self):
        sections, values = {}, {}
        csrf = security.csrf_for(self.conn.token)
        if self.page in ("dashboard", "asset"):
            before = [p["symbol"] for p in (self.portfolio or {}).get("positions", [])]
            self.portfolio = yield self.portfolio_now()
            values.update(views.summary_values(self.portfolio))
            values.update(views.position_values(self.portfolio))
            if self.page == "dashboard":
                call = views.margin_call_state(self.portfolio)
                if call != self._call_shown:
                    self._call_shown = call
                    sections["margin-call"] = views.margin_call_inner(self.portfolio)
                if [p["symbol"] for p in self.portfolio["positions"]] != before:
                    sections["positions"] = views.body(views.position_rows(self.portfolio, self.website.names()),
                                                       len(views.POSITION_HEADERS), views.EMPTY["positions"])
                    sections["close-all"] = views.close_all(csrf, self.portfolio)
                    self.live.watch(self.conn, self.symbols())
            else:
                sections["asset-position"] = views.asset_position(self.symbol, self.portfolio, csrf)
                answer = yield self.call(commands.Orders, status="open", symbols=[self.symbol], limit=100)
                sections["symbol-orders"] = views.body(
                    views.open_order_rows(list(reversed(answer["orders"])), csrf, f"/asset/{self.symbol}"),
                    len(views.OPEN_HEADERS), views.EMPTY["open-orders"])
        elif self.page == "orders":
            # The closed ones first: an order that ends between the two reads is then never in both lists (an
            # order shown as filled and open, with a Cancel button); at worst in neither until the next update.
            closed = yield self.call(commands.Orders, status="closed", limit=50)
            open_orders = yield self.call(commands.Orders, status="open", limit=100)
            closed, open_orders = list(reversed(closed["orders"])), list(reversed(open_orders["orders"]))
            sections["open-orders"] = views.body(views.open_order_rows(open_orders, csrf, "/orders",
                                                                       views.known_orders(closed)),
                                                 len(views.OPEN_HEADERS), views.EMPTY["open-orders"])
            if self.first:
                sections["closed-orders"] = views.body(views.closed_order_rows(closed, views.known_orders(open_orders)),
                                                       len(views.CLOSED_HEADERS), views.EMPTY["closed-orders"])
        elif self.page == "game" and self.game is not None:
            # (forgotten first: refused now -- removed from a private game --, the page shows no later standings)
            self.game_seen = None
            self.game_seen = yield self.call(commands.ShowGame, name=self.game)
            board = yield self.call(commands.GameLeaderboard, name=self.game, limit=100)
            sections["leaderboard"] = views.leaderboard(self.conn.username, self.game_seen, board)
            values.update(views.game_values(self.game_seen))
            mine = views.mine_state(self.game_seen)
            if self.mine is not None and mine != self.mine:
                # The visitor's part changed (joined from another tab or the command line, the game ended): sent
                # again, and only then (an invite code being typed in its join form stays); joined, the navigation
                # offers the game's portfolio too.
                chrome = views.Chrome(csrf=csrf, username=self.conn.username)
                sections["game-mine"] = views.game_mine(chrome, self.game_seen)
                if mine == "play":
                    sections["portfolio-picker"] = yield self._portfolio_picker(csrf)
            self.mine = mine
            if self.game_seen["status"] == "ended":  # (its creator's buttons: a new code, remove, end it)
                sections["game-manage"] = ""
        elif self.page == "history" and self.first:
            answer = yield self.call(commands.Activities, page_size=50)
            sections["activities"] = views.body(views.activity_rows(answer["activities"]),
                                                len(views.ACTIVITY_HEADERS), views.EMPTY["activities"])
        return sections, {k: list(v) for k, v in values.items()}

    @defer.inlineCallbacks
    def send_portfolio_picker(self, pin=False):
        """Send the navigation's portfolio menu as a reload makes it (the account's portfolios changed).  ``pin``:
        a page showing the default portfolio goes on showing the one it shows, by its name, should another be
        the default now (as the website does for the tab that made it: its data, chart and forms are that one's)."""
        try:
            portfolios = (yield self.call(commands.Portfolios))["portfolios"]
            if pin and self.conn.portfolio is None and self.portfolio_uuid is not None:
                same = [p for p in portfolios if p["uuid"] == self.portfolio_uuid]
                if same and not same[0]["default"]:
                    self.conn.portfolio = same[0]["name"]
            picker = yield self._portfolio_picker(security.csrf_for(self.conn.token), portfolios)
        except PaperTraderError as e:
            self._failed(e)
        except Exception:
            self.live.worker.log.failure("website: updating a page's portfolio menu failed")
        else:
            self.conn.send({"t": "html", "v": {"portfolio-picker": picker}})

    def portfolios_changed(self, renamed=None, name=None, closed=None):
        """The account's portfolios changed (Live.portfolios_changed): the menu as a reload makes it.  The page of a
        portfolio renamed goes on showing it, by its new name; the page of one closed is made again (its browser's
        choice is gone: the default portfolio, and the page says why)."""
        shown = self.conn.portfolio
        if shown is not None and closed is not None and shown.casefold() == closed.casefold():
            self.conn.portfolio = None
            self.conn.send({"t": "reload"})
            return
        if shown is not None and renamed is not None and name is not None and shown.casefold() == renamed.casefold():
            self.conn.portfolio = name
        self.send_portfolio_picker(pin=True)

    @defer.inlineCallbacks
    def portfolio_reset(self, name):
        """The account's portfolio ``name`` was reset (Live.portfolios_changed): a page showing it is made again (its
        figures, chart, history and orders are those of a new start)."""
        shown = self.conn.portfolio
        try:
            if shown is None:  # the default one: which is it now?
                portfolios = (yield self.call(commands.Portfolios))["portfolios"]
                shown = next((p["name"] for p in portfolios if p["default"]), None)
        except PaperTraderError as e:
            self._failed(e)
            return
        except Exception:
            self.live.worker.log.failure("website: following a portfolio reset elsewhere failed")
            return
        if shown is not None and shown.casefold() == name.casefold():
            self.conn.send({"t": "reload"})

    @defer.inlineCallbacks
    def _portfolio_picker(self, csrf, portfolios=None):
        """The navigation's "Portfolio shown" as a reload makes it (site.Website.chrome): the account's portfolios,
        the one this page shows chosen."""
        if portfolios is None:
            portfolios = (yield self.call(commands.Portfolios))["portfolios"]
        wanted = self.conn.portfolio
        same = [p["name"] for p in portfolios if wanted is not None and p["name"].casefold() == wanted.casefold()]
        shown = same[0] if same else next((p["name"] for p in portfolios if p["default"]), None)
        return views.portfolio_selector(views.Chrome(csrf=csrf, username=self.conn.username,
                                                     portfolios=[p["name"] for p in portfolios], portfolio=shown))

    def _failed(self, error):
        if isinstance(error, NotLoggedIn):
            self.conn.signed_out()
        elif isinstance(error, UnknownGame) and self.page == "game":
            # Removed from a private game (or it is gone): its standings are no longer this visitor's to see.
            self.conn.send({"t": "html", "v": {"leaderboard": views.h("p", {"class": "muted"}, error.message)}})

    def stop(self):
        if self._quotes_due is not None and self._quotes_due.active():
            self._quotes_due.cancel()
        self._quotes_due = None


class Live:
    """Every live connection of one worker: subscriptions, and who to tell when a session ends."""

    def __init__(self, worker, website):
        self.worker = worker
        self.website = website
        self.reactor = worker.reactor
        self.connections = set()
        self._by_session = {}
        worker.sessions.on_forget.append(self.session_ended)
        worker.quotes.on_market.append(self.market_moved)
        worker.on_games_changed.append(self.games_changed)
        worker.on_portfolios_changed.append(self.portfolios_changed)
        worker.on_stepped.append(self.stepped)
        self._checks = task.LoopingCall(self.check_sessions)
        self._checks.clock = worker.clock

    def opened(self, conn):
        self.connections.add(conn)
        self._by_session.setdefault(SessionCache.key(conn.token), set()).add(conn)
        self.worker.clients.add(conn)
        self.worker.order_fanout.watch(conn, [conn.username])
        if not self._checks.running:
            self._checks.start(SESSION_CHECK, now=False)

    def closed(self, conn):
        self.connections.discard(conn)
        peers = self._by_session.get(SessionCache.key(conn.token))
        if peers is not None:
            peers.discard(conn)
            if not peers:
                del self._by_session[SessionCache.key(conn.token)]
        self.worker.clients.discard(conn)
        self.worker.fanout.forget(conn)
        self.worker.order_fanout.forget(conn)
        if conn.view is not None:
            conn.view.stop()
        if not self.connections and self._checks.running:
            self._checks.stop()

    def watch(self, conn, symbols):
        """The prices ``conn`` gets: exactly ``symbols`` (the tick fan-out forgets its earlier ones)."""
        self.worker.fanout.forget(conn)
        known = {q["symbol"] for q in self.worker.quotes.all()}
        wanted = [s for s in symbols if s in known][:200]
        if wanted:
            self.worker.fanout.watch(conn, wanted)

    def subscribe(self, conn, message):
        page = message.get("page")
        if page not in PAGES:
            page = "other"
        symbol = message.get("symbol")
        symbol = symbol.upper()[:16] if isinstance(symbol, str) else None
        if page == "asset" and self.worker.quotes.get(symbol) is None:
            page, symbol = "other", None
        game = message.get("game")
        game = game[:64] if page == "game" and isinstance(game, str) and game else None
        interval = message.get("interval")
        if interval not in ("1m", "5m", "15m", "1h", "1d"):
            interval = "1d"
        listed = message.get("symbols")
        listed = ([s.upper()[:16] for s in listed[:MAX_LISTED] if isinstance(s, str)]
                  if page == "assets" and isinstance(listed, list) else [])
        if conn.view is not None:
            conn.view.stop()
        mine = message.get("mine") if page == "game" and message.get("mine") in ("join", "play", "none") else None
        conn.view = View(self, conn, page, symbol, interval, message.get("first", True) is not False,
                         _decimal(message.get("base")), game, listed, mine)
        conn.view.start().addErrback(self._start_failed, conn)

    def _start_failed(self, failure, conn):
        if failure.check(NotLoggedIn):
            conn.signed_out()
        elif failure.check(PaperTraderError):
            conn.send({"t": "notice", "code": failure.value.code, "text": failure.value.message})
        else:
            self.worker.log.failure("website: subscribing a page failed", failure)

    def market_moved(self, market):
        """An update said the market clock: every page's header shows it (with the page's prices of that update,
        in one message)."""
        for conn in self.connections:
            if conn.view is not None:
                conn.view.market(market)
            else:
                conn.send({"t": "set", "v": views.market_values(market)})

    def stepped(self, time):
        """The master's trading step of an update is done: pages that saw its new session ask for its figures; so
        does every page of a margin portfolio's figures (its buying power and requirement move with prices, and a
        step makes, meets or enforces its margin call: papertrader/app/trading.py)."""
        for conn in self.connections:
            view = conn.view
            if view is not None and view.awaiting_step:
                view.awaiting_step = False
                view.refresh()
            elif view is not None and view.page in ("dashboard", "asset") and \
                    (view.portfolio or {}).get("kind") == "margin":
                view.refresh()

    def games_changed(self, name, joined=()):
        """The master said a game's standings changed.  ``name``: a player joined or was removed, or the game
        ended: each of its pages is made again (each asks the master, as a reload would: what a visitor may see
        is the master's to say).  None: an update ranked the games, and nothing else changed: each game's
        standings are asked once, for all its pages here (thousands of pages cost one call per game), each
        page rendering them as its visitor sees the game.  ``joined``: the usernames who joined it: every other
        open page of theirs gets the navigation's portfolio menu again, now with the game's portfolio (the game's
        own page sends it with the visitor's part)."""
        joined = {username.casefold() for username in joined}
        pages = {}
        for conn in self.connections:
            view = conn.view
            if view is not None and (conn.username or "").casefold() in joined and not (
                    view.game is not None and name is not None and view.game.casefold() == name.casefold()):
                view.send_portfolio_picker()
            if view is not None and view.game is not None and (name is None or
                                                               view.game.casefold() == name.casefold()):
                pages.setdefault(view.game.casefold(), []).append(view)
        for views_of_game in pages.values():
            if name is None:
                self._show_standings(views_of_game)
            else:
                for view in views_of_game:
                    view.refresh()

    def portfolios_changed(self, username, renamed=None, name=None, closed=None, reset=None):
        """The master said ``username``'s portfolios changed (one made, renamed, closed, reset, another the default,
        from any tab, browser, worker, the command line or the HTTP API): each of their open pages here shows the
        navigation's portfolio menu as a reload makes it, and follows a rename, a close or a reset of the portfolio
        it shows."""
        for conn in list(self.connections):
            if conn.view is not None and (conn.username or "").casefold() == username.casefold():
                if reset is not None:
                    conn.view.portfolio_reset(reset)
                else:
                    conn.view.portfolios_changed(renamed, name, closed)

    @defer.inlineCallbacks
    def _show_standings(self, pages):
        seen = [view for view in pages if view.game_seen is not None]
        for view in pages:
            if view.game_seen is None:
                view.refresh()  # not rendered yet: the whole page
        if not seen:
            return
        try:
            board = yield seen[0].call(commands.GameLeaderboard, name=seen[0].game, limit=100)
        except Exception:
            for view in seen:  # (its session ended, the master away...): each page asks for itself
                view.refresh()
            return
        for view in seen:
            view.conn.send({"t": "html", "v": {
                "leaderboard": views.leaderboard(view.conn.username, view.game_seen, board)}})

    def session_ended(self, token_hash):
        """The master said a session ended (or a command found it ended): its pages go to sign-in."""
        for conn in list(self._by_session.pop(token_hash, ())):
            conn.signed_out()

    @defer.inlineCallbacks
    def check_sessions(self):
        """Sessions also end by expiry or idleness, which nobody announces: check the pages' ones (not counted as
        their use: a page left open must not keep an unused session alive)."""
        for token_hash, conns in list(self._by_session.items()):
            conn = next(iter(conns), None)
            if conn is None:
                continue
            try:
                yield self.worker.gateway.session(conn.token, conn.client_ip(), use=False)
            except NotLoggedIn:
                self.session_ended(token_hash)
            except Exception:
                pass  # the master is unreachable now: the page says so from the worker's notice


def _decimal(text):
    """A decimal the page sent back (the first point of its equity curve), or None."""
    if not isinstance(text, str) or len(text) > 32:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


class LiveResource(resource.Resource):
    """``/live``: the WebSocket (an HTTP request that is not an upgrade gets 426)."""

    isLeaf = True

    def __init__(self, live):
        super().__init__()
        factory = WebSocketServerFactory()
        factory.protocol = LiveProtocol
        factory.live = live
        factory.setProtocolOptions(autoPingInterval=30, autoPingTimeout=30, maxMessagePayloadSize=MAX_MESSAGE,
                                   maxFramePayloadSize=MAX_MESSAGE, allowNullOrigin=False)
        self.websocket = WebSocketResource(factory)

    def render(self, request):
        if (request.getHeader(b"upgrade") or b"").lower() != b"websocket":
            security.headers(request)
            request.setResponseCode(426)
            request.setHeader(b"Upgrade", b"websocket")
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"This is the website's live connection: a WebSocket.\n"
        # The connection leaves twisted.web: the HTTP channel's idle timeout must not close it.
        request.channel.setTimeout(None)
        return self.websocket.render(request)
