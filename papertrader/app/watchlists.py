"""Watchlist commands: an account's named lists of symbols (papertrader/master/watchlists.py), the same for the
command line, the website and the HTTP API (``/v2/watchlists``).

A list is named by its id (``watchlist_id``, a UUID) or by its name (``watchlist_name``), one of the two.  A
symbol may be any asset of the deployment, even one a replay lists later (its orders are refused until its
first day, but it can be watched).  Adding a symbol already listed leaves the list as it is; removing one not
listed is refused (a change of several symbols is one change: all or none).  Every answer carries the list's symbols in order and ``account_uuid``: the id of the account
as ``GET /v2/account`` shows it to the caller (an API key's portfolio, else the default one).
"""

from twisted.internet import defer

from papertrader.app import in_portfolio
from papertrader.app.portfolios import session_in
from papertrader.errors import InvalidInput
from papertrader.master import validation, watchlists
from papertrader.master.watchlists import WatchlistStore
from papertrader.times import utc


def _selector(watchlist_id, watchlist_name):
    if (watchlist_id is None) == (watchlist_name is None):
        raise InvalidInput("name the watchlist by its id or by its name (one of the two)")
    return dict(watchlist_id=watchlist_id) if watchlist_id is not None else dict(name=watchlist_name)


class WatchlistCommands:
    def __init__(self, db, board, portfolios, clock):
        self.db = db
        self.board = board
        self.portfolios = portfolios  # the PortfolioStore (the caller's account id, as /v2/account shows it)
        self.clock = clock
        self.store = WatchlistStore(db)

    def session_now(self, session, portfolio=None):
        """The session with its portfolio (``in_portfolio``): the account's id in every answer is that one's."""
        return session_in(self.db, self.portfolios, session, portfolio)

    def _now(self):
        return utc(self.clock.seconds())

    def _symbol(self, value):
        return validation.symbol(value, self.board.assets)

    def _symbols(self, values):
        return watchlists.symbols(values, self._symbol)

    @staticmethod
    def _answer(session, found):
        return dict(found.answer(), account_uuid=session.portfolio.uuid)

    @in_portfolio
    @defer.inlineCallbacks
    def watchlists(self, session, stamp):
        found = yield self.db.run(self.store.of_account, session.account_id)
        rows = [dict(w.answer(), size=len(w.symbols)) for w in found]
        for row in rows:
            del row["symbols"]
        return {"watchlists": rows, "account_uuid": session.portfolio.uuid}

    @in_portfolio
    @defer.inlineCallbacks
    def create_watchlist(self, session, stamp, name, symbols=None):
        wanted, listed = watchlists.list_name(name), self._symbols(symbols)
        made = yield self.db.run(self.store.create, session.account_id, wanted, listed, self._now())
        return self._answer(session, made)

    @in_portfolio
    @defer.inlineCallbacks
    def get_watchlist(self, session, stamp, watchlist_id=None, watchlist_name=None):
        found = yield self.db.run(self.store.find, session.account_id, **_selector(watchlist_id, watchlist_name))
        return self._answer(session, found)

    @in_portfolio
    @defer.inlineCallbacks
    def update_watchlist(self, session, stamp, watchlist_id=None, watchlist_name=None, name=None, symbols=None):
        """Rename a list (``name``) and/or make its symbols ``symbols`` (in that order; an empty list empties it)."""
        selector = _selector(watchlist_id, watchlist_name)
        if name is None and symbols is None:
            raise InvalidInput("give the watchlist a new name or its symbols (or both)")
        rename = None if name is None else watchlists.list_name(name)
        listed = None if symbols is None else self._symbols(symbols)
        changed = yield self.db.run(self.store.change, session.account_id, selector, self._now(), rename=rename,
                                    edit=None if listed is None else (lambda old: listed))
        return self._answer(session, changed)

    @in_portfolio
    @defer.inlineCallbacks
    def add_to_watchlist(self, session, stamp, symbols, watchlist_id=None, watchlist_name=None):
        selector, added = _selector(watchlist_id, watchlist_name), self._symbols(symbols)

        def more(old):
            return old + tuple(s for s in added if s not in old)

        changed = yield self.db.run(self.store.change, session.account_id, selector, self._now(), edit=more)
        return self._answer(session, changed)

    @in_portfolio
    @defer.inlineCallbacks
    def remove_from_watchlist(self, session, stamp, symbols, watchlist_id=None, watchlist_name=None):
        selector = _selector(watchlist_id, watchlist_name)
        removed = list(dict.fromkeys((s or "").strip().upper() for s in symbols))[:watchlists.MAX_SYMBOLS + 1]

        def fewer(old):
            missing = [s if len(s) <= 16 else s[:16] + "..." for s in removed if s not in old]
            if missing:
                raise InvalidInput(f"{', '.join(missing[:5])} {'is' if len(missing) == 1 else 'are'} not in this"
                                   " watchlist")
            return tuple(s for s in old if s not in removed)

        changed = yield self.db.run(self.store.change, session.account_id, selector, self._now(), edit=fewer)
        return self._answer(session, changed)

    @in_portfolio
    @defer.inlineCallbacks
    def delete_watchlist(self, session, stamp, watchlist_id=None, watchlist_name=None):
        yield self.db.run(self.store.delete, session.account_id, _selector(watchlist_id, watchlist_name))
        return {}
