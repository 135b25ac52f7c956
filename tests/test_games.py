"""Games through the application layer and the stores, on SQLite and PostgreSQL: a game's rules refuse the
orders they forbid, trading opens and closes with its dates, the leaderboard of a scripted game (bars and
dates driven by task.Clock) matches a hand computation, and private games stay private."""

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from papertrader.app import Stamp
from papertrader.app.games import GameCommands
from papertrader.app.trading import TradingCommands, rules_from
from papertrader.config import margin_rules
from papertrader.errors import (
    GameClosed,
    GameExists,
    GameRuleViolation,
    InsufficientFunds,
    InvalidInput,
    NotGameCreator,
    PaperTraderError,
    PortfoliosHidden,
    UnknownGame,
)
from papertrader.market import calendar
from papertrader.market.board import Quote, QuoteBoard
from papertrader.market.clock import MarketClock
from papertrader.master.accounts import Accounts
from papertrader.master.games import GameStore
from papertrader.master.order_store import OrderStore
from papertrader.master.portfolios import PortfolioStore
from papertrader.times import utc
from papertrader.trading import games as games_core
from papertrader.trading.market import Bar, MarketStep

D = Decimal
PASSWORD = "correct horse battery"
DAY = timedelta(days=1)


@pytest.fixture
def world(db, settings, clock, log):
    """The trading and game commands of a master, on an always-open market driven by ``clock``."""
    settings = replace(settings, fill_model="ideal", margin_accounts=True)
    board = QuoteBoard(settings.assets)
    market_clock = MarketClock(calendar.load("always_open"), clock)
    published = []
    trading = TradingCommands(db, OrderStore(db, margin_rules(settings)), board, market_clock, rules_from(settings),
                              clock, log, publish=published.extend)
    store = GameStore(db)
    trading.games = store
    games = GameCommands(db, store, PortfolioStore(db), trading.store, board, market_clock, clock, log,
                         publish=published.extend, trading=trading)
    return World(db, settings, clock, log, board, trading, games, published)


class World:
    def __init__(self, db, settings, clock, log, board, trading, games, published):
        self.db, self.settings, self.clock, self.log = db, settings, clock, log
        self.board, self.trading, self.games, self.published = board, trading, games, published
        self.accounts = Accounts(db, settings, clock, log)
        self.ids = 0

    def now(self):
        return utc(self.clock.seconds())

    def stamp(self):
        return Stamp(self.now(), "192.0.2.7", "worker1")

    async def user(self, name):
        await self.accounts.register(name, f"{name}@example.com", PASSWORD)
        token, _, _ = await self.accounts.login(name, PASSWORD, False, "worker1", "192.0.2.7")
        return await self.accounts.authenticate(token)

    def quote(self, **prices):
        self.board.update([Quote(s, D(p), self.now()) for s, p in prices.items()])

    def order(self, session, side, symbol, quantity=None, portfolio=None, **more):
        self.ids += 1
        return self.trading.place_order(session, self.stamp(), f"o{self.ids}", side, symbol, quantity,
                                        portfolio=portfolio, **more)

    def create(self, session, name="Spring Cup", start=None, end=None, cash="10000", **rules):
        start = self.now() if start is None else start
        end = start + 3 * DAY if end is None else end
        return self.games.create_game(session, self.stamp(), name, start, end, cash, **rules)

    async def update(self, advance=DAY, **prices):
        """One market update: the clock moves on, a bar (open = high = low = close) of each price, the trading
        step, then the games' update — as the master's listeners run."""
        start = self.now()
        self.clock.advance(advance.total_seconds())
        end = self.now()
        bars = {s: Bar(s, min(start, end - timedelta(seconds=5)), end, D(p), D(p), D(p), D(p), 1_000_000)
                for s, p in prices.items()}
        self.quote(**prices)
        step = MarketStep(end, bars)
        await self.trading.market_step(step)
        await self.games.update(step)

    async def standings(self, session, name="Spring Cup", by="return"):
        answer = await self.games.game_leaderboard(session, self.stamp(), name, by=by)
        return answer


async def test_a_game_portfolios_buying_power_counts_the_games_commission_as_its_orders_do(world):
    """The buying power a game's portfolio shows is what its next order is checked against: its open orders
    reserve the game's commission, not the deployment's (none here)."""
    teacher, alice = await world.user("teacher"), await world.user("alice")
    world.quote(AAPL="100")
    await world.create(teacher, commission="per_order:5.00")
    await world.games.join_game(alice, world.stamp(), "spring cup")
    await world.order(alice, "buy", "AAPL", "10", portfolio="Spring Cup", type="limit", limit_price="90",
                      time_in_force="gtc")
    shown = (await world.trading.portfolio(alice, world.stamp(), portfolio="Spring Cup"))["buying_power"]
    assert shown == D("10000.00") - D("900.00") - D("5.00")
    # an order for all of it is accepted (commission included); a cent more is refused
    await world.order(alice, "buy", "AAPL", "1", portfolio="Spring Cup", type="limit",
                      limit_price=str(shown - D("5.00")), time_in_force="gtc")
    with pytest.raises(InsufficientFunds):
        await world.order(alice, "buy", "AAPL", "1", portfolio="Spring Cup", type="limit", limit_price="0.01")
    assert (await world.trading.portfolio(alice, world.stamp(), portfolio="Spring Cup"))["buying_power"] == 0


