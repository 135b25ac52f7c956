"""Game commands: create, join, invite, remove a player, end, list, show, the leaderboard, a player's curve and
a player's portfolio; and the leaderboard update after each market step.

The rules themselves are the trading core's (papertrader/trading/games.py); the store is
papertrader/master/games.py.  Each method is one database transaction.  Who sees what: a public game is
visible to everyone signed in (its leaderboard too); a private one only to its creator and its players —
to anyone else it is an unknown game, whatever they ask.  Leaderboards name players by username only.  A
player's portfolio (``game_portfolio``) is seen by the game's creator, and by its players when the game shows
portfolios (the core's rule: trading/games.py ``may_see_portfolios``); it is read by the trading commands'
own portfolio, orders and history methods, as its owner sees it.

Games run on the market's clock (the time orders are placed and filled at, ``papertrader clock``).
"""

import shlex
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

from twisted.internet import defer

from papertrader import times
from papertrader.app import authenticated
from papertrader.errors import (GameClosed, InvalidInput, NotGameCreator, PaperTraderError, PortfoliosHidden,
                                UnknownGame)
from papertrader.market.calendar import CalendarError
from papertrader.master import games as store_module
from papertrader.master import validation
from papertrader.money import MAX_MONEY, money_text, parse_money
from papertrader.trading import amend, margin
from papertrader.trading.games import (
    MIN_CASH,
    GameRules,
    Player,
    commission_text,
    leaderboard,
    may_see_portfolios,
    parse_commission,
    parse_percent,
    rank_by,
    shows_player,
)

#: Unfinished games one account may have created at a time (an abuse limit).
MAX_OPEN_GAMES_PER_CREATOR = 20
MAX_BOARD_PAGE = 500
#: Transactions a player's portfolio shows by default (GamePortfolio's limit), and at most; open orders at most.
HISTORY_PAGE = 50
MAX_HISTORY_PAGE = 500
MAX_SHOWN_ORDERS = 500
#: What a player's portfolio does not show others: the names its owner gave orders, the ids the HTTP API knows
#: the portfolio and its orders by.
NOT_SHOWN = ("account_uuid",)
NOT_SHOWN_OF_ORDERS = ("uuid", "client_order_id", "replaces_uuid", "replaced_by_uuid")


def game_view(game, players, account_id, membership=None, now=None, invite_code=None):
    """A game as every game command shows it (plain values; see commands._GAME)."""
    rules = game.rules
    view = dict(
        name=game.name, creator=game.creator, status=game.status(now), start=rules.start, end=rules.end,
        ended_at=game.ended_at, starting_cash=rules.starting_cash, private=game.private, players=players,
        commission=commission_text(rules.commission) if rules.commission is not None else None,
        fill_model=rules.fill_model, margin=rules.margin, allow_short=rules.allow_short, assets=list(rules.assets),
        max_position=rules.max_position, is_creator=game.creator_id == account_id,
        playing=membership is not None and membership.removed is None,
        portfolio=membership.portfolio_name if membership is not None and membership.removed is None else None,
        board_updated=game.board_updated, invite_code=invite_code, show_portfolios=game.show_portfolios)
    return {k: v for k, v in view.items() if v is not None}


