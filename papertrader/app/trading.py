"""Trading commands: place, cancel, replace and read orders; the portfolio and its history; the market step.

Each method is one unit of work: it opens one database transaction, locks the
account's row, loads what the trading core needs (the book, the open orders),
calls the core, and saves what the core returned (the order, the events, the
fills) before it answers.  Events are published to the workers only after the
commit.
"""

import json
import uuid
from dataclasses import replace
from datetime import date, timedelta, timezone
from decimal import Decimal

from twisted.internet import defer

from papertrader import faults, times
from papertrader.app import in_portfolio
from papertrader.errors import (DuplicateOrder, GameClosed, InsufficientPosition, InvalidInput, PaperTraderError,
                               QuoteUnavailable, UnknownOrder, UnknownSymbol)
from papertrader.logs import counted
from papertrader.master import validation
from papertrader.master.group_commit import GroupCommit
from papertrader.master.portfolios import PortfolioStore
from papertrader.market.history import day
from papertrader.money import from_cents, from_price_units, from_quantity_units, round_money
from papertrader.times import iso, parse_iso, utc
from papertrader.trading import amend, configuration, contingent, corporate, margin
from papertrader.trading.corporate import undoing
from papertrader.trading.orders import Leg, OrderClass, OrderRequest, OrderType, Side, TimeInForce, by_value
from papertrader.trading.pretrade import accept, available_shares, buying_power, covering, opens
from papertrader.trading.equity import Change, curve
from papertrader.trading.events import EventKind
from papertrader.trading.step import moving, step
from papertrader.trading.valuation import day_start, unrealized_percent

#: Most orders or transactions one page holds.
MAX_PAGE = 500
#: Most points of an equity curve.
MAX_POINTS = 4000
#: Portfolio history timeframes and the candles they read.
TIMEFRAMES = {"1Min": "1m", "5Min": "5m", "15Min": "15m", "1H": "1h", "1D": "1d"}
STATUS_FILTERS = {
    "open": ("held", "new", "partially_filled"),
    "closed": ("filled", "canceled", "expired", "replaced", "rejected"),
    "all": None,
}


def order_view(order):
    """An order as clients see it (plain values; None fields left out)."""
    view = dict(
        id=order.id, uuid=order.uuid, client_order_id=order.client_order_id, symbol=order.symbol,
        side=order.side.value, type=order.type.value, time_in_force=order.time_in_force.value,
        status=order.status.value, quantity=order.quantity, notional=order.notional,
        limit_price=order.limit_price, stop_price=order.stop_price, trail_price=order.trail_price,
        trail_percent=order.trail_percent, filled_quantity=order.filled_quantity,
        average_price=order.average_price, commission=order.commission, created=order.shown_created,
        updated=max(order.updated or order.created, order.shown_created), expires=order.expires,
        trades_at=order.session_open or order.session_close,
        stop_level=_stop_level(order), replaces=order.replaces, replaced_by=order.replaced_by,
        replaces_uuid=order.replaces_uuid, replaced_by_uuid=order.replaced_by_uuid, watermark=order.watermark,
        reason_code=order.reason_code, reason=order.reason, order_class=order.order_class.value,
        leg=order.leg.value if order.leg is not None else None, parent_id=order.parent_id,
        parent_uuid=order.parent_uuid, position_intent=order.position_intent,
    )
    return {k: v for k, v in view.items() if v is not None}


def group_view(order, legs):
    """``order_view`` of an order with the exits that hang from it (a bracket's, OCO's or OTO's first part)."""
    view = order_view(order)
    legs = [leg for leg in legs or () if leg.replaced_by is None]  # its exits now (not those replaced), as Alpaca lists
    # the take-profit first, as they were made (a replaced take-profit, newer than the stop-loss, stays first:
    # a program reading legs[0] as the take-profit is not handed the stop-loss)
    legs.sort(key=lambda leg: (leg.leg is not Leg.TAKE_PROFIT, leg.id))
    if legs:
        view["legs"] = [order_view(leg) for leg in legs]
    return view


def _stop_level(order):
    """A trailing stop's current level (from its watermark)."""
    if order.type is not OrderType.TRAILING_STOP or order.watermark is None or not order.open:
        return None
    from papertrader.trading.fill_models import trail_level

    return trail_level(order, order.watermark)


def _with_trail(changes, old, trail):
    """``changes`` with a trailing stop's new ``trail`` as the kind of trail it has (dollars or percent)."""
    if trail is None:
        return changes
    if old.type is not OrderType.TRAILING_STOP:
        raise InvalidInput("trail changes trailing stop orders only")
    if old.trail_percent is not None:
        return replace(changes, trail_percent=validation.percent("trail percent", format(trail, "f")),
                       trail_price=None)
    return replace(changes, trail_price=trail, trail_percent=None)


def _same_changes(new, changes):
    """Whether ``new`` (a replacement already made) is what ``changes`` ask for."""
    return all(wanted is None or getattr(new, name) == wanted for name, wanted in (
        ("quantity", changes.quantity), ("limit_price", changes.limit_price), ("stop_price", changes.stop_price),
        ("trail_price", changes.trail_price), ("trail_percent", changes.trail_percent),
        ("time_in_force", changes.time_in_force)))


def _same_request(order, request, legs=()):
    """Whether ``order`` (with its exits ``legs``) is what ``request`` asks for (a retry of it)."""
    limit = request.limit_price
    if request.order_class is OrderClass.OCO and limit is None:
        limit = request.take_profit  # an OCO's limit price is its take-profit's
    return (order.side, order.symbol, order.type, order.time_in_force, order.notional if order.quantity is None
            or request.notional is not None else None, order.limit_price, order.stop_price, order.trail_price,
            order.trail_percent, order.order_class) == (request.side, request.symbol, request.type,
                                                        request.time_in_force, request.notional, limit,
                                                        request.stop_price, request.trail_price,
                                                        request.trail_percent, request.order_class) and \
        (request.quantity is None or _placed_quantity(order, legs, request.quantity)) and \
        _exit_prices(order, legs) == _exit_prices_asked(request, limit)


def _placed_quantity(order, legs, quantity):
    """Whether ``order`` may have been placed for ``quantity``: its quantity, which only an OCO's take-profit
    changes since (what its stop-loss filled while both were open is taken from it)."""
    taken = Decimal(0)
    if order.order_class is OrderClass.OCO and order.leg is Leg.TAKE_PROFIT:
        taken = sum((leg.filled_quantity for leg in legs), Decimal(0))
    return order.quantity <= quantity <= order.quantity + taken


def _exit_prices(order, legs):
    """(take-profit, stop-loss, stop-loss limit) of a bracket, OCO or OTO order as placed (its first exits)."""
    first = {}
    for leg in sorted(legs, key=lambda o: o.id):
        first.setdefault(leg.leg, leg)
    take, stop = first.get(Leg.TAKE_PROFIT), first.get(Leg.STOP_LOSS)
    take_profit = order.limit_price if order.leg is Leg.TAKE_PROFIT else take.limit_price if take else None
    if stop is None:
        return take_profit, None, None
    return take_profit, stop.stop_price, stop.limit_price if stop.type is OrderType.STOP_LIMIT else None


def _exit_prices_asked(request, limit):
    take_profit = limit if request.order_class is OrderClass.OCO else request.take_profit
    return take_profit, request.stop_loss, request.stop_loss_limit


class _Ahead(tuple):
    """What an order's unit of work reads first, read ahead (TradingCommands._read_ahead): ``book, open_orders =
    ahead``; and ``placing``, the store's Placing of the portfolio, or None."""

    def __new__(cls, book, open_orders, placing=None):
        ahead = super().__new__(cls, (book, open_orders))
        ahead.placing = placing
        return ahead