async def test_a_player_removed_on_a_replay_is_removed_at_the_markets_time(world):
    """A game's times are the market's ('ended 2016-03-15 09:30'); a removal was dated by the wall clock (removed:
    dave (2026-12-02 14:03) beside a game of March 2016)."""
    from papertrader.market.replay import ReplayClock

    world.games.market_clock = ReplayClock(calendar.load("always_open"), date(2016, 3, 1), date(2016, 3, 31))
    teacher, alice = await world.user("teacher"), await world.user("alice")
    await world.create(teacher, start=datetime(2016, 3, 14, tzinfo=timezone.utc),
                       end=datetime(2016, 3, 25, tzinfo=timezone.utc))
    await world.games.join_game(alice, world.stamp(), "Spring Cup")
    await world.games.remove_game_player(teacher, world.stamp(), "Spring Cup", "alice")
    shown = await world.games.show_game(teacher, world.stamp(), "Spring Cup")
    assert shown["removed"] == [dict(username="alice", removed=world.games.market_clock.now())]
    assert shown["removed"][0]["removed"].year == 2016


async def test_a_game_that_would_start_after_the_replays_last_day_is_refused(world):
    """On a replay the market's time never passes its last day: a game starting later would never open."""
    from papertrader.market.replay import ReplayClock

    world.games.market_clock = ReplayClock(calendar.load("always_open"), date(2016, 3, 1), date(2016, 3, 31))
    teacher = await world.user("teacher")
    with pytest.raises(InvalidInput) as refused:
        await world.create(teacher, start=datetime(2026, 10, 1, tzinfo=timezone.utc))
    assert "after the replay's last day (2016-03-31)" in refused.value.message
    # Nor may one end after it: it would never finish, nor have a final ranking.
    with pytest.raises(InvalidInput) as refused:
        await world.create(teacher, start=datetime(2016, 3, 14, tzinfo=timezone.utc),
                           end=datetime(2016, 4, 2, tzinfo=timezone.utc))
    assert "end after the replay's last day (2016-03-31)" in refused.value.message
    assert "end it on 2016-03-31 or before" in refused.value.message
    game = await world.create(teacher, start=datetime(2016, 3, 31, tzinfo=timezone.utc),
                              end=datetime(2016, 4, 1, tzinfo=timezone.utc))  # its last day: plays
    assert game["status"] == "upcoming"
    world.games.market_clock.loop = True  # a replay that starts over never passes its last day either
    with pytest.raises(InvalidInput, match="end after the replay's last day"):
        await world.create(teacher, name="Loop Cup", start=datetime(2016, 3, 14, tzinfo=timezone.utc),
                           end=datetime(2016, 4, 2, tzinfo=timezone.utc))
    # A game over before the market's time now: that time as the market's traders say it.
    world.games.market_clock = ReplayClock(calendar.load("XNYS"), date(2016, 3, 1), date(2016, 3, 31))
    with pytest.raises(InvalidInput) as refused:
        await world.create(teacher, name="Past Cup", start=datetime(2016, 2, 1, tzinfo=timezone.utc),
                           end=datetime(2016, 3, 1, tzinfo=timezone.utc))
    assert refused.value.message == "the game would end before the market's time now (2016-03-01 09:30 EST)"
    # Nor a game in which the market never opens: it was taken, never traded, and ranked at the next session.
    with pytest.raises(InvalidInput) as refused:
        await world.create(teacher, name="Weekend Cup", start=datetime(2016, 3, 5, tzinfo=timezone.utc),
                           end=datetime(2016, 3, 7, tzinfo=timezone.utc))
    assert refused.value.message == ("the game would have no trading session: the market (XNYS) does not open from"
                                     " 2016-03-05 to 2016-03-06 (a weekend or holidays); choose days it trades")
    game = await world.create(teacher, name="Monday Cup", start=datetime(2016, 3, 5, tzinfo=timezone.utc),
                              end=datetime(2016, 3, 8, tzinfo=timezone.utc))  # (through Monday: it trades)
    assert game["status"] == "upcoming"
    # Days given as days are the market's (from midnight in New York); a time given as a time stays that time,
    # even one at midnight UTC (19:00 EST the evening before: it was moved to the next midnight in New York).
    days = await world.create(teacher, name="Day Cup", start=datetime(2016, 3, 8, tzinfo=timezone.utc),
                              end=datetime(2016, 3, 10, tzinfo=timezone.utc), days=["start", "end"])
    assert (days["start"], days["end"]) == (datetime(2016, 3, 8, 5, tzinfo=timezone.utc),
                                            datetime(2016, 3, 10, 5, tzinfo=timezone.utc))
    timed = await world.create(teacher, name="Time Cup", start=datetime(2016, 3, 8, tzinfo=timezone.utc),
                               end=datetime(2016, 3, 10, tzinfo=timezone.utc), days=[])
    assert (timed["start"], timed["end"]) == (datetime(2016, 3, 8, tzinfo=timezone.utc),
                                              datetime(2016, 3, 10, tzinfo=timezone.utc))
    for wrong, said in ((["middle"], "days names 'start' or 'end'"), (["start"], "sent as its midnight UTC")):
        with pytest.raises(InvalidInput, match=said):
            await world.create(teacher, name="Odd Cup", start=datetime(2016, 3, 8, 14, 30, tzinfo=timezone.utc),
                               end=datetime(2016, 3, 10, tzinfo=timezone.utc), days=wrong)


async def test_a_games_starting_cash_is_at_most_a_portfolios(world):
    world.games.max_cash = D("10000000.00")
    teacher = await world.user("teacher")
    # One range in every refusal, the server's: too little and too much say the same.
    for wrong in ("100000000", "0"):
        with pytest.raises(InvalidInput, match="from 1.00 to 10000000.00 on this server"):
            await world.create(teacher, cash=wrong)
    assert (await world.create(teacher, cash="10000000"))["starting_cash"] == D("10000000.00")


