"""Portfolio commands: make, list, rename, close and reset an account's portfolios; and which portfolio a
trading command trades (``session_in``).

A portfolio is a book of its own (cash, positions, orders, history, API keys; see
papertrader/master/portfolios.py).  A trading command names one with its ``portfolio`` argument, or
trades the account's default portfolio; a command sent with an API key trades the key's portfolio.

A reset cancels the open orders, starts a new generation with the starting cash and no positions, and
keeps everything else: the earlier generations' orders and history stay readable (``generation``), and
the portfolio's API keys keep working.
"""

from dataclasses import replace

from twisted.internet import defer

from papertrader.app import api_keys_too, authenticated, in_portfolio
from papertrader.errors import InvalidInput, PortfolioNotEmpty, UnknownPortfolio
from papertrader.logs import counted
from papertrader.master import portfolios as names
from papertrader.master import validation
from papertrader.master.db import is_unique_violation
from papertrader.times import utc
from papertrader.trading import amend, configuration


def session_in(db, portfolios, session, portfolio=None):
    """``session`` with the portfolio it trades: an API key's own, else the named one, else the default.
    Mostly answered from memory (PortfolioStore.resolve_remembered): the session, or a Deferred of it."""
    if session.api_key is not None:
        return _then(portfolios.get_remembered(session.portfolio_id), _key_portfolio, session, portfolio)
    return _then(portfolios.resolve_remembered(session.account_id, portfolio), _with, session)


def _then(value, function, *args):
    if isinstance(value, defer.Deferred):
        return value.addCallback(function, *args)
    return function(value, *args)


def _key_portfolio(found, session, portfolio):
    if found is None or found.closed is not None:
        raise UnknownPortfolio("this API key's portfolio is closed")
    if portfolio not in (None, "") and names.name(portfolio).casefold() != found.name.casefold():
        raise InvalidInput(f"an API key trades its own portfolio ({found.name!r}) only")
    return _with(found, session)


def _with(found, session):
    return replace(session, portfolio_id=found.id, portfolio=found)


def portfolio_view(portfolio):
    view = dict(id=portfolio.id, uuid=portfolio.uuid, name=portfolio.name, kind=portfolio.kind,
                starting_cash=portfolio.starting_cash, cash=portfolio.cash, default=portfolio.is_default,
                generation=portfolio.generation, created=portfolio.created, began=portfolio.began,
                closed=portfolio.closed,
                game_id=portfolio.game_id, margin_call=portfolio.margin_call,
                margin_call_since=portfolio.margin_call_since, margin_call_deadline=portfolio.margin_call_deadline)
    return {k: v for k, v in view.items() if v is not None}


def _configuration_view(found, book, portfolio):
    return dict(configuration.view(found or configuration.DEFAULT, book.margin is not None), portfolio=portfolio.name)