class GameCommands:
    def __init__(self, db, store, portfolios, orders, board, market_clock, clock, log, publish=None,
                 margin_allowed=True, trading=None, max_cash=None):
        self.db = db
        self.store = store
        self.portfolios = portfolios
        self.orders = orders
        self.board = board
        self.market_clock = market_clock
        self.clock = clock
        self.log = log
        #: Called after each commit with [(username, event view)] (the canceled orders of a finished game).
        self.publish = publish or (lambda events: None)
        self.updates = 0
        #: Whether the operator offers margin accounts (setting margin_accounts): a game may not, otherwise.
        self.margin_allowed = margin_allowed
        #: The most starting cash a portfolio may have (setting max_portfolio_cash; None: no limit but MAX_MONEY).
        self.max_cash = max_cash
        #: The trading commands (papertrader/app/trading.py): they read a player's portfolio, orders and history.
        self.trading = trading
        #: Called after each commit that changed standings with the game's name (None: an update's ranking).
        self.on_changed = []

    def _recorded(self):
        from papertrader.times import utc

        return utc(self.clock.seconds())

    # --- who sees what --------------------------------------------------------------

    def _find(self, cursor, account_id, name):
        """The game of that name if this account may see it, with its membership; UnknownGame otherwise."""
        game = self.store.by_name(cursor, name) if isinstance(name, str) else None
        membership = self.store.membership(cursor, game, account_id) if game is not None else None
        if game is None or (game.private and game.creator_id != account_id and
                            (membership is None or membership.removed is not None)):
            if membership is not None:  # a player its creator removed: the game is hidden again, and says why
                raise UnknownGame(f"you were removed from {game.name} by its creator ({game.creator}) on"
                                  f" {times.day(membership.removed, times.market_zone(self.market_clock))}: a private"
                                  " game is seen only by its players")
            shown = name[:40] if isinstance(name, str) else ""
            raise UnknownGame(f"no game named {shown!r} (or it is private and you are not in it)")
        return game, self._named(cursor, membership)

    def _named(self, cursor, membership):
        if membership is None:
            return None
        portfolio = self.portfolios.get(cursor, membership.portfolio_id)
        return _Named(membership, portfolio.name if portfolio is not None else None)

    def _view(self, cursor, game, account_id, membership, now, invite_code=None):
        return game_view(game, self.store.count_players(cursor, game.id), account_id, membership, now, invite_code)

    @staticmethod
    def _creator(game, session, doing):
        if game.creator_id != session.account_id:
            raise NotGameCreator(f"only the creator of {game.name} ({game.creator}) may {doing}")

    # --- commands -----------------------------------------------------------------------

    @authenticated
    def create_game(self, session, stamp, name, start, end, starting_cash, commission=None, fill_model=None,
                    margin=None, allow_short=None, assets=None, max_position=None, private=None,
                    show_portfolios=None, days=None):
        return self.create(session.account_id, session.username, name, start, end, starting_cash, commission,
                           fill_model, margin, allow_short, assets, max_position, private, show_portfolios, days)

    def rules(self, start, end, starting_cash, commission=None, fill_model=None, margin=None, allow_short=None,
              assets=None, max_position=None):
        """GameRules from a command's arguments (typed errors for anything wrong)."""
        most = min(self.max_cash, MAX_MONEY) if self.max_cash is not None else MAX_MONEY
        rule = (f"starting cash must be an amount of money from {money_text(MIN_CASH)} to {money_text(most)}"
                + (" on this server (setting max_portfolio_cash, as every portfolio's)" if most < MAX_MONEY else "")
                + ", at most 2 decimals")
        try:
            cash = parse_money(starting_cash)
        except ValueError:
            raise InvalidInput(f"{rule} (not {str(starting_cash)[:24]!r})")
        if not MIN_CASH <= cash <= most:
            raise InvalidInput(f"{rule} (not {money_text(cash)})")
        assets = list(assets or ())
        if len(assets) > 500:
            raise InvalidInput("a game may list at most 500 assets")
        for symbol in assets:
            if not isinstance(symbol, str) or symbol.strip().upper() not in self.board.assets:
                raise validation.unknown_symbol(symbol, list(self.board.assets))
        if (margin or allow_short) and not self.margin_allowed:
            raise InvalidInput("margin accounts (and so short selling) are not offered on this server (setting"
                               " margin_accounts)")
        return GameRules(
            start=start, end=end, starting_cash=cash,
            commission=parse_commission(commission) if commission else None,
            fill_model=fill_model or None, margin=bool(margin or allow_short), allow_short=bool(allow_short),
            assets=tuple(assets), max_position=parse_percent(max_position) if max_position else None)

    @defer.inlineCallbacks
    def create(self, account_id, username, name, start, end, starting_cash, commission=None, fill_model=None,
               margin=None, allow_short=None, assets=None, max_position=None, private=None, show_portfolios=None,
               days=None):
        """Create a game for ``account_id`` (its creator); the view, with the first invite code if private.
        ``show_portfolios``: its players may see each other's portfolios (its creator always may).  ``days``: which
        of ``start`` and ``end`` were given as days (CreateGame)."""
        name = store_module.name(name)
        rules = self.rules(start, end, starting_cash, commission, fill_model, margin, allow_short, assets,
                           max_position)
        now = self.market_clock.now()
        zone = times.market_zone(self.market_clock)
        market = self.market_clock.describe()
        last = market.get("end") if market.get("mode") == "replay" else None
        if last is not None and rules.start >= last + timedelta(days=1):
            raise InvalidInput(f"the game would start after the replay's last day ({last:%Y-%m-%d}): it would"
                               f" never open; the market's date is {times.day(now, zone)} (papertrader clock)")
        if last is not None and rules.end > last + timedelta(days=1):  # (a looping replay starts over first)
            raise InvalidInput(f"the game would end after the replay's last day ({last:%Y-%m-%d}): it would never"
                               f" finish or have a final ranking; end it on {last:%Y-%m-%d} or before")
        # A day (its midnight UTC, as clients send one) is the market's day: from its midnight in the market's zone.
        # A time is a time, even at midnight UTC (a client from before ``days``: a midnight UTC is a day).
        given = [] if days is None else [d for d in days if isinstance(d, str)][:2]
        if days is not None and any(d not in ("start", "end") for d in given):
            raise InvalidInput("days names 'start' or 'end', those given as days")
        for which in given:
            if not times.at_midnight_utc(getattr(rules, which)):
                raise InvalidInput(f"the game's {which}, given as a day, is sent as its midnight UTC")
        rules = replace(rules, **{which: times.market_midnight(moment, zone)
                                  for which, moment in (("start", rules.start), ("end", rules.end))
                                  if (which in given if days is not None else times.at_midnight_utc(moment))})
        if rules.end <= now:
            raise InvalidInput(f"the game would end before the market's time now ({times.local(now, zone)})")
        self._check_sessions(rules, zone)
        code = store_module.new_invite_code() if private else None
        recorded = self._recorded()

        def unit_of_work(cursor):
            cursor.execute(self.db.sql("SELECT COUNT(*) FROM games WHERE creator_id = ? AND finished IS NULL"),
                           (account_id,))
            if cursor.fetchone()[0] >= MAX_OPEN_GAMES_PER_CREATOR:
                raise InvalidInput(f"you already run {MAX_OPEN_GAMES_PER_CREATOR} games that have not finished")
            game = self.store.create(cursor, account_id, name, rules, bool(private), recorded,
                                     store_module.invite_hash(code) if code else None, bool(show_portfolios))
            return self._view(cursor, game, account_id, None, now, code)

        view = yield self.db.run(unit_of_work)
        self.log.info("game {name} created by {username} ({private})", name=name, username=username,
                      private="private" if private else "public")
        return view

    def _check_sessions(self, rules, zone):
        """Refuse a game in which the market never opens (a weekend, holidays): it was taken, never traded, and
        its final ranking was dated at the next session, after its end.  A calendar that does not reach the end
        (years ahead) is given the benefit of the doubt."""
        calendar = self.market_clock.calendar
        try:
            trading = calendar.info(rules.start).current is not None  # (a start inside a session)
            calendar.info(rules.end)
        except CalendarError:
            return
        if not trading and not calendar.sessions(rules.start, rules.end):
            last = times.last_day(rules.end, zone) or times.local(rules.end, zone)
            raise InvalidInput(f"the game would have no trading session: the market ({calendar.name}) does not"
                               f" open from {times.local_or_day(rules.start, zone)} to {last} (a weekend or"
                               " holidays); choose days it trades")

    @authenticated
    def join_game(self, session, stamp, name, code=None):
        return self.join(session.account_id, session.username, name, code)

    def _join(self, cursor, account_id, name, code, now, recorded, invited=False):
        """One player joins (inside a transaction); the Membership made."""
        game = self.store.by_name(cursor, name) if isinstance(name, str) else None
        membership = self.store.membership(cursor, game, account_id) if game is not None else None
        invited = invited or game is not None and (not game.private or game.creator_id == account_id or (
            code and game.invite_hash and store_module.invite_hash(code) == game.invite_hash))
        if game is None or (not invited and membership is None):
            shown = name[:40] if isinstance(name, str) else ""
            raise UnknownGame(f"no game named {shown!r}, or it is private and that is not its invite code")
        if membership is not None:
            if membership.removed is not None:
                raise GameClosed(f"you were removed from {game.name}")
            raise InvalidInput(f"you already play in {game.name}")
        if game.status(now) == "ended":
            raise GameClosed(f"{game.name} has ended")
        if self.store.count_players(cursor, game.id) >= store_module.MAX_PLAYERS:
            raise InvalidInput(f"{game.name} is full ({store_module.MAX_PLAYERS} players)")
        taken = self.portfolios.named(cursor, account_id, game.name)
        if taken is not None:  # the game's portfolio takes the game's name, which players are told to trade in
            raise InvalidInput(f"you already have a portfolio named {taken!r}, and your portfolio in {game.name}"
                               f" takes the game's name: rename yours first (papertrader portfolio rename"
                               f" {shlex.quote(taken)} NEW_NAME, or on the website's Portfolios page), then join")
        portfolio = self.portfolios.create(cursor, account_id, game.name, "margin" if game.rules.margin else "cash",
                                           game.rules.starting_cash, recorded, game_id=game.id, began=now)
        self.store.add_player(cursor, game.id, account_id, portfolio.id, recorded)
        return game, self.store.membership(cursor, game, account_id)

    @defer.inlineCallbacks
    def join(self, account_id, username, name, code=None):
        now = self.market_clock.now()
        recorded = self._recorded()

        def unit_of_work(cursor):
            game, membership = self._join(cursor, account_id, name, code, now, recorded)
            return self._view(cursor, game, account_id, self._named(cursor, membership), now)

        view = yield self.db.run(unit_of_work)
        self.log.info("{username} joined game {name}", username=username, name=view["name"])
        self._changed(view["name"], [username])
        return view

    @defer.inlineCallbacks
    def enrol(self, name, usernames, dry_run=False):
        """The operator's ``game create-class``: join these users to the game (no invite code needed).
        Returns {joined, unknown, already, conflicts}: usernames that joined, that have no account, that already
        play (or were removed), that have a portfolio of the game's name (they do not join: the game's
        portfolio takes its name).  With ``dry_run`` nothing is written: only the check of the usernames."""
        now = self.market_clock.now()
        recorded = self._recorded()

        def unit_of_work(cursor):
            game = self.store.by_name(cursor, name)
            if game is None and not dry_run:
                raise UnknownGame(f"no game named {name[:40]!r}")
            joined, unknown, already, conflicts = [], [], [], []
            for wanted in usernames:
                cursor.execute(self.db.sql("SELECT id, username FROM accounts WHERE username_key = ? AND"
                                           " deleted IS NULL"), (wanted[:64].lower(),))
                row = cursor.fetchone()
                if row is None:
                    unknown.append(wanted)
                elif game is not None and self.store.membership(cursor, game, row[0]) is not None:
                    already.append(row[1])
                elif self.portfolios.named(cursor, row[0], game.name if game is not None else name) is not None:
                    conflicts.append(row[1])
                elif not dry_run:
                    try:
                        self._join(cursor, row[0], game.name, None, now, recorded, invited=True)
                    except PaperTraderError as e:  # (none of this chunk joins: the transaction is undone)
                        raise type(e)(f"{row[1]}: {e.message}")
                    joined.append(row[1])
                else:
                    joined.append(row[1])
            return {"joined": joined, "unknown": unknown, "already": already, "conflicts": conflicts}

        answer = yield self.db.run(unit_of_work)
        if not dry_run and answer["joined"]:
            self.log.info("game {name}: {n} players enrolled by the operator", name=name, n=len(answer["joined"]))
            self._changed(name, answer["joined"])
        return answer

    @authenticated
    @defer.inlineCallbacks
    def game_invite(self, session, stamp, name):
        now = self.market_clock.now()
        code = store_module.new_invite_code()

        def unit_of_work(cursor):
            game, membership = self._find(cursor, session.account_id, name)
            self._creator(game, session, "invite players")
            if not game.private:
                raise InvalidInput(f"{game.name} is public: anyone may join it with `game join`, no code needed")
            if game.status(now) == "ended":
                raise GameClosed(f"{game.name} has ended")
            self.store.set_invite(cursor, game.id, store_module.invite_hash(code))
            return self._view(cursor, game, session.account_id, membership, now, code)

        view = yield self.db.run(unit_of_work)
        self.log.info("game {name}: a new invite code", name=view["name"])
        return view

    @authenticated
    @defer.inlineCallbacks
    def remove_game_player(self, session, stamp, name, username):
        now = self.market_clock.now()
        recorded = self._recorded()

        def unit_of_work(cursor):
            game, membership = self._find(cursor, session.account_id, name)
            self._creator(game, session, "remove players")
            if game.status(now) == "ended":
                raise GameClosed(f"{game.name} has ended: its final ranking stays as it is (players are removed"
                                 " before the end)")
            cursor.execute(self.db.sql("SELECT id, username FROM accounts WHERE username_key = ?"),
                           ((username or "")[:64].lower(),))
            row = cursor.fetchone()
            player = self.store.membership(cursor, game, row[0]) if row else None
            if player is None or player.removed is not None:
                raise InvalidInput(f"{str(username)[:24]!r} does not play in {game.name}")
            events = self._cancel_open(cursor, [player.portfolio_id], now, recorded,
                                       f"removed from the game {game.name}")
            self.store.remove_player(cursor, game.id, row[0], now)  # (market time, as the game's other times)
            return self._view(cursor, game, session.account_id, membership, now), self._views(cursor, events)

        view, events = yield self.db.run(unit_of_work)
        self.log.info("game {name}: {player} removed by its creator", name=view["name"], player=username)
        self._publish(events)
        self._changed(view["name"])
        return view

    @authenticated
    @defer.inlineCallbacks
    def end_game(self, session, stamp, name):
        now = self.market_clock.now()

        def unit_of_work(cursor):
            game, membership = self._find(cursor, session.account_id, name)
            self._creator(game, session, "end it")
            if game.status(now) == "ended":
                raise GameClosed(f"{game.name} has already ended")
            self.store.end(cursor, game.id, now)
            game = self.store.get(cursor, game.id)
            return self._view(cursor, game, session.account_id, membership, now)

        view = yield self.db.run(unit_of_work)
        self.log.info("game {name} ended early by its creator", name=view["name"])
        self._changed(view["name"])
        return view

    @authenticated
    def games(self, session, stamp):
        now = self.market_clock.now()

        def unit_of_work(cursor):
            out = []
            for game in self.store.visible(cursor, session.account_id):
                membership = self._named(cursor, self.store.membership(cursor, game, session.account_id))
                out.append(self._view(cursor, game, session.account_id, membership, now))
            return {"games": out}

        return self.db.run(unit_of_work)

    @authenticated
    def show_game(self, session, stamp, name):
        now = self.market_clock.now()

        def unit_of_work(cursor):
            game, membership = self._find(cursor, session.account_id, name)
            view = self._view(cursor, game, session.account_id, membership, now)
            if game.creator_id == session.account_id:  # its creator sees whom they removed (not the players)
                view["removed"] = [dict(username=u, removed=when) for u, when in
                                   self.store.removed_players(cursor, game.id)]
            return view

        return self.db.run(unit_of_work)

    @authenticated
    def game_leaderboard(self, session, stamp, name, by=None, offset=None, limit=None):
        by = by or "return"
        if by not in ("return", "sharpe"):
            raise InvalidInput("rank by return or sharpe")
        offset = offset or 0
        limit = 100 if limit is None else limit
        if not 0 <= offset < 10**9 or not 1 <= limit <= MAX_BOARD_PAGE:
            raise InvalidInput(f"offset must be 0 or more, limit from 1 to {MAX_BOARD_PAGE}")
        now = self.market_clock.now()

        def unit_of_work(cursor):
            game, _ = self._find(cursor, session.account_id, name)
            cash = game.rules.starting_cash
            rows = self.store.board(cursor, game.id, by, limit, offset)
            standings = [dict(rank=rank, username=username, equity=equity,
                              return_percent=((equity / cash - 1) * 100).quantize(Decimal("0.0001")),
                              sharpe=sharpe) for rank, username, equity, sharpe in rows]
            unranked = self.store.unranked(cursor, game.id, MAX_BOARD_PAGE)
            # (not started yet: the next update ranks nobody; the first one after its start does)
            starts = game.rules.start if game.status(now) == "upcoming" else None
            return dict(name=game.name, by=by, starting_cash=cash, updated=game.board_updated, unranked=unranked,
                        final=game.over(now), starts=starts,
                        players=self.store.count_players(cursor, game.id),
                        standings=[{k: v for k, v in s.items() if v is not None} for s in standings])

        return self.db.run(unit_of_work)

    def _may_see_player(self, game, membership, session, asked):
        """Refuse (PortfoliosHidden) an asker who may not see the game's players' portfolios (or their equity
        curves, from which a portfolio can be worked out): decided from the asker alone, before the player is
        looked up, so a refusal tells nothing of who plays.  Returns whether the asker is the creator."""
        is_creator = game.creator_id == session.account_id
        playing = membership is not None and membership.removed is None
        if not may_see_portfolios(is_creator, playing, game.show_portfolios, asked == session.username.lower()):
            if game.show_portfolios:
                raise PortfoliosHidden(f"only the creator of {game.name} ({game.creator}) and its players may"
                                       " see its players' portfolios")
            if playing:
                raise PortfoliosHidden(f"only the creator of {game.name} ({game.creator}) may see its players'"
                                       " portfolios: the game does not show them to its players")
            raise PortfoliosHidden(f"only the creator of {game.name} ({game.creator}) may see its players'"
                                   " portfolios")
        return is_creator

    @authenticated
    def game_curve(self, session, stamp, name, username):
        """A player's daily equity in a game: for those who may see the player's portfolio (with a few public
        prices the curve tells what the player holds)."""
        asked = (username if isinstance(username, str) else "").strip()[:64].lower()

        def unit_of_work(cursor):
            game, membership = self._find(cursor, session.account_id, name)
            self._may_see_player(game, membership, session, asked)
            cursor.execute(self.db.sql("SELECT id, username FROM accounts WHERE username_key = ?"), (asked,))
            row = cursor.fetchone()
            player = self.store.membership(cursor, game, row[0]) if row else None
            if player is None or player.removed is not None:
                raise InvalidInput(f"{str(username)[:24]!r} does not play in {game.name}")
            return {"username": row[1], "points": [{"day": d.isoformat(), "equity": e}
                                                    for d, e in self.store.curve(cursor, player.portfolio_id)]}

        return self.db.run(unit_of_work)

    @authenticated
    @defer.inlineCallbacks
    def game_portfolio(self, session, stamp, name, username, limit=None, before=None):
        """A player's portfolio in a game (commands.GamePortfolio): who may see it is decided first, from the
        asker alone (so a refusal tells nothing of who plays), then the player is looked up; what is shown is
        what the trading commands show the portfolio's owner, less the ids and names that are the owner's."""
        limit = HISTORY_PAGE if limit is None else limit
        validation.limit(limit, MAX_HISTORY_PAGE)
        if before is not None:
            validation.order_id(before)
        asked = (username if isinstance(username, str) else "").strip()[:64].lower()

        def unit_of_work(cursor):
            game, membership = self._find(cursor, session.account_id, name)
            is_creator = self._may_see_player(game, membership, session, asked)
            own = asked == session.username.lower()
            cursor.execute(self.db.sql("SELECT id, username FROM accounts WHERE username_key = ?"), (asked,))
            row = cursor.fetchone()
            player = self.store.membership(cursor, game, row[0]) if row else None
            if player is None or not shows_player(is_creator, player.removed is not None, own):
                raise InvalidInput(f"{str(username)[:24]!r} does not play in {game.name}")
            final = self.store.standing(cursor, game.id, row[0]) if game.over(now) else None
            if final is not None:
                final = dict(final_rank=final[0], final_equity=final[1], final_as_of=game.board_updated)
            return game.name, row[1], player.removed, self.portfolios.get(cursor, player.portfolio_id), final

        now = self.market_clock.now()
        game_name, player_name, removed, portfolio, final = yield self.db.run(unit_of_work)
        # The trading commands read it as its owner's commands would: a session trading that portfolio.
        theirs = replace(session, portfolio_id=portfolio.id, portfolio=portfolio)
        held = yield self.trading.portfolio(theirs, stamp)
        orders = yield self.trading.orders(theirs, stamp, MAX_SHOWN_ORDERS, status="open")
        history = yield self.trading.history(theirs, stamp, limit, before=before)
        answer = {k: v for k, v in held.items() if k not in NOT_SHOWN}
        answer.update(game=game_name, username=player_name, transactions=history["transactions"],
                      orders=[{k: v for k, v in o.items() if k not in NOT_SHOWN_OF_ORDERS} for o in orders["orders"]])
        if history.get("next_before") is not None:
            answer["next_before"] = history["next_before"]
        if removed is not None:
            answer["removed"] = removed
        if final is not None:  # the game is over: its final ranking's figures (those above are at today's prices)
            answer.update({k: v for k, v in final.items() if v is not None})
        return answer

    # --- orders, the step, the leaderboard ----------------------------------------------------

    def _cancel_open(self, cursor, portfolio_ids, now, recorded, why):
        """Cancel every open order of these portfolios; returns the events (not published yet)."""
        events, changed = [], []
        self.orders.lock_accounts(cursor, portfolio_ids)
        for portfolio_id in portfolio_ids:
            for order, event in amend.cancel_all(self.orders.open_orders(cursor, portfolio_id), now, reason=why):
                changed.append(order)
                events.append(event)
        if changed:
            self.orders.save(cursor, changed, {}, events, recorded)
        return events

    def _views(self, cursor, events):
        """[(username, event view)] of these events, each naming its portfolio (as trading's events do)."""
        from papertrader.app.trading import _owned, _usernames

        return _owned(_usernames(self.db, cursor, {e.order.account_id for e in events}), events) if events else []

    def _publish(self, views):
        if views:
            self.publish(views)

    def _changed(self, name, joined=()):
        """Tell whoever shows standings that the game ``name``'s changed (None: the games an update ranked);
        ``joined``: the usernames who joined it (each now has the game's portfolio)."""
        for notify in list(self.on_changed):
            try:
                notify(name, list(joined))
            except Exception:
                self.log.failure("telling that game standings changed failed")

    @defer.inlineCallbacks
    def update(self, market_step, quotes=None):
        """The market update's listener, after the trading step: every started, unfinished game's leaderboard
        is computed and stored with each player's point of the day; a game past its close is finished (its
        open orders canceled; its final ranking is the leaderboard of the last update before it closed).  When
        this update was a replay's last (the market has ended: no update will ever pass a game's close), every
        game still running is ranked on it and finished."""
        now = market_step.time
        today = market_step.today or now.date()
        prices = self.board.prices()
        recorded = self._recorded()
        market_over = getattr(self.market_clock, "state", None) == "ended"

        def unit_of_work(cursor):
            published, counted, finished = [], 0, []
            games = [(game, self.store.players(cursor, game.id)) for game in self.store.to_update(cursor, now)]
            # The portfolios of every game that ends now, locked at once in ascending order (as everyone locks).
            ending = [p[2] for game, players in games if market_over or now > game.rules.closes(game.ended_at)
                      for p in players]
            self.orders.lock_accounts(cursor, ending)
            for game, players in games:
                closes = game.rules.closes(game.ended_at)
                if now > closes or market_over:
                    events = self._cancel_open(cursor, [p[2] for p in players], min(closes, now), recorded,
                                               f"the game {game.name} ended" if now > closes else
                                               f"the game {game.name} ended with the market's last day")
                    published += self._views(cursor, events)
                    if players and (now <= closes or game.board_updated is None):  # this update counts
                        self._board(cursor, game, prices, today, now)
                    self.store.finish(cursor, game.id, recorded)
                    finished.append((game.name, len(players)))
                    continue
                if players:
                    self._board(cursor, game, prices, today, now)
                    counted += len(players)
            return published, counted, finished

        published, counted, finished = yield self.db.run(unit_of_work)
        for name, n in finished:
            self.log.info("game {name} finished with {n} {players}", name=name, n=n,
                          players="player" if n == 1 else "players")
        self.updates += 1
        self._publish(published)
        if counted or finished:
            self._changed(None)
        return counted

    def _board(self, cursor, game, prices, today, now):
        """Rank the game's players at ``prices`` and store the board with each player's point of ``today``."""
        players = self.store.returns(cursor, game)
        books = self.store.books(cursor, game)
        entries, sharpes, states = [], {}, {}
        for account_id, username, portfolio_id, state in players:
            equity = margin.value(books[portfolio_id], prices).equity
            state = state.at(today, equity)
            entries.append(Player(username, equity))
            sharpes[username] = state.sharpe()
            states[username] = (portfolio_id, state)
        by_return = leaderboard(game.rules.starting_cash, entries, sharpes=sharpes)
        sharpe_rank = {s.username: s.rank for s in rank_by(by_return, "sharpe")}
        self.store.save_board(cursor, game.id, [
            (states[s.username][0], s.rank, sharpe_rank[s.username], s.sharpe, states[s.username][1])
            for s in by_return], now)


class _Named:
    """A membership with the name of the player's portfolio in the game."""

    def __init__(self, membership, portfolio_name):
        self.membership = membership
        self.portfolio_id = membership.portfolio_id
        self.removed = membership.removed
        self.portfolio_name = portfolio_name