async def test_a_game_still_running_when_a_replay_plays_its_last_day_finishes_with_that_day(world):
    """A replay ends at its last session's close: no update ever passes the close of a game ending that day (or
    later), which would otherwise never finish nor cancel its open orders."""
    teacher, alice = await world.user("teacher"), await world.user("alice")
    world.quote(AAPL="100")
    await world.create(teacher, name="Long Cup", end=world.now() + 30 * DAY)
    await world.games.join_game(alice, world.stamp(), "Long Cup")
    await world.order(alice, "buy", "AAPL", "10", portfolio="Long Cup")
    waiting = await world.order(alice, "buy", "AAPL", "1", portfolio="Long Cup", type="limit", limit_price="1.00",
                                time_in_force="gtc")
    await world.update(advance=timedelta(minutes=1), AAPL="100")
    assert not (await world.standings(teacher, name="Long Cup"))["final"]
    world.games.market_clock.state = "ended"  # this update plays the replay's last day
    await world.update(advance=timedelta(minutes=1), AAPL="110")
    final = await world.standings(teacher, name="Long Cup")
    assert final["final"] and [(s["username"], s["equity"]) for s in final["standings"]] == [
        ("alice", D("10100.00"))]  # the last day counts
    canceled = await world.trading.get_order(alice, world.stamp(), waiting["id"], portfolio="Long Cup")
    assert canceled["status"] == "canceled" and "market's last day" in canceled["reason"]


async def test_a_scripted_game_ranks_as_computed_by_hand(world):
    """Three players, three days of closes, a per-order commission; then the end: the final ranking."""
    teacher, alice, bob, carol = [await world.user(n) for n in ("teacher", "alice", "bob", "carol")]
    world.quote(AAPL="100", MSFT="50")
    game = await world.create(teacher, commission="per_order:1.00", fill_model="ideal")
    assert game["status"] == "open" and game["players"] == 0 and game["is_creator"]
    for player in (alice, bob, carol):
        joined = await world.games.join_game(player, world.stamp(), "spring cup")
        assert joined["portfolio"] == "Spring Cup" and joined["playing"]
    await world.order(alice, "buy", "AAPL", "50", portfolio="Spring Cup")
    await world.order(bob, "buy", "MSFT", "100", portfolio="Spring Cup")
    # An order in the default portfolio is not in the game and changes nothing of it.
    await world.order(carol, "buy", "AAPL", "10")

    # The game's portfolio says its commission (the website's preview counts it); the default one has none.
    assert (await world.trading.portfolio(alice, world.stamp(), portfolio="Spring Cup"))[
        "commission_model"] == "per_order:1.00"
    assert "commission_model" not in await world.trading.portfolio(carol, world.stamp())
    # Day 1: both fill at the close (ideal), $1 commission each: cash 10000 - 5000 - 1 = 4999.
    await world.update(advance=timedelta(minutes=1), AAPL="100", MSFT="50")
    board = await world.standings(alice)
    assert [(s["rank"], s["username"], s["equity"]) for s in board["standings"]] == [
        (1, "carol", D("10000.00")), (2, "alice", D("9999.00")), (2, "bob", D("9999.00"))]
    assert [s["return_percent"] for s in board["standings"]] == [D("0.0000"), D("-0.0100"), D("-0.0100")]
    assert not board["final"] and board["players"] == 3
    # After one day nobody has a Sharpe ratio: all tie by it, listed by return (not by name).
    by_sharpe = await world.standings(alice, by="sharpe")
    assert [(s["rank"], s["username"]) for s in by_sharpe["standings"]] == [(1, "carol"), (1, "alice"), (1, "bob")]

    await world.update(AAPL="110", MSFT="45")  # day 2: alice 4999 + 5500, bob 4999 + 4500
    await world.update(AAPL="105", MSFT="55")  # day 3: alice 4999 + 5250, bob 4999 + 5500
    board = await world.standings(carol)
    assert [(s["rank"], s["username"], s["equity"], s["return_percent"]) for s in board["standings"]] == [
        (1, "bob", D("10499.00"), D("4.9900")), (2, "alice", D("10249.00"), D("2.4900")),
        (3, "carol", D("10000.00"), D("0.0000"))]

    # Three daily returns make no Sharpe ratio (it takes twenty: below): none, and by it all tie, listed by return.
    assert {s["username"]: s.get("sharpe") for s in board["standings"]} == {"alice": None, "bob": None, "carol": None}
    by_sharpe = await world.standings(bob, by="sharpe")
    assert [(s["rank"], s["username"]) for s in by_sharpe["standings"]] == [(1, "bob"), (1, "alice"), (1, "carol")]

    curve = await world.games.game_curve(alice, world.stamp(), "Spring Cup", "alice")
    assert [p["equity"] for p in curve["points"]] == [D("9999.00"), D("10499.00"), D("10249.00")]

    # An order left open at the end is canceled; the final ranking is the last update's before the end.
    await world.order(alice, "buy", "AAPL", "1", portfolio="Spring Cup", type="limit", limit_price="1.00")
    await world.update(advance=DAY, AAPL="500", MSFT="1")  # past the end: no fill, no new prices counted
    final = await world.standings(alice)
    assert final["final"]
    assert [(s["rank"], s["username"], s["equity"]) for s in final["standings"]] == [
        (1, "bob", D("10499.00")), (2, "alice", D("10249.00")), (3, "carol", D("10000.00"))]
    orders = await world.trading.orders(alice, world.stamp(), 10, status="all", portfolio="Spring Cup")
    ended = [o for o in orders["orders"] if o.get("limit_price") == D("1.00")]
    assert ended[0]["status"] == "canceled" and "ended" in ended[0]["reason"]
    # The workers hear of it like any order event: whose it is, and in which portfolio.
    pushed = [(user, view) for user, view in world.published if view["event"] == "canceled"]
    assert [(user, view["portfolio"], view["order"]["id"]) for user, view in pushed] == [
        ("alice", "Spring Cup", ended[0]["id"])]
    shown = await world.games.show_game(carol, world.stamp(), "Spring Cup")
    assert shown["status"] == "ended"