class TradingCommands:
    def __init__(self, db, store, board, market_clock, rules, clock, log, publish=None, candles=None):
        self.db = db
        self.store = store
        #: Orders placed, canceled and replaced together share a transaction (master/group_commit.py).
        self.commits = GroupCommit(db, store.lock_accounts, log=log, rolled_back=store.rolled_back)
        self.candles = candles
        self.board = board
        self.market_clock = market_clock
        self.rules = rules
        self.clock = clock
        self.log = log
        #: Called after each commit with [(username, event view)] (the master pushes them to workers).
        self.publish = publish or (lambda events: None)
        self.filled = 0
        self.steps = 0
        self.portfolios = PortfolioStore(db)
        #: The game store (set by the master): a game's portfolios trade by its rules (papertrader/app/games.py).
        self.games = None
        #: The API keys (set by the master: a closed portfolio's keys are forgotten).
        self.api_keys = None

    def session_now(self, session, portfolio=None):
        """The session with the portfolio a command trades (see papertrader/app/portfolios.py): at once if it
        is remembered, else a Deferred."""
        from papertrader.app.portfolios import session_in

        return session_in(self.db, self.portfolios, session, portfolio)

    def session_in(self, session, portfolio=None):
        """``session_now``, always as a Deferred."""
        return defer.maybeDeferred(self.session_now, session, portfolio)

    def _recorded(self):
        return utc(self.clock.seconds())

    # --- what an order reads first (read for a whole group commit at once: master/group_commit.py) ---------

    def _read_ahead(self, cursor, portfolio_ids, asked=None, keep=True):
        """{portfolio id: (book, open orders)} of these portfolios, in one query per table, the open orders from
        memory where they are known (the caller holds their locks; ``keep``: what is read may be kept, as
        nothing was written yet in this transaction).  ``asked``: {portfolio id: the client order ids of the
        orders about to be placed in it}: those portfolios' values have the store's ``placing`` (OrderStore.placing)
        too (for the others it is None)."""
        books = self.store.books(cursor, portfolio_ids)
        orders = self.store.open_orders_kept(cursor, list(books), keep)
        asked = {p: ids for p, ids in (asked or {}).items() if ids and p in books}
        placing = self.store.placing(cursor, asked) if asked else {}
        return {p: _Ahead(book, orders[p], placing.get(p)) for p, book in books.items()}

    def _own_read(self, cursor, portfolio_id):
        """What a unit whose portfolio an earlier unit of its transaction wrote reads for itself."""
        return self._read_ahead(cursor, [portfolio_id], keep=False)[portfolio_id]

    def _rules_for(self, cursor, portfolio, request, book, open_orders, prices, now):
        """The rules an order of ``portfolio`` trades by: a game's portfolio checks ``request`` (if one is given)
        against the game's rules first (GameRuleViolation, GameClosed) and trades with its models; others the
        deployment's."""
        if portfolio is None or portfolio.game_id is None or self.games is None:
            return self.rules
        from papertrader.trading.games import check_order

        membership = self.games.of_portfolios(cursor, [portfolio.id]).get(portfolio.id)
        if membership is None:
            return self.rules
        game = membership.game
        if request is not None:
            if membership.removed is not None:
                raise GameClosed(f"you were removed from the game {game.name}: its portfolio takes no more"
                                 " orders")
            check_order(game.rules, request, book, open_orders, prices, now, game.ended_at,
                        times.market_zone(self.market_clock))
        return game.rules.trading_rules(self.rules)

    def _game_rules(self, cursor, portfolio_ids, now):
        """({portfolio id: its game's rules}, {portfolio ids whose game does not trade now}) for a step."""
        if self.games is None:
            return {}, set()
        own, frozen = {}, set()
        for portfolio_id, membership in self.games.of_portfolios(cursor, portfolio_ids).items():
            game = membership.game
            if membership.removed is not None or game.finished is not None or \
                    now > game.rules.closes(game.ended_at):
                frozen.add(portfolio_id)
            else:
                own[portfolio_id] = game.rules.trading_rules(self.rules)
        return own, frozen

    # --- placing orders --------------------------------------------------------------

    def _request(self, session, client_order_id, side, symbol, type, time_in_force, quantity, notional,
                 limit_price, stop_price, trail_price, trail_percent, order_class=None, take_profit=None,
                 stop_loss=None, stop_loss_limit=None):
        try:
            kind = by_value(OrderType, type or "market")
        except ValueError:
            raise InvalidInput(f"order type must be one of {', '.join(t.value for t in OrderType)}")
        try:
            order_class = by_value(OrderClass, order_class or "simple")
        except ValueError:
            raise InvalidInput(f"order class must be one of {', '.join(c.value for c in OrderClass)}")
        try:
            tif = by_value(TimeInForce, time_in_force or "day")
        except ValueError:
            raise InvalidInput(f"time in force must be one of {', '.join(t.value for t in TimeInForce)}")
        return OrderRequest(
            account_id=session.portfolio_id, client_order_id=validation.client_order_id(client_order_id),
            symbol=validation.symbol(symbol, self.board.assets, self.board.get),
            side=by_value(Side, validation.side(side)),
            type=kind, time_in_force=tif,
            quantity=validation.quantity(quantity) if quantity not in (None, "") else None,
            notional=validation.money_amount("notional", notional),
            limit_price=validation.price("limit price", limit_price),
            stop_price=validation.price("stop price", stop_price),
            trail_price=validation.price("trail price", trail_price),
            trail_percent=validation.percent("trail percent", trail_percent), order_class=order_class,
            take_profit=validation.price("take-profit limit price", take_profit),
            stop_loss=validation.price("stop-loss stop price", stop_loss),
            stop_loss_limit=validation.price("stop-loss limit price", stop_loss_limit))

    def _check_asset(self, request, now):
        """What the source says of the asset: it may not trade yet (a replay before its first day), may
        not be tradable, or not in fractions of a share."""
        asset = self.board.info.get(request.symbol)
        if asset is None:
            return
        if request.symbol in self.board.unlisted and self.board.get(request.symbol) is None:
            raise validation.unknown_symbol(
                request.symbol, [s for s in self.board.assets if self.board.get(s) is not None],
                f"{self.board.lister or 'the market data source'} does not list it among its assets, and no price"
                " of it came")
        if asset.first_day is not None and self.board.get(request.symbol) is None:
            today = date.fromordinal(day(now))
            if asset.first_day > today:
                raise UnknownSymbol(f"{request.symbol} does not trade yet: its prices start on {asset.first_day}"
                                    f" (the market's date is {today})")
        if not asset.tradable:
            raise InvalidInput(f"{request.symbol} is not tradable now")

    def _check_whole(self, request, book, opens):
        """An asset that is not fractionable takes whole shares, except an order that closes (sells or covers)
        the fraction a split left in a position (151.5 shares after a 3-for-2, which could never be sold): that
        fraction, or the whole position."""
        asset = self.board.info.get(request.symbol)
        if asset is None or asset.fractionable:
            return
        q = request.quantity
        if request.notional is None and q == q.to_integral_value():
            return
        held = abs(book.quantity(request.symbol))
        if request.notional is None and opens is False and q in (held, held % 1) and held % 1:
            return
        raise InvalidInput(f"{request.symbol} trades in whole shares only (the fraction of a share a split left in"
                           " your position can be sold: that fraction, or the whole position)")

    @in_portfolio
    @defer.inlineCallbacks
    def place_order(self, session, stamp, client_order_id, side, symbol, quantity=None, notional=None,
                    type=None, time_in_force=None, limit_price=None, stop_price=None, trail_price=None,
                    trail_percent=None, order_class=None, take_profit=None, stop_loss=None, stop_loss_limit=None):
        """Place an order; a bracket, OCO or OTO order (``order_class``; papertrader/trading/contingent.py) with
        its exits' prices: ``take_profit`` (limit), ``stop_loss`` (stop) and ``stop_loss_limit``.  The answer is
        the order, with its exits as ``legs``."""
        request = self._request(session, client_order_id, side, symbol, type, time_in_force, quantity, notional,
                                limit_price, stop_price, trail_price, trail_percent, order_class, take_profit,
                                stop_loss, stop_loss_limit)
        now = self.market_clock.now()
        self._check_asset(request, now)
        prices = self.board.prices()
        info = self.market_clock.info(now)
        recorded = self._recorded()

        def unit_of_work(cursor, ahead):
            placing = ahead.placing if ahead is not None else None  # (true until this unit writes an order)
            existing = self.store.by_client_order_id(cursor, session.portfolio_id, request.client_order_id, placing)
            if existing is not None:
                return existing, self.store.placed_with(cursor, existing), None
            book, open_orders = ahead or self._own_read(cursor, session.portfolio_id)
            opening = opens(request, book)
            if book.configuration is not None:  # before the core's checks: its refusals say why first
                configuration.check_trading(book.configuration)
                configuration.check_order(book.configuration, request, opening)
            self._check_whole(request, book, opening)
            rules = self._rules_for(cursor, session.portfolio, request, book, open_orders, prices, now)
            order = accept(request, book, open_orders, prices, now, info, rules)
            order = self.store.insert(cursor, order, stamp.received, stamp.client_ip, stamp.worker, placing=placing)
            legs = [] if request.order_class is OrderClass.SIMPLE else [
                self.store.insert(cursor, leg, stamp.received, stamp.client_ip, stamp.worker, parent=order)
                for leg in contingent.exits(order, request, [str(uuid.uuid4()), str(uuid.uuid4())])]
            events = [_accepted(o) for o in (order, *legs) if o.open]
            self.store.save(cursor, [], {}, events, recorded)
            self.store.open_after_commit(cursor, session.portfolio_id, open_orders, [o.id for o in (order, *legs)])
            return order, legs, events

        order, legs, events = yield self.commits.run(unit_of_work, [session.portfolio_id], self._read_ahead,
                                                     request.client_order_id)
        if events is None:
            if not _same_request(order, request, legs):
                raise DuplicateOrder(f"client_order_id {request.client_order_id!r} was already used for order"
                                     f" {order.id} ({order.side.value} {order.symbol}, {order.type.value})")
            return group_view(order, legs)
        self.log.info("order {id} accepted: {side} {what} {symbol} {type} {tif}{exits} for {username} via {worker}"
                      " from {ip}", id=order.id, side=order.side.value,
                      what=order.quantity if order.quantity is not None else f"${order.notional}",
                      symbol=order.symbol, type=order.type.value, tif=order.time_in_force.value,
                      exits="".join(f", {leg.leg.value} {leg.id}" for leg in legs),
                      username=session.username, worker=stamp.worker, ip=stamp.client_ip)
        view = group_view(order, legs)
        self.publish([(session.username, _event_view(e, session.portfolio, view=dict(view) if e.order is order
                                                     else None)) for e in events])
        return view

    # --- cancel and replace ------------------------------------------------------------

    def _find(self, cursor, session, order_id=None, order_uuid=None, client_order_id=None):
        """One of the account's orders by its id, its uuid or its client order id; UnknownOrder if none."""
        if order_id is not None:
            validation.order_id(order_id)
            order = self.store.get(cursor, session.portfolio_id, order_id)
            what = order_id
        elif order_uuid:
            order = self.store.by_uuid(cursor, session.portfolio_id, order_uuid[:64].lower())
            what = order_uuid[:64]
        elif client_order_id:
            order = self.store.by_client_order_id(cursor, session.portfolio_id,
                                                  validation.client_order_id(client_order_id))
            what = client_order_id
        else:
            raise InvalidInput("give an order id, uuid or client order id")
        if order is None:
            raise UnknownOrder(f"no order {what} in portfolio {session.portfolio.name!r}")
        return order

    @in_portfolio
    @defer.inlineCallbacks
    def cancel_order(self, session, stamp, order_id=None, order_uuid=None):
        recorded = self._recorded()
        now = self.market_clock.now()

        def unit_of_work(cursor):
            before = self._find(cursor, session, order_id, order_uuid)
            order, event = amend.cancel(before, now)
            orders, events = [order], [event]
            if order.order_class is not OrderClass.SIMPLE:  # the other parts of its bracket, OCO or OTO order
                members = self.store.group_of(cursor, session.portfolio_id, order.group)
                for member, happened in contingent.react(before, order, [m for m in members if m.id != order.id],
                                                         now):
                    orders.append(member)
                    events.extend(happened)
            self.store.save(cursor, orders, {}, events, recorded)
            return order, events

        order, events = yield self.commits.run(unit_of_work, [session.portfolio_id])
        self.log.info("order {id} canceled by {username}{also}", id=order.id, username=session.username,
                      also="".join(f"; order {e.order.id} {e.kind.value}" for e in events[1:]))
        self.publish([(session.username, _event_view(e, session.portfolio)) for e in events])
        return order_view(order)

    @in_portfolio
    @defer.inlineCallbacks
    def cancel_all_orders(self, session, stamp):
        recorded = self._recorded()
        now = self.market_clock.now()

        def unit_of_work(cursor):
            self.store.lock_accounts(cursor, [session.portfolio_id])
            done = amend.cancel_all(self.store.open_orders(cursor, session.portfolio_id), now)
            self.store.save(cursor, [o for o, _ in done], {}, [e for _, e in done], recorded)
            return done

        done = yield self.db.run(unit_of_work)
        if done:
            self.log.info("{username} canceled {orders}", username=session.username,
                          orders=counted(len(done), "open order"))
            self.publish([(session.username, _event_view(e, session.portfolio)) for _, e in done])
        return {"orders": [order_view(o) for o, _ in done]}

    @in_portfolio
    @defer.inlineCallbacks
    def replace_order(self, session, stamp, order_id=None, order_uuid=None, client_order_id=None, quantity=None,
                      limit_price=None, stop_price=None, trail_price=None, trail_percent=None, time_in_force=None,
                      trail=None):
        """Replace an open order by a new one with these changes (``trail``: a trailing stop's new trail, in
        dollars or percent as it has it).  The same ``client_order_id`` again, for the same order and changes,
        answers the order it made (a retry); for anything else it is a DuplicateOrder."""
        try:
            tif = TimeInForce(time_in_force) if time_in_force else None
        except ValueError:
            raise InvalidInput(f"time in force must be one of {', '.join(t.value for t in TimeInForce)}")
        changes = amend.Changes(
            quantity=validation.quantity(quantity) if quantity not in (None, "") else None,
            limit_price=validation.price("limit price", limit_price),
            stop_price=validation.price("stop price", stop_price),
            trail_price=validation.price("trail price", trail_price),
            trail_percent=validation.percent("trail percent", trail_percent), time_in_force=tif,
            client_order_id=validation.client_order_id(client_order_id) if client_order_id else str(uuid.uuid4()))
        trail = validation.price("trail", trail)
        if trail is None and all(getattr(changes, name) is None for name in (
                "quantity", "limit_price", "stop_price", "trail_price", "trail_percent", "time_in_force")):
            # A copy of the order would take its place for nothing (and lose its time priority).
            raise InvalidInput("nothing to replace: give at least one change (a quantity, limit price, stop price,"
                               " trail or time in force)")
        prices = self.board.prices()
        now = self.market_clock.now()
        info = self.market_clock.info(now)
        recorded = self._recorded()

        def unit_of_work(cursor, ahead):
            old = self._find(cursor, session, order_id, order_uuid)
            wanted = _with_trail(changes, old, trail)
            existing = self.store.by_client_order_id(cursor, session.portfolio_id, changes.client_order_id)
            if existing is not None:
                if existing.replaces == old.id and _same_changes(existing, wanted):
                    return existing, None, self.store.legs_of(cursor, [existing.id]).get(existing.id, [])
                raise DuplicateOrder(f"client_order_id {changes.client_order_id!r} is already used")
            book, open_orders = ahead or self._own_read(cursor, session.portfolio_id)
            configuration.check_trading(book.configuration)
            rules = self._rules_for(cursor, session.portfolio, None, book, open_orders, prices, now)
            others = [o for o in open_orders if o.id != old.id]

            def game_rules(request):
                self._rules_for(cursor, session.portfolio, request, book, others, prices, now)

            ended, new, events = amend.replace(old, wanted, book, open_orders, prices, now, info, rules,
                                               first=game_rules)
            configuration.check_order(book.configuration, new)
            if old.order_class is not OrderClass.SIMPLE:  # an exit: checked as it now is
                game_rules(_as_request(new))
            new = self.store.insert(cursor, new, stamp.received, stamp.client_ip, stamp.worker)
            ended = ended.but(replaced_by=new.id, replaced_by_uuid=new.uuid)
            events = [e.__class__(e.kind, ended, e.time, e.fill, e.reason_code, e.reason) for e in events]
            if new.open:
                events.append(_accepted(new))
            # An OCO's take-profit replaced: its stop-loss hangs from the new one.
            moved = {o.id: o.but(parent_id=new.id, parent_uuid=new.uuid) for o in open_orders
                     if o.parent_id == old.id} if old.leg is not None else {}
            self.store.save(cursor, [ended, *moved.values()], {}, events, recorded)
            self.store.open_after_commit(cursor, session.portfolio_id,
                                         [moved.get(o.id, o) for o in open_orders if o.id != old.id], [new.id])
            return new, events, list(moved.values())

        new, events, legs = yield self.commits.run(unit_of_work, [session.portfolio_id], self._read_ahead)
        if events is None:  # a retry of a replace already made
            return group_view(new, legs)
        self.log.info("order {old} replaced by {new} for {username}", old=new.replaces, new=new.id,
                      username=session.username)
        self.publish([(session.username, _event_view(e, session.portfolio)) for e in events])
        return group_view(new, legs)

    # --- reading ------------------------------------------------------------------------

    @in_portfolio
    @defer.inlineCallbacks
    def get_order(self, session, stamp, order_id=None, client_order_id=None, order_uuid=None):
        def read(cursor):
            order = self._find(cursor, session, order_id, order_uuid, client_order_id)
            legs = self.store.legs_of(cursor, [order.id]).get(order.id, []) \
                if order.order_class is not OrderClass.SIMPLE else []
            return order, legs, self.store.fills(cursor, order.id), self.store.stamp(cursor, order.id)

        order, legs, fills, received = yield self.db.run(read)
        return dict(group_view(order, legs), fills=fills, **received)

    @in_portfolio
    @defer.inlineCallbacks
    def orders(self, session, stamp, limit, status=None, before=None, after=None, until=None, direction=None,
               symbols=None, side=None, after_id=None, generation=None, nested=False):
        """A page of orders, oldest first (``direction`` asc: the oldest from ``after``, or after the order
        ``after_id``).  Filters: status, creation time (after, until), symbols, side.  ``nested``: the exits of
        bracket, OCO and OTO orders as their first part's ``legs``, not on their own."""
        validation.limit(limit, MAX_PAGE)
        status = status or "all"
        if status not in STATUS_FILTERS:
            raise InvalidInput("status must be open, closed or all")
        if before is not None:
            validation.order_id(before)
        if after_id is not None and not 0 <= after_id < 2**62:
            raise InvalidInput("after_id must be an order id")
        if direction not in (None, "asc", "desc"):
            raise InvalidInput("direction must be asc or desc")
        if side is not None:
            validation.side(side)
        if symbols is not None:
            if len(symbols) > 200:
                raise InvalidInput("at most 200 symbols")
            symbols = [(s or "").strip().upper()[:32] for s in symbols]  # one not traded here matches nothing
        def read(cursor):
            orders = self.store.page(cursor, session.portfolio_id, STATUS_FILTERS[status], before, limit + 1,
                                     after=after, until=until, oldest_first=direction == "asc", symbols=symbols,
                                     side=side, after_id=after_id, generation=_generation(session, generation),
                                     parents_only=nested)
            parents = [o.id for o in orders[:limit] if o.order_class is not OrderClass.SIMPLE and o.parent_id is None]
            return orders, self.store.legs_of(cursor, parents) if nested and parents else {}

        orders, legs = yield self.db.run(read)
        more = len(orders) > limit
        orders = orders[:limit]
        if direction == "asc":
            return {"orders": [group_view(o, legs.get(o.id)) for o in orders]}
        answer = {"orders": [group_view(o, legs.get(o.id)) for o in reversed(orders)]}
        if more:
            answer["next_before"] = orders[-1].id
        return answer

    @in_portfolio
    @defer.inlineCallbacks
    def history(self, session, stamp, limit, before=None, generation=None):
        """A page of the portfolio's transactions, newest last: of its current generation, or of an earlier
        ``generation`` (the archive a reset left: 0 is the first)."""
        validation.limit(limit, MAX_PAGE)
        if before is not None:
            validation.order_id(before)
        generation = _generation(session, generation)
        rows = yield self.db.run(_history_page, self.db, session.portfolio_id, generation, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        answer = {"transactions": list(reversed(rows))}
        if more:
            answer["next_before"] = rows[-1]["id"]
        return answer

    @in_portfolio
    @defer.inlineCallbacks
    def portfolio(self, session, stamp):
        def read(cursor):
            book = self.store.book(cursor, session.portfolio_id)
            open_orders = self.store.open_orders(cursor, session.portfolio_id)
            cursor.execute(self.db.sql("SELECT SUM(realized_cents) FROM transactions WHERE portfolio_id = ? AND"
                                       " generation = ?"), (session.portfolio_id, session.portfolio.generation))
            realized = cursor.fetchone()[0] or 0
            account_uuid, created = session.portfolio.uuid, iso(session.portfolio.created)
            # a game's portfolio: its buying power under the game's rules (its commission), as its orders are
            rules = self._rules_for(cursor, session.portfolio, None, book, open_orders, prices, now)
            day = _day_rows(cursor, self.db, session.portfolio_id, session.portfolio.generation, began, now, ends,
                            book)
            return book, open_orders, from_cents(realized), account_uuid, parse_iso(created), rules, day

        prices = self.board.prices()
        now = self.market_clock.now()
        quotes = {q.symbol: q for q in self.board.all()}
        # The day: the latest session a price came from (market time waits at the next open between updates).
        began = max((q.session_open for q in quotes.values() if q.session_open is not None), default=None)
        # ... and ends where the next session opens (a fill at that open is the next day's, one a seek back left).
        ends = self.market_clock.info(began).next.open if began is not None and began < now else None
        book, open_orders, realized, account_uuid, created, rules, (today, held_then) = yield self.db.run(read)
        positions = []
        equity = book.cash
        unrealized = Decimal("0.00")
        values = {}
        for symbol in sorted(book.positions):
            held = book.positions[symbol]
            quote = quotes.get(symbol)
            value = values[symbol] = round_money(held.quantity * quote.price) if quote else held.cost
            available = (max(available_shares(book, open_orders, symbol, prices), Decimal(0)) if held.quantity > 0
                         else -max(covering(book, open_orders, symbol), Decimal(0)))
            position = dict(symbol=symbol, quantity=held.quantity, average_price=held.average_price,
                            cost=held.cost, market_value=value, unrealized_pl=value - held.cost, available=available)
            if held.cost:
                position["unrealized_percent"] = unrealized_percent(value, held.cost)
            position["exchange"] = self.board.info[symbol].exchange if symbol in self.board.info else ""
            if quote:
                position["price"] = quote.price
            equity += value
            unrealized += value - held.cost
            positions.append(position)
        since_close = {s for s, q in quotes.items() if q.session_open == began and q.previous_close is not None}
        references = {s: q.reference if s in since_close else q.price for s, q in quotes.items()}
        start = day_start(book.cash, {s: p.quantity for s, p in book.positions.items()}, values, references,
                          held_then, today)
        for position in positions:
            quote = quotes.get(position["symbol"])
            if quote is not None:  # the price the day counts from, as shown (a price's step)
                position["previous_close"] = quote.previous_close if position["symbol"] in since_close else quote.price
            position["day_base"] = start.bases[position["symbol"]]
            position["change_today"] = position["market_value"] - position["day_base"]
        mine = session.portfolio
        answer = dict(cash=book.cash, equity=equity,
                      buying_power=buying_power(book, open_orders, prices, rules),
                      realized_pl=realized, unrealized_pl=unrealized, change_today=equity - start.last_equity,
                      last_equity=start.last_equity, day_start=began,
                      open_orders=len(open_orders), positions=positions, account_uuid=account_uuid, created=created,
                      portfolio=mine.name, kind=mine.kind, generation=mine.generation,
                      starting_cash=mine.starting_cash)
        if mine.began is not None:
            answer["began"] = mine.began
        marks = {s: q.price for s in book.positions if (q := self.board.get(s)) is not None}
        valuation = margin.value(book, marks)
        answer.update(long_market_value=valuation.long_value, short_market_value=valuation.short_value)
        if book.margin is not None:
            figures = margin.status(book, marks, book.margin)
            answer.update(initial_margin=figures.initial, maintenance_margin=figures.maintenance)
        if mine.margin_call is not None:
            answer.update(margin_call=mine.margin_call, margin_call_since=mine.margin_call_since,
                          margin_call_deadline=mine.margin_call_deadline)
        if book.configuration is not None:  # what its owner turned on that changes trading
            answer.update({name: True for name in ("no_shorting", "suspend_trade") if getattr(book.configuration, name)})
        if rules.commission_model is not self.rules.commission_model:  # a game's own
            from papertrader.trading.games import commission_text

            answer.update(commission_model=commission_text(rules.commission_model))
        return answer

    # --- closing positions --------------------------------------------------------------------

    @in_portfolio
    @defer.inlineCallbacks
    def close_position(self, session, stamp, symbol, quantity=None, percentage=None, client_order_id=None,
                       cancel_orders=None):
        """Sell all of a position (or ``quantity`` shares, or ``percentage`` of it) with a market order; a short
        position (a margin portfolio's) is bought back the same way.  ``cancel_orders``: first cancel the open
        orders of it on the closing side (a stop-loss holding the shares), with the other parts of their
        bracket, OCO or OTO orders; only once the portfolio may trade, its game (if any) is still on, and the
        symbol has a price, so that the cancels never leave a position unprotected and not closed."""
        symbol = validation.symbol(symbol, self.board.assets, self.board.get)
        if quantity not in (None, "") and percentage not in (None, ""):
            raise InvalidInput("give a quantity or a percentage, not both")
        book = yield self.db.run(self.store.book, session.portfolio_id)
        held = book.quantity(symbol)
        if held == 0:  # (no order was named: not unknown_order)
            raise InsufficientPosition(f"no {symbol} position in portfolio {session.portfolio.name!r}: nothing to"
                                       " close")
        side = "sell" if held > 0 else "buy"
        canceled = 0
        if cancel_orders:
            canceled = yield self._cancel_closing(session, symbol, Side(side), book)
        held = abs(held)
        if quantity not in (None, ""):
            shares = validation.quantity(quantity)
        elif percentage not in (None, ""):
            percent = validation.decimal("percentage", percentage, 6)
            if percent > 100:
                raise InvalidInput("percentage must be at most 100")
            shares = (held * percent / 100).quantize(Decimal("0.000001"), rounding="ROUND_DOWN")
            if shares <= 0:
                raise InvalidInput(f"{percent}% of {held} {symbol} is less than a millionth of a share")
        else:
            shares = held
        order = yield self.place_order(session, stamp, client_order_id or str(uuid.uuid4()), side, symbol,
                                       format(shares, "f"))
        return dict(order, canceled_orders=canceled) if cancel_orders else order

    @defer.inlineCallbacks
    def _cancel_closing(self, session, symbol, side, book):
        """Cancel the open orders of ``symbol`` on ``side`` (and the other parts of their groups) before a close;
        first what would refuse the close (trading suspended, a game over, no price) is raised.  Fires with how
        many orders were canceled."""
        configuration.check_trading(book.configuration)
        if self.board.get(symbol) is None:
            raise QuoteUnavailable(f"no price is known yet for {symbol}; try again after the next update")
        recorded = self._recorded()
        now = self.market_clock.now()

        def unit_of_work(cursor):
            self.store.lock_accounts(cursor, [session.portfolio_id])
            if session.portfolio_id in self._game_rules(cursor, [session.portfolio_id], now)[1]:
                raise GameClosed("this game's portfolio takes no more orders (the game is over, or you were"
                                 " removed from it): nothing was canceled")
            live = self.store.open_orders(cursor, session.portfolio_id)
            groups = {o.group for o in live if o.symbol == symbol and o.side is side}
            done = amend.cancel_all([o for o in live if o.group in groups], now,
                                    reason="canceled by you, to close the position")
            self.store.save(cursor, [o for o, _ in done], {}, [e for _, e in done], recorded)
            return done

        done = yield self.commits.run(unit_of_work, [session.portfolio_id])
        if done:
            self.log.info("{username} canceled {orders} to close the position", username=session.username,
                          orders=counted(len(done), f"open {symbol} order"))
            self.publish([(session.username, _event_view(e, session.portfolio)) for _, e in done])
        return len(done)

    @in_portfolio
    @defer.inlineCallbacks
    def close_all_positions(self, session, stamp, cancel_orders=None):
        """Sell every position at the market (first canceling the open orders, with ``cancel_orders``); nothing,
        not even the cancels, while the portfolio's trading is suspended (the closing orders would be refused,
        and the positions left without their exits)."""
        book = yield self.db.run(self.store.book, session.portfolio_id)
        configuration.check_trading(book.configuration)
        canceled = (yield self.cancel_all_orders(session, stamp))["orders"] if cancel_orders else []
        book = yield self.db.run(self.store.book, session.portfolio_id)
        orders, failures = [], []
        for symbol in sorted(book.positions):
            try:
                order = yield self.close_position(session, stamp, symbol)
                orders.append(order)
            except PaperTraderError as e:
                failures.append(dict(symbol=symbol, code=e.code, message=e.message))
        return {"orders": orders, "failures": failures, "canceled": len(canceled)}

    # --- history: equity over time, activities ---------------------------------------------------

    @in_portfolio
    @defer.inlineCallbacks
    def portfolio_history(self, session, stamp, period=None, timeframe=None, start=None, end=None):
        interval = TIMEFRAMES.get(timeframe or "1D")
        if interval is None:
            raise InvalidInput(f"timeframe must be one of {', '.join(TIMEFRAMES)}")
        given_end = end
        end = end or self.market_clock.now()
        if start is None:
            start = end - _period(period or "1M")
        if not start < end:
            raise InvalidInput(_window_refusal(start, end, given_end is None))

        def read(cursor):
            # All of them, dated after ``end`` too: after a seek back, one made earlier may be dated later, and
            # what it did is in the account of the times after (equity.curve).
            cursor.execute(self.db.sql(
                "SELECT time, cash_after_cents, symbol, kind, side, quantity_units, position_after_units, amount_cents"
                " FROM transactions WHERE portfolio_id = ? AND generation = ? ORDER BY id"),
                (session.portfolio_id, session.portfolio.generation))
            rows = cursor.fetchall()
            cursor.execute(self.db.sql("SELECT cash_cents FROM portfolios WHERE id = ?"), (session.portfolio_id,))
            return rows, cursor.fetchone()[0]

        rows, cash_now = yield self.db.run(read)
        # The cash the account started with: before its first transaction (all it has, if it has none; a window
        # ending before the first trade showed today's cash).
        start_cash = from_cents(rows[0][1] - rows[0][7]) if rows else from_cents(cash_now)
        changes, positions = [], {}
        for time, cash, symbol, kind, side, quantity, after, _ in rows:
            if after is not None:
                positions[symbol] = from_quantity_units(after)
            elif kind == "fill":  # a fill from before positions were recorded with it
                q = from_quantity_units(quantity)
                positions[symbol] = positions.get(symbol, Decimal(0)) + (q if side == "buy" else -q)
            changes.append(Change(parse_iso(time), from_cents(cash), symbol,
                                  positions.get(symbol) if kind in ("fill", "split") else None))
        symbols = sorted({c.symbol for c in changes if c.position_after is not None}) or list(self.board.assets[:1])
        closes, before = {}, {}
        for symbol in symbols:
            candles = yield self.candles.read(symbol, interval, MAX_POINTS, start=start, end=end)
            closes[symbol] = [(c["time"], c["close"]) for c in candles]
            # The candle before the period: the base is the equity then (Alpaca's base_value), so the first
            # point's profit or loss is its own, not 0.
            earlier = yield self.candles.read(symbol, interval, 1, end=start)
            before[symbol] = [(c["time"], c["close"]) for c in earlier]
        buckets = sorted({t for series in closes.values() for t, _ in series})[:MAX_POINTS]
        equity = curve(start_cash, changes, closes, buckets, until=end) if buckets else []
        base = start_cash  # with no price before the period: the cash the portfolio started with
        previous = max((t for series in before.values() for t, _ in series), default=None)
        if previous is not None and buckets:
            series = {symbol: before[symbol] + closes[symbol] for symbol in symbols}
            base = curve(start_cash, changes, series, [previous, buckets[0]], until=end)[0]
        return dict(timestamps=[int(b.timestamp()) for b in buckets], equity=equity,
                    profit_loss=[e - base for e in equity],
                    profit_loss_pct=[((e - base) / base).quantize(Decimal("0.000001")) if base else Decimal(0)
                                     for e in equity],
                    base_value=base, timeframe=timeframe or "1D",
                    base_time=int(previous.timestamp()) if previous is not None else None)

    @in_portfolio
    @defer.inlineCallbacks
    def activities(self, session, stamp, types=None, after=None, until=None, direction=None, page_size=None,
                   page_token=None):
        kinds = {"FILL": "fill", "DIV": "dividend", "SPLIT": "split", "FEE": "borrow_fee"}
        wanted = [kinds[t] for t in (types or ["FILL", "DIV", "SPLIT", "FEE"]) if t in kinds]
        if types and len(wanted) != len(types):
            raise InvalidInput("activity types here are FILL, DIV, SPLIT and FEE")
        if direction not in (None, "asc", "desc"):
            raise InvalidInput("direction must be asc or desc")
        size = page_size or 100
        validation.limit(size, 100)
        token = activity_transaction_id(page_token) if page_token else None

        def read(cursor):
            account_uuid = session.portfolio.uuid
            return _activity_rows(cursor, self.db, session.portfolio_id, session.portfolio.generation, wanted, after, until, direction == "asc",
                                  size, token), account_uuid

        rows, account_uuid = yield self.db.run(read)
        return {"activities": rows, "account_uuid": account_uuid}

    # --- margin accounts ----------------------------------------------------------------------

    def _review_margin(self, cursor, market_step, prices, recorded, locked, overnight=None):
        """After a step: every open margin portfolio's margin call is made, kept, met or enforced
        (papertrader/trading/margin.py ``review``), and the day's borrow fee is charged on the short positions
        held overnight (``overnight``: of the portfolios the step traded, their shorts before it; the others'
        books are as they were)."""
        reviewed = _Reviewed()
        rules = self.store.margin_rules
        if rules is None:
            return reviewed
        held = self.portfolios.margin_portfolios(cursor)
        if held:  # a game's portfolios are frozen once it has closed: no calls, liquidations or fees then
            _, frozen = self._game_rules(cursor, [p.id for p in held if p.game_id is not None], market_step.time)
            held = [p for p in held if p.id not in frozen]
        if not held:
            return reviewed
        ids = [p.id for p in held]
        self.store.lock_accounts(cursor, set(ids) - set(locked))
        books = self.store.books(cursor, ids)
        now = market_step.time
        liquidating = self.store.liquidating(cursor, ids)
        info = None
        for portfolio in held:
            book = books[portfolio.id]
            if market_step.today:
                shorts = (overnight or {}).get(portfolio.id)
                if shorts is None:  # (not traded by the step: its book is as it was overnight)
                    shorts = margin.overnight_shorts(book)
                book = self._borrow_fee(cursor, portfolio, book, shorts, prices, market_step.today, now, rules)
            if not book.positions and portfolio.margin_call is None:
                continue
            review = margin.review(book, prices, rules, portfolio.margin_call_since, now,
                                   liquidating=portfolio.id in liquidating)
            call = review.status.deficit
            if review.new_call:
                deadline = now + rules.call_deadline
                self.portfolios.set_margin_call(cursor, portfolio.id, call, now, deadline)
                reviewed.notes.append(("margin call on portfolio {id}: {deficit} to meet by {deadline} (equity"
                                       " {equity}, maintenance {maintenance})",
                                       dict(id=portfolio.id, deficit=call, deadline=iso(deadline),
                                            equity=review.status.equity, maintenance=review.status.maintenance)))
            elif review.met:
                self.portfolios.set_margin_call(cursor, portfolio.id, None, None, None)
                reviewed.notes.append(("margin call on portfolio {id} met", dict(id=portfolio.id)))
            elif review.called_since is not None and call != portfolio.margin_call:
                self.portfolios.set_margin_call(cursor, portfolio.id, call, portfolio.margin_call_since,
                                                portfolio.margin_call_deadline)
            if review.liquidate:
                info = info or self.market_clock.info(now)
                # The portfolio's orders in what it closes go first (as a broker's liquidation cancels them): an
                # open sale or cover (an OCO's exits, a bracket's) would keep the shares it needs.
                closing = {sale.symbol for sale in review.liquidate}
                open_orders = self.store.open_orders(cursor, portfolio.id)
                done = amend.cancel_all([o for o in open_orders if o.symbol in closing], now, reason=(
                    f"canceled by the platform: the margin call of {call} was not met by"
                    f" {iso(portfolio.margin_call_deadline or now)}; it closes the position"))
                if done:
                    self.store.save(cursor, [o for o, _ in done], {}, [e for _, e in done], recorded)
                    reviewed.events.extend(e for _, e in done)
                    open_orders = [o for o in open_orders if o.symbol not in closing]
                for number, sale in enumerate(review.liquidate):
                    request = OrderRequest(
                        account_id=portfolio.id, client_order_id=f"liquidation-{uuid.uuid4().hex}",
                        symbol=sale.symbol, side=Side(sale.side), type=OrderType.MARKET,
                        time_in_force=TimeInForce.DAY, quantity=sale.quantity)
                    try:
                        order = accept(request, book, open_orders, prices, now, info, self.rules)
                    except PaperTraderError as e:
                        reviewed.notes.append(("liquidation of {quantity} {symbol} in portfolio {id} refused:"
                                               " {reason}", dict(quantity=sale.quantity, symbol=sale.symbol,
                                                                 id=portfolio.id, reason=e.message)))
                        continue
                    order = order.but(reason_code="margin_liquidation", reason=(
                        f"placed by the platform: the margin call of {call} was not met by"
                        f" {iso(portfolio.margin_call_deadline or now)}"))
                    order = self.store.insert(cursor, order, recorded, "platform", "master", origin="liquidation")
                    self.store.save(cursor, [order], {}, [_accepted(order)], recorded)
                    open_orders.append(order)
                    reviewed.events.append(_accepted(order))
                    reviewed.notes.append(("margin call unmet: liquidating {side} {quantity} {symbol} in portfolio"
                                           " {id} (order {order})", dict(side=sale.side, quantity=sale.quantity,
                                                                         symbol=sale.symbol, id=portfolio.id,
                                                                         order=order.id)))
        return reviewed

    def _borrow_fee(self, cursor, portfolio, book, shorts, prices, today, now, rules):
        """Charge the borrow fee of the calendar days since the last charge (one the first time) on each short
        position held overnight (``shorts``: held at the end of the market day before, a split of today's
        applied), once a day, from the cash of ``book``; returns the book after it.  A short covered at today's
        open paid for the nights it was held; one opened today pays from tomorrow."""
        through = portfolio.borrow_fee_through
        if through is not None and through >= today.isoformat():
            return book
        self.portfolios.set_borrow_fee_through(cursor, portfolio.id, today)
        if not rules.borrow_rate or not shorts:
            return book
        from datetime import date

        days = min((today - date.fromisoformat(through)).days, 366) if through else 1
        charges = []
        cash = book.cash
        for position in sorted(shorts, key=lambda p: p.symbol):
            fee = margin.borrow_fee(replace(book, positions={position.symbol: position}), prices, rules, days)
            if fee <= 0:
                continue
            cash -= fee
            charges.append((position, fee, cash, days))
        if charges:
            self.store.charge_borrow_fees(cursor, portfolio.id, now, charges, prices)
            book = replace(book, cash=cash)
        return book

    # --- the market step -----------------------------------------------------------------

    @defer.inlineCallbacks
    def market_moved_back(self, moment):
        """A replay's market time was moved back to ``moment`` (a seek, a loop): the open orders placed after it
        expire, in one transaction, and their owners are told.  (Again at a restart if it was cut short: the
        market service rewinds again while it finds candles later than its time.)"""
        recorded = self._recorded()

        def unit_of_work(cursor):
            applied = _applied_after(self.store.all_state(cursor), moment)
            undo = sorted((a for a in applied if isinstance(a, corporate.Split)),
                          key=lambda split: (split.date, split.symbol), reverse=True)
            # The dividends of the days played again are owed again, to whoever holds at their ex-date then
            # (what was paid stays paid: its price drop was played too); owed ones of those days not paid yet
            # are forgotten (they are owed again, or not, as the days play).
            for action in applied:
                if not isinstance(action, corporate.Split):
                    self.store.set_state(cursor, _action_key(action), _action_state(action, moment, "undone"))
            self.store.forget_dividends_from(cursor, moment.date())
            wanted = self.store.open_portfolio_ids(cursor)
            holders = self.store.holders(cursor, {split.symbol for split in undo}) if undo else set()
            self.store.lock_accounts(cursor, wanted | holders)
            kept = self.store.open_orders_kept(cursor, wanted)
            done = amend.expire_placed_after([o for mine in kept.values() for o in mine], moment)
            if done:
                self.store.save(cursor, [o for o, _ in done], {}, [e for _, e in done], recorded)
            records = []
            if undo:
                # The splits played after it are undone (the days are played again, and so are they): every
                # position in those symbols and every open order in them back to the shares and prices before.
                gone = {o.id for o, _ in done}
                orders = [o for mine in kept.values() for o in mine if o.id not in gone]
                books = self.store.books(cursor, holders | {o.account_id for o in orders})
                books, changed, records, _ = corporate.apply(books, orders, [undoing(s) for s in undo],
                                                             moment.date(), moment)
                records = [replace(r, undone=True) for r in records]
                self.store.save(cursor, changed, books, [], recorded, records)
                for split in undo:
                    self.store.set_state(cursor, _action_key(split), _action_state(split, moment, "undone"))
            names = _usernames(self.db, cursor, {o.account_id for o, _ in done}) if done else {}
            # The steps after it are to be played again (a loop back to the start does not go through a seek,
            # which saves this too): market_step plays no step at or before the last one saved.
            last = self.store.get_state(cursor, "last_step")
            if last is not None and parse_iso(last) >= moment:
                self.store.set_state(cursor, "last_step", iso(moment - timedelta(microseconds=1)))
            return done, names, records, undo

        done, names, records, undone = yield self.db.run(unit_of_work)
        if done:
            self.log.info("market time moved back to {time}: {orders} placed after it expired",
                          time=moment.isoformat(), orders=counted(len(done), "open order"))
            self.publish(_owned(names, [e for _, e in done]))
        for split in undone:
            self.log.info("market time moved back to {time}: the {symbol} split of {day} undone in {portfolios}",
                          time=moment.isoformat(), symbol=split.symbol, day=split.date.isoformat(),
                          portfolios=counted(sum(1 for r in records if r.symbol == split.symbol), "portfolio"))
        return len(done)

    @defer.inlineCallbacks
    def market_step(self, market_step, quotes=None, candles=()):
        """The market update's listener: corporate actions, then one step of every open order, saved in one
        transaction with the step's market time (so a step is never applied twice), and with the update's
        ``candles`` (CandleStore rows; the market service's ``candle_writer``): stored whole or not at all."""
        # The orders accepted before this step's bars (their checks and times taken then) are committed first,
        # however long their transactions waited: the step trades them (it would miss any committed after it).
        yield self.commits.settled()
        recorded = self._recorded()

        def unit_of_work(cursor):
            done = self.store.get_state(cursor, "last_step")
            if done is not None and parse_iso(done) >= market_step.time:
                # Saved already: its COMMIT's answer was lost, and the market service plays it again (its
                # candles would add their volume twice, an order placed since would trade on its bars).
                return None, {}, _Reviewed()
            if candles:  # first: a master killed at any point after has stored neither these nor the step
                self.candles.write(cursor, candles)
            # Every portfolio the step may write is locked first, all at once in ascending order (as a group
            # commit locks), and only their orders step: an order placed in another portfolio after this
            # lock waits for the next step (stepping it unlocked could race a group commit of its portfolio).
            actions = market_step.actions
            if actions:  # each once: one played again after a seek back (or a failed update) is not
                state = self.store.all_state(cursor)
                actions = tuple(a for a in actions if _not_applied(state, a))
                for action in actions:
                    self.store.set_state(cursor, _action_key(action), _action_state(action, market_step.time))
            due = self.store.due_dividends(cursor, market_step.today) if market_step.today else []
            wanted = self.store.open_portfolio_ids(cursor) | {d.account_id for d in due}
            holders = set()
            if actions:
                holders = self.store.holders(cursor, {a.symbol for a in actions})
            if self.store.margin_rules is not None:
                wanted |= {p.id for p in self.portfolios.margin_portfolios(cursor)}
            wanted |= holders
            self.store.lock_accounts(cursor, wanted)
            # Their open orders, from memory where they are known (nothing is written yet); the core trades
            # them in time order (by id) whatever order they come in.
            kept = self.store.open_orders_kept(cursor, wanted)
            orders = [o for mine in kept.values() for o in mine]
            result, names, overnight = None, {}, {}
            own, frozen = self._game_rules(cursor, {o.account_id for o in orders}, market_step.time)
            if frozen:  # a game's orders trade only while it is open (its end cancels them)
                orders = [o for o in orders if o.account_id not in frozen]
            # Those the step leaves as they are (most resting limit orders) need neither stepping nor their books.
            orders = moving(orders, replace(market_step, actions=actions), self.rules, own)
            accounts = {o.account_id for o in orders} | {d.account_id for d in due} | holders
            if accounts:
                books = self.store.books(cursor, accounts)
                if market_step.today:  # the day's borrow fee counts the shorts held overnight, before this step
                    # (a margin portfolio's: a cash one is never short, and there may be thousands of them)
                    overnight = {a: margin.overnight_shorts(b, actions) for a, b in books.items()
                                 if b.margin is not None}
                restores = {}
                for split in (a for a in actions if isinstance(a, corporate.Split)):
                    restores.update(self.store.split_restores(cursor, holders, split))
                result = step(books, orders, replace(market_step, actions=actions, due=tuple(due), prices=prices,
                                                     restores=restores), self.rules, own)
                self.store.save(cursor, result.orders, result.books, result.events, recorded, result.records)
                self.store.save_dividends(cursor, result.owed, result.paid, recorded)
                if result.fills:
                    faults.point("step-written")  # crash tests stop here, before the commit
            reviewed = self._review_margin(cursor, market_step, prices, recorded, wanted, overnight)
            events = (list(result.events) if result else []) + reviewed.events
            if events:
                names = _usernames(self.db, cursor, {e.order.account_id for e in events})
            self.store.set_state(cursor, "last_step", iso(market_step.time))
            if market_step.today:
                self.store.set_state(cursor, "actions_through", market_step.today.isoformat())
            self.db.verify_commit(cursor)  # (a lost answer to its COMMIT: looked up, not taken for a failure)
            return result, names, reviewed

        prices = self.board.prices()
        result, names, reviewed = yield self.db.run(unit_of_work)
        self.steps += 1
        for note in reviewed.notes:
            self.log.info(*note[:1], **note[1])
        if reviewed.events:
            self.publish(_owned(names, reviewed.events))
        if result is None:
            return 0
        if result.records:
            kinds = {}
            for record in result.records:
                kinds[record.kind] = kinds.get(record.kind, 0) + 1
            self.log.info("corporate actions: {summary}",
                          summary=", ".join(f"{n} {k}{'s' if n > 1 else ''}" for k, n in sorted(kinds.items())))
        if not result.events:
            return 0
        fills = len(result.fills)
        self.filled += fills
        self.log.info("market step: {summary}", summary=_step_summary(result.events))
        self.publish(_owned(names, result.events))
        return fills


#: How the market step's log line counts each kind of event: a noun (counted, plural unless one) or a word said
#: of orders ("2 expired").
_STEP_NOUNS = {EventKind.FILL: "fill", EventKind.PARTIAL_FILL: "partial fill"}


def _step_summary(events):
    """'2 fills, 1 partial fill, 3 expired': the step's events by kind."""
    counts = {}
    for event in events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
    return ", ".join(counted(n, _STEP_NOUNS[kind]) if kind in _STEP_NOUNS else f"{n} {kind.value}"
                     for kind, n in sorted(counts.items(), key=lambda item: item[0].value))


def _generation(session, generation):
    """A generation of the session's portfolio to read (None: the current one)."""
    if generation is None:
        return session.portfolio.generation
    if not 0 <= generation <= session.portfolio.generation:
        raise InvalidInput(f"generation must be between 0 and {session.portfolio.generation} (the current one)")
    return generation


def _as_request(order):
    """An order as the request that would make it (a replacement checked against a game's rules)."""
    return OrderRequest(account_id=order.account_id, client_order_id=order.client_order_id, symbol=order.symbol,
                        side=order.side, type=order.type, time_in_force=order.time_in_force,
                        quantity=order.quantity if order.quantity is None else order.quantity - order.filled_quantity,
                        notional=order.notional, limit_price=order.limit_price, stop_price=order.stop_price,
                        trail_price=order.trail_price, trail_percent=order.trail_percent)


class _Reviewed:
    """What the margin review of one step did: the liquidation orders' events and lines for the log."""

    def __init__(self):
        self.events = []
        self.notes = []


def _accepted(order):
    from papertrader.trading.events import Event, EventKind

    return Event(EventKind.ACCEPTED, order, order.shown_created)


def _event_view(event, portfolio=None, view=None):
    """An order event as pushed to the workers; ``portfolio`` (a Portfolio, or (name, uuid)) says whose;
    ``view``: the order's ``order_view``, if it was made already."""
    view = dict(event=event.kind.value, time=_shown_time(event),
                order=view if view is not None else order_view(event.order))
    if portfolio is not None:
        name, uuid_ = (portfolio.name, portfolio.uuid) if hasattr(portfolio, "uuid") else portfolio
        view.update(portfolio=name, portfolio_uuid=uuid_)
    if event.fill is not None:
        view.update(price=event.fill.price, quantity=event.fill.quantity,
                    position_quantity=event.fill.position_after)
    return view


def _window_refusal(start, end, end_is_now):
    """Why a history window is refused.  Without an end it ends at the market's time now, which in a replay is
    years before a start a strategy took from its machine's clock: it is told so, not of an end it never gave."""
    if not end_is_now:
        return "the start must come before the end"
    shown = "%Y-%m-%dT%H:%M:%SZ"
    return (f"the start, {start.astimezone(timezone.utc):{shown}}, is not before the market's time now,"
            f" {end.astimezone(timezone.utc):{shown}} (the end when none is given): take the time from the server's"
            " clock (GET /v2/clock), not from your machine's")


def _shown_time(event):
    """When an event shows it happened: its market time, but never before the order shows it was submitted
    (``shown_created``: a microsecond after the portfolio's previous order placed at the same market time), as
    ``order_view``'s ``updated``; else a cancel (a fill) of such an order came before its own acceptance and
    the ``canceled_at`` (``filled_at``) the order shows, and a client keeping each order's newest event dropped
    it as stale."""
    return max(event.time, event.order.shown_created)


def _owned(names, events):
    """[(username, event view)] of events, by ``names`` ({portfolio id: (username, name, uuid)})."""
    out = []
    for e in events:
        username, name, uuid_ = names.get(e.order.account_id, (None, None, None))
        out.append((username, _event_view(e, (name, uuid_))))
    return out


def _usernames(db, cursor, portfolio_ids):
    """{portfolio id: (its owner's username, its name, its uuid)}."""
    ids = sorted(portfolio_ids)
    names = {}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        cursor.execute(db.sql("SELECT p.id, a.username, p.name, p.uuid FROM portfolios p JOIN accounts a"
                              f" ON a.id = p.account_id WHERE p.id IN ({', '.join('?' for _ in part)})"), part)
        names.update((r[0], tuple(r[1:])) for r in cursor.fetchall())
    return names


def _action_key(action):
    """The market state's name for a corporate action (a split, a dividend) once it has been applied."""
    kind = "split" if isinstance(action, corporate.Split) else "dividend"
    when = action.date if kind == "split" else action.ex_date
    return f"action:{kind}:{action.symbol}:{when.isoformat()}"


def _action_state(action, time, state="applied"):
    """What the market state keeps of an applied (or undone) corporate action: when, and a split's ratio."""
    value = {"state": state, "at": iso(time)}
    if isinstance(action, corporate.Split):
        value.update(new=str(action.new), old=str(action.old))
    return json.dumps(value)


def _not_applied(state, action):
    """Whether ``action`` is still to apply: never applied, or undone by a seek back since."""
    value = state.get(_action_key(action))
    return value is None or json.loads(value).get("state") == "undone"


def _applied_after(state, moment):
    """The corporate actions applied after ``moment`` and not undone since (a Split with its ratio; a Dividend
    only named: its symbol and ex-date), from the market state ``_action_state`` keeps."""
    found = []
    for name, value in state.items():
        if not name.startswith("action:"):
            continue
        info = json.loads(value)
        if info.get("state") != "applied" or parse_iso(info["at"]) <= moment:
            continue
        _, kind, symbol, when = name.split(":", 3)
        when = date.fromisoformat(when)
        if kind == "split":
            found.append(corporate.Split(symbol, when, Decimal(info["new"]), Decimal(info["old"])))
        else:
            found.append(corporate.Dividend(symbol, when, Decimal(0)))
    return found


def _day_rows(cursor, db, portfolio_id, generation, began, now, ends, book, page=100):
    """The transactions of the day that began at ``began`` (oldest first, as (kind, symbol, amount)) and the
    quantity held when it began of each symbol they traded: ([...], {symbol: quantity}).  A split of the day
    came before its trades (a step applies corporate actions first), and the previous close it is valued at is
    divided by it (market/board.py): the quantity is the one after it, what is held less what the day traded.

    They are the newest rows dated from ``began`` to ``now`` (market time) and before ``ends`` (the next
    session's open, if known), read back from the newest until one is not: an older day's, or one of the days a
    seek back left behind (dated later than market time now, or at the open it went back to)."""
    if began is None:
        return [], {}
    low, high = iso(began), iso(now)
    if ends is not None:
        high = min(high, iso(ends - timedelta(microseconds=1)))
    rows, before = [], None
    while True:
        cursor.execute(db.sql(
            "SELECT id, time, kind, symbol, side, quantity_units, amount_cents FROM transactions"
            " WHERE portfolio_id = ? AND generation = ?" + (" AND id < ?" if before is not None else "") +
            " ORDER BY id DESC LIMIT ?"),
            (portfolio_id, generation) + ((before,) if before is not None else ()) + (page,))
        found = cursor.fetchall()
        for row in found:
            if not low <= row[1] <= high:
                break
            rows.append(row[2:])
        else:
            if len(found) == page:  # all of this page is the day's: read on
                before = found[-1][0]
                continue
        break
    rows.reverse()
    today = [(kind, symbol, from_cents(amount)) for kind, symbol, _, _, amount in rows]
    held_then = {}
    for kind, symbol, side, quantity, _ in rows:
        if kind == "fill":
            held = held_then.get(symbol, book.quantity(symbol))
            held_then[symbol] = held - from_quantity_units(quantity) * (1 if side == "buy" else -1)
    return today, held_then


def _history_page(cursor, db, portfolio_id, generation, before, limit):
    from papertrader.money import from_price_units, from_quantity_units
    from papertrader.times import parse_iso

    where, params = "portfolio_id = ? AND generation = ?", [portfolio_id, generation]
    if before is not None:
        where += " AND id < ?"
        params.append(before)
    cursor.execute(db.sql(
        "SELECT id, time, kind, order_id, side, symbol, quantity_units, price_units, commission_cents,"
        f" amount_cents, cash_after_cents, realized_cents, model, details FROM transactions WHERE {where}"
        " ORDER BY id DESC LIMIT ?"), params + [limit])
    out = []
    for r in cursor.fetchall():
        row = dict(id=r[0], time=parse_iso(r[1]), kind=r[2], order_id=r[3], side=r[4], symbol=r[5],
                   quantity=from_quantity_units(r[6]), price=from_price_units(r[7]), commission=from_cents(r[8]),
                   amount=from_cents(r[9]), cash_after=from_cents(r[10]),
                   realized_pl=from_cents(r[11]) if r[11] is not None else None, model=r[12], details=r[13])
        out.append({k: v for k, v in row.items() if v is not None})
    return out


def rules_from(settings):
    """The trading rules a deployment's settings choose."""
    from papertrader.trading.commissions import Percent, PerOrder, PerShare, Zero
    from papertrader.trading.fill_models import BarFillModel, IdealFillModel
    from papertrader.trading.pretrade import Rules

    if settings.fill_model == "ideal":
        fill_model = IdealFillModel()
    else:
        fill_model = BarFillModel(settings.half_spread_bps, settings.impact_bps, settings.volume_share)
    kind = settings.commission_model or ("per_order" if settings.commission else "zero")
    commission_model = {
        "zero": lambda: Zero(),
        "per_order": lambda: PerOrder(settings.commission),
        "per_share": lambda: PerShare(settings.commission_per_share, settings.commission_minimum,
                                      settings.commission_maximum or None),
        "percent": lambda: Percent(settings.commission_percent),
    }[kind]()
    return Rules(fill_model=fill_model, commission_model=commission_model,
                 market_buy_buffer=settings.market_buy_buffer / 100, max_open_orders=settings.max_open_orders)


def _period(text):
    """A period such as 1D, 2W, 3M, 1A as a timedelta."""
    import re

    match = re.fullmatch(r"([1-9][0-9]{0,3})([DWMA])", text or "")
    if not match:
        raise InvalidInput("period must be a number from 1 to 9999 and D, W, M or A (e.g. 1M)")
    days = {"D": 1, "W": 7, "M": 30, "A": 365}[match.group(2)] * int(match.group(1))
    return timedelta(days=min(days, 365 * 100))


def activity_id(time, transaction_id):
    """Alpaca's activity id shape, 'YYYYMMDDHHMMSSmmm::UUID', with the transaction id inside the UUID."""
    return f"{time:%Y%m%d%H%M%S}{time.microsecond // 1000:03d}::{uuid.UUID(int=transaction_id)}"


def activity_transaction_id(activity):
    try:
        return uuid.UUID(activity.split("::", 1)[1]).int
    except (IndexError, ValueError):
        raise InvalidInput("page_token: an activity id from an earlier page")


#: When a transaction shows it happened: its time, but a fill never before its order shows it was submitted (the
#: order's ``shown_created``, a microsecond after the market time for the second order placed at one market time),
#: as the order's ``filled_at`` and the fill's trade update show it (``_shown_time``): one fill, one instant.
_SHOWN_TIME = ("CASE WHEN o.id IS NOT NULL AND COALESCE(o.submitted, o.created) > t.time"
               " THEN COALESCE(o.submitted, o.created) ELSE t.time END")


def _activity_rows(cursor, db, portfolio_id, generation, kinds, after, until, oldest_first, size, token):
    where, params = (f"t.portfolio_id = ? AND t.generation = ? AND t.kind IN ({', '.join('?' for _ in kinds)})",
                     [portfolio_id, generation] + kinds)
    if after is not None:
        where += f" AND {_SHOWN_TIME} > ?"
        params.append(iso(after))
    if until is not None:
        where += f" AND {_SHOWN_TIME} < ?"  # exclusive, as Alpaca's
        params.append(iso(until))
    if token is not None:
        where += " AND t.id > ?" if oldest_first else " AND t.id < ?"
        params.append(token)
    order = "ASC" if oldest_first else "DESC"
    cursor.execute(db.sql(
        f"SELECT t.id, {_SHOWN_TIME}, t.kind, t.symbol, t.side, t.quantity_units, t.price_units, t.amount_cents,"
        " t.details, t.order_id, o.uuid, o.status, o.quantity_units, t.commission_cents,"
        " (SELECT SUM(f.quantity_units) FROM transactions f WHERE f.order_id = t.order_id AND f.id <= t.id),"
        " t.position_after_units"
        f" FROM transactions t LEFT JOIN orders o ON o.id = t.order_id WHERE {where} ORDER BY t.id {order} LIMIT ?"),
        params + [size])
    out = []
    for (tid, time, kind, symbol, side, quantity, price, amount, details, order_id, order_uuid, _, ordered,
         commission, cumulative, position_after) in cursor.fetchall():
        moment = parse_iso(time)
        row = dict(id=activity_id(moment, tid), kind=kind, time=moment, symbol=symbol,
                   side=side if kind == "fill" else None, quantity=from_quantity_units(quantity),
                   price=from_price_units(price), amount=from_cents(amount), details=details)
        if kind == "fill":
            cum = from_quantity_units(cumulative or quantity)
            leaves = max(from_quantity_units(ordered) - cum, Decimal(0)) if ordered else Decimal(0)
            # The order's status right after this fill (not now: a later fill, or a cancel, changed it since).
            row.update(order_uuid=order_uuid, order_status="filled" if not leaves else "partially_filled",
                       cum_qty=cum, commission=from_cents(commission), leaves_qty=leaves)
            # A sale that leaves the position short is a short sale (a sale never turns a long position short).
            if side == "sell" and position_after is not None and position_after < 0:
                row["short_sale"] = True
        out.append({k: v for k, v in row.items() if v is not None})
    return out