class PortfolioCommands:
    def __init__(self, db, store, portfolios, settings, clock, log, trading):
        self.db = db
        self.store = store  # the OrderStore
        self.portfolio_store = portfolios  # the PortfolioStore
        self.settings = settings
        self.clock = clock
        self.log = log
        #: The trading commands (their group commit, market clock and event publishing).
        self.trading = trading
        #: Called with (username, renamed=OLD, name=NEW), (username, closed=NAME), (username, reset=NAME) or
        #: (username) when an account's portfolios change (made, renamed, closed, reset, another the default): the
        #: master tells the workers.
        self.on_changed = []

    def _changed(self, username, **what):
        for notify in list(self.on_changed):
            try:
                notify(username, **what)
            except Exception:
                self.log.failure("telling that a user's portfolios changed failed")

    def _now(self):
        return utc(self.clock.seconds())

    def _own(self, session):
        if session.api_key is not None:
            raise InvalidInput("portfolios are managed by their owner: sign in as yourself")

    # --- commands --------------------------------------------------------------------------

    @api_keys_too
    @authenticated
    @defer.inlineCallbacks
    def portfolios(self, session, stamp, closed=None):
        """The account's portfolios (with ``closed``, also the closed ones), the default first; an API key sees
        only its own."""
        found = yield self.db.run(self.portfolio_store.of_account, session.account_id, bool(closed))
        if session.api_key is not None:
            found = [p for p in found if p.id == session.portfolio_id]
        return {"portfolios": [portfolio_view(p) for p in found]}

    @authenticated
    @defer.inlineCallbacks
    def create_portfolio(self, session, stamp, name, cash=None, margin=None, default=None):
        self._own(session)
        wanted = names.name(name)
        if cash in (None, ""):
            amount = self.settings.starting_cash
        else:
            amount = validation.money_amount("cash", cash)
            if amount > self.settings.max_portfolio_cash:
                raise InvalidInput(f"a portfolio's starting cash is at most {self.settings.max_portfolio_cash}")
        if margin and not self.settings.margin_accounts:
            raise InvalidInput("margin accounts are not offered on this server (setting margin_accounts)")
        created = self._now()
        began = self.trading.market_clock.now()  # (where its equity curve starts: the market's time, a replay's)
        limit = self.settings.max_portfolios

        def unit_of_work(cursor):
            if self.portfolio_store.count_open(cursor, session.account_id) >= limit:
                raise InvalidInput(f"you already have {limit} portfolios of your own (the most one account may"
                                   " have; those you play games in do not count); close one first")
            made = self.portfolio_store.create(cursor, session.account_id, wanted, "margin" if margin else "cash",
                                          amount, created, began=began)
            if default:
                self.portfolio_store.set_default(cursor, made)
                made = self.portfolio_store.get(cursor, made.id)
            return made

        try:
            made = yield self.db.run(unit_of_work)
        except Exception as e:
            if is_unique_violation(e):  # made at the same moment by another command
                raise InvalidInput(f"you already have a portfolio named {wanted!r}")
            raise
        self.log.info("{username} made portfolio {id} ({name}, {kind}, {cash})", username=session.username,
                      id=made.id, name=made.name, kind=made.kind, cash=made.starting_cash)
        self._changed(session.username)
        return portfolio_view(made)

    @authenticated
    @defer.inlineCallbacks
    def rename_portfolio(self, session, stamp, name, new_name):
        self._own(session)

        def unit_of_work(cursor):
            found = self.portfolio_store.by_name(cursor, session.account_id, name)
            if found.game_id is not None:
                raise InvalidInput(f"{found.name!r} is your portfolio in a game: it keeps the name it was given,"
                                   " which the game's players and creator know it by")
            return found.name, self.portfolio_store.rename(cursor, found, new_name)

        try:
            old, renamed = yield self.db.run(unit_of_work)
        except Exception as e:
            if is_unique_violation(e):
                raise InvalidInput(f"you already have a portfolio named {new_name!r}")
            raise
        self._changed(session.username, renamed=old, name=renamed.name)
        return portfolio_view(renamed)

    @authenticated
    @defer.inlineCallbacks
    def set_default_portfolio(self, session, stamp, name):
        self._own(session)

        def unit_of_work(cursor):
            found = self.portfolio_store.by_name(cursor, session.account_id, name)
            self.portfolio_store.set_default(cursor, found)
            return self.portfolio_store.get(cursor, found.id)

        made = yield self.db.run(unit_of_work)
        self._changed(session.username)
        return portfolio_view(made)

    @authenticated
    @defer.inlineCallbacks
    def close_portfolio(self, session, stamp, name):
        """Close a portfolio that has no open orders and no positions (not the default one)."""
        self._own(session)
        when = self._now()

        def unit_of_work(cursor):
            found = self.portfolio_store.by_name(cursor, session.account_id, name)
            self.store.lock_accounts(cursor, [found.id])
            if found.game_id is not None:
                raise InvalidInput(f"{found.name!r} is your portfolio in a game: it stays with the game (its history is the game's)")
            if found.is_default:
                raise InvalidInput(f"{found.name!r} is your default portfolio: make another the default first"
                                   " (portfolio default NAME)")
            orders, positions = self.portfolio_store.holds(cursor, found.id)
            if orders or positions:
                todo = []
                if orders:
                    todo.append(f"cancel its {orders} open order{'s' if orders > 1 else ''}")
                if positions:
                    todo.append(f"close its {positions} position{'s' if positions > 1 else ''}")
                raise PortfolioNotEmpty(f"portfolio {found.name!r} is not empty: {' and '.join(todo)} first"
                                        " (or reset it)")
            keys = self.portfolio_store.close(cursor, found, when)
            return self.portfolio_store.get(cursor, found.id), keys

        closed, keys = yield self.db.run(unit_of_work)
        api_keys = getattr(self.trading, "api_keys", None)
        for key_id in keys:
            if api_keys is not None:
                api_keys.forget(key_id)
        self.log.info("{username} closed portfolio {id} ({name})", username=session.username, id=closed.id,
                      name=closed.name)
        self._changed(session.username, closed=closed.name)
        return portfolio_view(closed)

    # --- configuration (papertrader/trading/configuration.py) ---------------------------------

    def session_now(self, session, portfolio=None):
        return self.trading.session_now(session, portfolio)

    @in_portfolio
    @defer.inlineCallbacks
    def portfolio_configuration(self, session, stamp):
        book = yield self.db.run(self.store.book, session.portfolio_id)
        return _configuration_view(book.configuration, book, session.portfolio)

    @in_portfolio
    @defer.inlineCallbacks
    def configure_portfolio(self, session, stamp, **changes):
        """Change the settings given; an API key may change its own portfolio's, as Alpaca's."""

        def unit_of_work(cursor):
            self.store.lock_accounts(cursor, [session.portfolio_id])  # after an order being placed, or before it
            book = self.store.book(cursor, session.portfolio_id)
            before = book.configuration or configuration.DEFAULT
            after = configuration.changed(before, changes, book.margin is not None)
            if after != before:
                self.portfolio_store.set_configuration(cursor, session.portfolio_id, configuration.stored(after))
            return book, before, after

        book, before, after = yield self.db.run(unit_of_work)
        if after != before:
            self.log.info("{username} configured portfolio {id}: {changes}", username=session.username,
                          id=session.portfolio_id, changes=", ".join(
                              f"{name} {value}" for name, value in sorted(configuration.view(after, False).items())
                              if getattr(before, name, value) != value))
        return _configuration_view(after, book, session.portfolio)

    @authenticated
    @defer.inlineCallbacks
    def reset_portfolio(self, session, stamp, name):
        """Cancel the open orders, archive the history (a new generation) and start again with the starting
        cash.  API keys, the name, the kind and everything else of the account stay."""
        self._own(session)
        when = self._now()
        now = self.trading.market_clock.now()

        def unit_of_work(cursor):
            found = self.portfolio_store.by_name(cursor, session.account_id, name)
            self.store.lock_accounts(cursor, [found.id])
            if found.game_id is not None:
                raise InvalidInput(f"{found.name!r} is your portfolio in a game: a game's portfolio is never reset")
            done = amend.cancel_all(self.store.open_orders(cursor, found.id), now,
                                    reason="canceled: the portfolio was reset")
            self.store.save(cursor, [o for o, _ in done], {}, [e for _, e in done], when)
            return self.portfolio_store.reset(cursor, found, when, began=now), done

        reset, done = yield self.db.run(unit_of_work)
        self.log.info("{username} reset portfolio {id} ({name}) to generation {generation}; {orders} canceled",
                      username=session.username, id=reset.id, name=reset.name, generation=reset.generation,
                      orders=counted(len(done), "open order"))
        self._changed(session.username, reset=reset.name)
        if done:
            from papertrader.app.trading import _event_view

            self.trading.publish([(session.username, _event_view(e, reset)) for _, e in done])
        return dict(portfolio_view(reset), canceled=len(done))