async def test_a_sharpe_ratio_is_ranked_from_the_twentieth_daily_return_on(world):
    """A Sharpe ratio of two daily returns was stored and ranked as if it meant something: none is given before
    twenty (papertrader/trading/games.py MIN_SHARPE_RETURNS); from then on it is the definition's, of the daily
    closes the player's curve shows."""
    teacher, alice, bob = [await world.user(n) for n in ("teacher", "alice", "bob")]
    world.quote(AAPL="100")
    await world.create(teacher, end=world.now() + 40 * DAY, fill_model="ideal")
    for player in (alice, bob):
        await world.games.join_game(player, world.stamp(), "Spring Cup")
    await world.order(alice, "buy", "AAPL", "50", portfolio="Spring Cup")
    prices = ["100", "103", "101", "104", "102", "106", "105", "108", "104", "109"] * 2
    for day, price in enumerate(prices, 1):
        await world.update(AAPL=price)
        board = await world.standings(bob)
        shown = {s["username"]: s.get("sharpe") for s in board["standings"]}
        if day < 20:
            assert shown == {"alice": None, "bob": None}, day
    curve = await world.games.game_curve(alice, world.stamp(), "Spring Cup", "alice")
    closes = [p["equity"] for p in curve["points"]]
    assert len(closes) == 20
    assert shown == {"alice": games_core.sharpe(D("10000"), closes), "bob": None}  # (bob: no ups and downs)
    assert shown["alice"] is not None
    by_sharpe = await world.standings(bob, by="sharpe")
    assert [(s["rank"], s["username"]) for s in by_sharpe["standings"]] == [(1, "alice"), (2, "bob")]


async def test_a_games_rules_refuse_the_orders_they_forbid(world):
    teacher, alice = await world.user("teacher"), await world.user("alice")
    world.quote(AAPL="100", MSFT="50", TSLA="200")
    await world.create(teacher, assets=["AAPL", "MSFT"], max_position="20")
    await world.games.join_game(alice, world.stamp(), "Spring Cup")

    async def refused(rule, *args, **more):
        with pytest.raises(GameRuleViolation) as caught:
            await world.order(alice, *args, portfolio="Spring Cup", **more)
        assert caught.value.rule == rule
        return caught.value.message

    assert "TSLA is not traded in this game" in await refused("assets", "buy", "TSLA", "1")
    assert "short selling (selling shares you do not have) is not allowed" in await refused("short", "sell", "AAPL",
                                                                                              "1")
    assert "at most 20.00% of the portfolio" in await refused("max_position", "buy", "AAPL", "21")
    order = await world.order(alice, "buy", "AAPL", "20", portfolio="Spring Cup")
    assert order["status"] == "new"
    # The open order counts toward the position's limit.
    await refused("max_position", "buy", "AAPL", "1")
    # Replacing it by a larger one is refused by the same rule; the order stays as it was.
    with pytest.raises(GameRuleViolation):
        await world.trading.replace_order(alice, world.stamp(), order_id=order["id"], client_order_id="bigger",
                                          quantity="30", portfolio="Spring Cup")
    # ... and the game's rule is what it says first, as for a new order, also for one beyond the buying power.
    with pytest.raises(GameRuleViolation) as caught:
        await world.trading.replace_order(alice, world.stamp(), order_id=order["id"], client_order_id="huge",
                                          quantity="2000", portfolio="Spring Cup")
    assert caught.value.rule == "max_position"
    assert "at most 20.00% of the portfolio" in await refused("max_position", "buy", "AAPL", "2000")
    # The same orders outside the game (her default portfolio) are the deployment's business only.
    assert (await world.order(alice, "buy", "TSLA", "1"))["status"] == "new"
    # A game's portfolio is never reset or closed.
    with pytest.raises(InvalidInput, match="game"):
        await _reset(world, alice)


async def _reset(world, session):
    from papertrader.app.portfolios import PortfolioCommands

    commands = PortfolioCommands(world.db, world.trading.store, PortfolioStore(world.db), world.settings,
                                 world.clock, world.log, world.trading)
    await commands.reset_portfolio(session, world.stamp(), "Spring Cup")


async def test_margin_and_short_selling_as_the_game_allows(world):
    teacher, alice = await world.user("teacher"), await world.user("alice")
    world.quote(AAPL="100")
    game = await world.create(teacher, allow_short=True)
    assert game["margin"] and game["allow_short"]
    await world.games.join_game(alice, world.stamp(), "Spring Cup")
    order = await world.order(alice, "sell", "AAPL", "10", portfolio="Spring Cup")
    await world.update(advance=timedelta(minutes=1), AAPL="100")
    filled = await world.trading.get_order(alice, world.stamp(), order_id=order["id"], portfolio="Spring Cup")
    assert filled["status"] == "filled"
    portfolio = await world.trading.portfolio(alice, world.stamp(), portfolio="Spring Cup")
    assert [(p["symbol"], p["quantity"]) for p in portfolio["positions"]] == [("AAPL", D("-10"))]


async def test_trading_opens_and_closes_with_the_games_dates(world):
    teacher, alice = await world.user("teacher"), await world.user("alice")
    world.quote(AAPL="100")
    start = world.now() + DAY
    game = await world.create(teacher, start=start, end=start + DAY)
    assert game["status"] == "upcoming"
    await world.games.join_game(alice, world.stamp(), "Spring Cup")  # joining before the start is fine
    with pytest.raises(GameRuleViolation, match="starts at") as caught:
        await world.order(alice, "buy", "AAPL", "1", portfolio="Spring Cup")
    assert caught.value.code == "game_rule" and caught.value.rule == "dates"
    await world.update(advance=DAY, AAPL="100")  # now it is open
    order = await world.order(alice, "buy", "AAPL", "1", portfolio="Spring Cup", type="limit", limit_price="90.00")
    await world.update(advance=timedelta(hours=1), AAPL="100")
    # The creator ends it early: orders are refused at once, the open one does not fill at the next bar
    # (which would fill it) and is canceled.
    ended = await world.games.end_game(teacher, world.stamp(), "Spring Cup")
    assert ended["status"] == "ended" and ended["ended_at"] == world.now()
    with pytest.raises(GameRuleViolation, match="ended at"):
        await world.order(alice, "buy", "AAPL", "1", portfolio="Spring Cup")
    await world.update(advance=timedelta(hours=1), AAPL="80")
    after = await world.trading.get_order(alice, world.stamp(), order_id=order["id"], portfolio="Spring Cup")
    assert after["status"] == "canceled" and after["filled_quantity"] == 0
    with pytest.raises(GameClosed):
        await world.games.end_game(teacher, world.stamp(), "Spring Cup")
    with pytest.raises(GameClosed):
        await world.games.join_game(await world.user("bob"), world.stamp(), "Spring Cup")
    with pytest.raises(InvalidInput, match="end before"):
        await world.create(teacher, name="Too Late", start=world.now() - 2 * DAY, end=world.now() - DAY)


async def test_private_games_are_invisible_to_outsiders(world):
    teacher, alice, eve = await world.user("teacher"), await world.user("alice"), await world.user("eve")
    world.quote(AAPL="100")
    game = await world.create(teacher, name="Class 7B", private=True)
    code = game["invite_code"]
    assert game["private"] and len(code) == 19
    await world.create(teacher, name="Open Cup")
    for attempt in (lambda: world.games.show_game(eve, world.stamp(), "Class 7B"),
                    lambda: world.games.game_leaderboard(eve, world.stamp(), "Class 7B"),
                    lambda: world.games.game_curve(eve, world.stamp(), "Class 7B", "alice"),
                    lambda: world.games.join_game(eve, world.stamp(), "Class 7B"),
                    lambda: world.games.join_game(eve, world.stamp(), "Class 7B", code="AAAA-BBBB-CCCC-DDDD"),
                    lambda: world.games.show_game(eve, world.stamp(), "No Such Game")):
        with pytest.raises(UnknownGame) as caught:
            await attempt()
        assert caught.value.code == "unknown_game"
    listed = await world.games.games(eve, world.stamp())
    assert [g["name"] for g in listed["games"]] == ["Open Cup"]
    with pytest.raises(GameExists):  # names are unique (any case)
        await world.create(eve, name="class 7b")
    # The code works, written any way; a new code replaces it.
    joined = await world.games.join_game(alice, world.stamp(), "Class 7B", code=code.lower().replace("-", " "))
    assert joined["playing"] and "invite_code" not in joined
    with pytest.raises(NotGameCreator):
        await world.games.game_invite(alice, world.stamp(), "Class 7B")
    fresh = (await world.games.game_invite(teacher, world.stamp(), "Class 7B"))["invite_code"]
    assert fresh != code
    with pytest.raises(UnknownGame):
        await world.games.join_game(eve, world.stamp(), "Class 7B", code=code)
    assert (await world.games.join_game(eve, world.stamp(), "Class 7B", code=fresh))["playing"]
    await world.update(advance=timedelta(minutes=1), AAPL="100")
    board = await world.standings(alice, name="Class 7B")
    assert [s["username"] for s in board["standings"]] == ["alice", "eve"]
    assert all(set(s) <= {"rank", "username", "equity", "return_percent", "sharpe"} for s in board["standings"])
    # Removed by the creator: out of the board, the game unseen again, its portfolio takes no orders.
    with pytest.raises(NotGameCreator):
        await world.games.remove_game_player(alice, world.stamp(), "Class 7B", "eve")
    await world.games.remove_game_player(teacher, world.stamp(), "Class 7B", "eve")
    with pytest.raises(UnknownGame) as hidden:  # (and says why: it said there was no such game)
        await world.games.show_game(eve, world.stamp(), "Class 7B")
    assert hidden.value.message == (f"you were removed from Class 7B by its creator (teacher) on"
                                    f" {world.now().date()}: a private game is seen only by its players")
    with pytest.raises(GameClosed, match="removed"):
        await world.order(eve, "buy", "AAPL", "1", portfolio="Class 7B")
    await world.update(advance=timedelta(minutes=1), AAPL="101")
    board = await world.standings(teacher, name="Class 7B")
    assert [s["username"] for s in board["standings"]] == ["alice"] and board["players"] == 1
    # A public game's leaderboard is everyone's.
    assert (await world.standings(eve, name="Open Cup"))["standings"] == []


async def test_removing_a_player_closes_up_the_ranks_at_once_even_if_the_game_then_ends(world):
    teacher = await world.user("teacher")
    players = [await world.user(n) for n in ("alice", "bob", "carol", "dave")]
    world.quote(AAPL="100", MSFT="100")
    await world.create(teacher, name="Early End")
    for player in players:
        await world.games.join_game(player, world.stamp(), "Early End")
    await world.order(players[0], "buy", "AAPL", "10", portfolio="Early End")  # alice: AAPL rises
    await world.order(players[2], "buy", "MSFT", "10", portfolio="Early End")  # carol: MSFT falls
    await world.order(players[3], "buy", "MSFT", "10", portfolio="Early End")  # dave: as carol (a tie)
    await world.update(advance=timedelta(minutes=1), AAPL="100", MSFT="100")
    await world.update(advance=timedelta(minutes=1), AAPL="120", MSFT="90")
    board = await world.standings(teacher, name="Early End")
    assert [(s["rank"], s["username"]) for s in board["standings"]] == [
        (1, "alice"), (2, "bob"), (3, "carol"), (3, "dave")]
    await world.games.remove_game_player(teacher, world.stamp(), "Early End", "alice")
    await world.games.end_game(teacher, world.stamp(), "Early End")
    final = await world.standings(teacher, name="Early End")
    assert final["final"] and final["players"] == 3
    assert [(s["rank"], s["username"]) for s in final["standings"]] == [(1, "bob"), (2, "carol"), (2, "dave")]
    with pytest.raises(GameClosed, match="final ranking stays"):  # the final ranking is final
        await world.games.remove_game_player(teacher, world.stamp(), "Early End", "bob")
    # A player's page after the end: the final ranking's figures beside those at the market's prices now.
    world.quote(AAPL="120", MSFT="200")
    carol = await world.games.game_portfolio(teacher, world.stamp(), "Early End", "carol")
    assert (carol["final_rank"], carol["final_equity"]) == (2, D("9900.00"))
    assert carol["final_as_of"] == final["updated"] and carol["equity"] == D("11000.00")  # 10 MSFT now at 200
    by_sharpe = [s["rank"] for s in (await world.standings(teacher, name="Early End", by="sharpe"))["standings"]]
    assert len(by_sharpe) == 3 and by_sharpe[0] == 1
    assert all(rank in (by_sharpe[i - 1], i + 1) for i, rank in enumerate(by_sharpe) if i)  # no rank missing


async def test_a_player_with_a_portfolio_of_the_games_name_renames_it_first(world):
    """The game's portfolio takes the game's name (the class is told to trade with --portfolio NAME): a
    player who has a portfolio of that name is asked to rename it (the operator's enrolment reports them and
    leaves them out), never given another portfolio they would not know to trade in.  A game's portfolio
    cannot be renamed (a look-alike of it could then be made), and game portfolios do not count against
    max_portfolios."""
    from papertrader.app.portfolios import PortfolioCommands

    teacher, dan, eve = await world.user("teacher"), await world.user("dan"), await world.user("eve")
    world.quote(AAPL="100")
    portfolios = PortfolioCommands(world.db, world.trading.store, PortfolioStore(world.db),
                                   replace(world.settings, max_portfolios=2), world.clock, world.log, world.trading)
    await portfolios.create_portfolio(dan, world.stamp(), "period 4")
    assert (await world.games.enrol("Period 4", ["dan", "eve"], dry_run=True))["conflicts"] == ["dan"]
    game = await world.create(teacher, name="Period 4", private=True)
    assert await world.games.enrol(game["name"], ["dan", "eve"]) == {"joined": ["eve"], "unknown": [],
                                                                     "already": [], "conflicts": ["dan"]}
    await portfolios.rename_portfolio(dan, world.stamp(), "period 4", "my own")
    assert (await world.games.enrol(game["name"], ["dan"]))["joined"] == ["dan"]
    await world.order(dan, "buy", "AAPL", "1", portfolio="Period 4")
    with pytest.raises(InvalidInput, match="your portfolio in a game: it keeps the name"):
        await portfolios.rename_portfolio(dan, world.stamp(), "Period 4", "mine")
    # Two of his own (default and 'my own') is the most here: the game's does not count.
    with pytest.raises(InvalidInput, match="you already have 2 portfolios of your own"):
        await portfolios.create_portfolio(dan, world.stamp(), "third")


async def test_operator_enrols_a_class(world):
    teacher = await world.user("teacher")
    for name in ("ann", "ben", "cyd"):
        await world.user(name)
    world.quote(AAPL="100")
    check = await world.games.enrol("Class 8", ["ann", "nobody", "ben"], dry_run=True)
    assert check == {"joined": ["ann", "ben"], "unknown": ["nobody"], "already": [], "conflicts": []}
    game = await world.games.create(teacher.account_id, "teacher", "Class 8", world.now(), world.now() + DAY,
                                    "5000", private=True)
    done = await world.games.enrol(game["name"], ["ann", "BEN", "cyd"])
    assert done == {"joined": ["ann", "ben", "cyd"], "unknown": [], "already": [], "conflicts": []}
    again = await world.games.enrol(game["name"], ["cyd"])
    assert again["already"] == ["cyd"]
    shown = await world.games.show_game(teacher, world.stamp(), "Class 8")
    assert shown["players"] == 3 and shown["starting_cash"] == D("5000.00")


async def test_bad_game_arguments_are_typed_errors(world):
    teacher = await world.user("teacher")
    world.quote(AAPL="100")
    # The same words for every starting cash refused, whichever check refuses it (0 and -5 alike).
    cash_rule = "starting cash must be an amount of money from 1.00 to"
    for wrong, match in ((dict(name="x"), "name"), (dict(cash="-5"), cash_rule), (dict(cash="0"), cash_rule),
                         (dict(cash="0.001"), cash_rule),
                         (dict(cash="1e30"), cash_rule), (dict(commission="free"), "commission"),
                         (dict(fill_model="magic"), "fill model"), (dict(max_position="150"), "max position"),
                         (dict(assets=["NOPE"]), "unknown symbol"), (dict(assets=["AAPL"] * 501), "at most 500")):
        with pytest.raises(PaperTraderError) as caught:
            await world.create(teacher, **wrong)
        assert caught.value.code in ("invalid_input", "unknown_symbol"), (wrong, caught.value)
        assert match in caught.value.message.lower(), (wrong, caught.value.message)
    with pytest.raises(InvalidInput, match="rank by"):
        await world.create(teacher)
        await world.games.game_leaderboard(teacher, world.stamp(), "Spring Cup", by="luck")


async def test_a_closed_games_margin_portfolios_are_frozen(world):
    """After the end, prices that would call (and liquidate) a margin account leave a game's portfolio be:
    its standing is the game's final one."""
    teacher, alice = await world.user("teacher"), await world.user("alice")
    world.quote(AAPL="100")
    await world.create(teacher, allow_short=True)
    await world.games.join_game(alice, world.stamp(), "Spring Cup")
    await world.order(alice, "sell", "AAPL", "90", portfolio="Spring Cup")
    await world.update(advance=timedelta(minutes=1), AAPL="100")
    await world.games.end_game(teacher, world.stamp(), "Spring Cup")
    for _ in range(4):
        await world.update(AAPL="300")
    rows = await world.db.query("SELECT margin_call_cents FROM portfolios WHERE game_id IS NOT NULL")
    assert rows == [(None,)]
    orders = await world.trading.orders(alice, world.stamp(), 10, status="all", portfolio="Spring Cup")
    assert [o["side"] for o in orders["orders"]] == ["sell"]  # no liquidation order was placed
    final = await world.standings(alice)
    assert final["final"] and final["standings"][0]["equity"] == D("10000.00")


async def test_the_leaderboard_comes_in_pages(world):
    teacher = await world.user("teacher")
    world.quote(AAPL="100")
    await world.create(teacher, name="Big Cup")
    players = [await world.user(f"player{i:02d}") for i in range(7)]
    for p in players:
        await world.games.join_game(p, world.stamp(), "Big Cup")
    await world.update(advance=timedelta(minutes=1), AAPL="100")
    pages = []
    for offset in (0, 3, 6, 9):
        page = await world.games.game_leaderboard(teacher, world.stamp(), "Big Cup", offset=offset, limit=3)
        pages.append([s["username"] for s in page["standings"]])
    assert pages == [["player00", "player01", "player02"], ["player03", "player04", "player05"], ["player06"], []]
    for wrong in (dict(limit=0), dict(limit=501), dict(offset=-1)):
        with pytest.raises(InvalidInput):
            await world.games.game_leaderboard(teacher, world.stamp(), "Big Cup", **wrong)


async def test_a_players_equity_curve_is_seen_by_whoever_may_see_their_portfolio(world):
    """A daily equity curve and a few public closes tell what a player holds: in a game that hides portfolios
    only the creator and the player see it; in one that shows them, its players too; outsiders of a public game
    never, with one refusal whoever they ask about."""
    teacher, alice, bob, eve = [await world.user(n) for n in ("teacher", "alice", "bob", "eve")]
    world.quote(AAPL="100")
    await world.create(teacher, name="Quiet Cup")  # public, hides portfolios (the default)
    await world.create(teacher, name="Open Book", show_portfolios=True)
    for game in ("Quiet Cup", "Open Book"):
        for player in (alice, bob):
            await world.games.join_game(player, world.stamp(), game)
        await world.order(alice, "buy", "AAPL", "10", portfolio=game)
    await world.update(advance=timedelta(minutes=1), AAPL="100")  # bought at 100
    await world.update(advance=timedelta(minutes=1), AAPL="110")

    def curve(who, username, game="Quiet Cup"):
        return world.games.game_curve(who, world.stamp(), game, username)

    assert [p["equity"] for p in (await curve(teacher, "alice"))["points"]] == [D("10100.00")]
    assert [p["equity"] for p in (await curve(alice, "alice"))["points"]] == [D("10100.00")]
    refusals = set()
    for who, username in ((bob, "alice"), (bob, "nobody_at_all"), (eve, "alice"), (eve, "nobody_at_all")):
        with pytest.raises(PortfoliosHidden) as refused:
            await curve(who, username)
        refusals.add((who.username, refused.value.message))
    assert len(refusals) == 2 and "players may" not in str(refusals)
    assert "does not show them to its players" not in [m for u, m in refusals if u == "eve"][0]
    assert (await curve(bob, "alice", game="Open Book"))["username"] == "alice"
    with pytest.raises(PortfoliosHidden):
        await curve(eve, "alice", game="Open Book")


async def test_a_players_portfolio_is_the_creators_to_see_and_the_players_only_if_the_game_shows_it(world):
    """game_portfolio: the creator sees every player's cash, positions, open orders and history, as the player
    does; players see each other's only in a game that shows portfolios; anyone else is refused the same way
    whether the username plays or not; nothing of the account but its username is in the answer."""
    teacher, alice, bob, eve = [await world.user(n) for n in ("teacher", "alice", "bob", "eve")]
    world.quote(AAPL="100", MSFT="50")
    hidden = await world.create(teacher, name="Class 7B", private=True, commission="per_order:1.00")
    assert hidden["show_portfolios"] is False  # the default
    for player in (alice, bob):
        await world.games.join_game(player, world.stamp(), "Class 7B", code=hidden["invite_code"])
    await world.order(alice, "buy", "AAPL", "10", portfolio="Class 7B")
    await world.order(alice, "buy", "MSFT", "4", portfolio="Class 7B")
    await world.update(advance=timedelta(minutes=1), AAPL="100", MSFT="50")
    await world.order(alice, "buy", "MSFT", "1", portfolio="Class 7B", type="limit", limit_price="1.00",
                      time_in_force="gtc")
    world.quote(AAPL="110", MSFT="50")

    def portfolio(who, username, game="Class 7B", **more):
        return world.games.game_portfolio(who, world.stamp(), game, username, **more)

    seen = await portfolio(teacher, "ALICE")
    own = await world.trading.portfolio(alice, world.stamp(), portfolio="Class 7B")
    assert (seen["game"], seen["username"], seen["portfolio"]) == ("Class 7B", "alice", "Class 7B")
    assert seen["cash"] == D("10000.00") - D("1000.00") - D("200.00") - 2 * D("1.00") == own["cash"]
    assert seen["equity"] == own["equity"] == seen["cash"] + D("1100.00") + D("200.00")
    assert seen["positions"] == own["positions"]
    aapl = seen["positions"][0]
    assert (aapl["symbol"], aapl["quantity"], aapl["average_price"], aapl["market_value"], aapl["unrealized_pl"]) == (
        "AAPL", D("10"), D("100"), D("1100.00"), D("1100.00") - D("1001.00"))
    assert [(o["symbol"], o["type"], o["limit_price"], o["status"]) for o in seen["orders"]] == [
        ("MSFT", "limit", D("1.00"), "new")]
    assert seen["open_orders"] == 1
    assert [(t["kind"], t["symbol"], t["quantity"]) for t in seen["transactions"]] == [
        ("fill", "AAPL", D("10")), ("fill", "MSFT", D("4"))]
    # The account's username only: no email, no ids its owner or the HTTP API know it and its orders by.
    assert "account_uuid" not in seen and "removed" not in seen and "next_before" not in seen
    assert not {"uuid", "client_order_id"} & set(seen["orders"][0])
    assert "example.com" not in repr(seen) and own["account_uuid"] not in repr(seen)

    # History in pages, newest first, as the history command pages.
    first = await portfolio(teacher, "alice", limit=1)
    assert [t["symbol"] for t in first["transactions"]] == ["MSFT"] and first["next_before"]
    older = await portfolio(teacher, "alice", limit=1, before=first["next_before"])
    assert [t["symbol"] for t in older["transactions"]] == ["AAPL"] and "next_before" not in older
    for wrong in (dict(limit=0), dict(limit=501)):
        with pytest.raises(InvalidInput):
            await portfolio(teacher, "alice", **wrong)

    # The game hides portfolios: a player sees only their own; the refusal is the same for a player, someone
    # who never played and a username nobody has.  Outsiders of a private game do not even see the game.
    assert (await portfolio(bob, "bob"))["cash"] == D("10000.00")
    refusals = set()
    for username in ("alice", "teacher", "nobody_at_all"):
        with pytest.raises(PortfoliosHidden) as refused:
            await portfolio(bob, username)
        assert refused.value.code == "portfolios_hidden"
        refusals.add(refused.value.message)
    assert len(refusals) == 1 and "nobody_at_all" not in refusals.pop()
    for username in ("alice", "nobody_at_all"):
        with pytest.raises(UnknownGame):
            await portfolio(eve, username)
    with pytest.raises(InvalidInput, match="does not play"):
        await portfolio(teacher, "nobody_at_all")
    with pytest.raises(InvalidInput, match="does not play"):
        await portfolio(teacher, "eve")

    # A public game that shows portfolios: its players see each other's; everyone else, still nobody's.
    shown = await world.create(teacher, name="Open Book", show_portfolios=True)
    assert shown["show_portfolios"] is True
    assert (await world.games.show_game(eve, world.stamp(), "Open Book"))["show_portfolios"] is True
    for player in (alice, bob):
        await world.games.join_game(player, world.stamp(), "Open Book")
    assert (await portfolio(bob, "alice", game="Open Book"))["username"] == "alice"
    refusals = set()
    for username in ("alice", "nobody_at_all"):
        with pytest.raises(PortfoliosHidden) as refused:
            await portfolio(eve, username, game="Open Book")
        refusals.add(refused.value.message)
    assert len(refusals) == 1

    # A removed player: still the creator's to see (with when they were removed); to players they no longer play.
    await world.games.remove_game_player(teacher, world.stamp(), "Open Book", "alice")
    gone = await portfolio(teacher, "alice", game="Open Book")
    assert gone["removed"] == world.now() and gone["username"] == "alice"
    with pytest.raises(InvalidInput, match="does not play"):
        await portfolio(bob, "alice", game="Open Book")
    # ... and alice herself, out of the game, sees nobody's but her own.
    assert (await portfolio(alice, "alice", game="Open Book"))["removed"] == world.now()
    with pytest.raises(PortfoliosHidden):
        await portfolio(alice, "bob", game="Open Book")
