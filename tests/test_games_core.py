"""The games' pure core (papertrader/trading/games.py): rules, the pre-trade check, the leaderboard.

No reactor, no database.  The leaderboard's figures are checked against hand computations; hypothesis
checks that ranking is a deterministic, order-independent permutation with shared ranks for ties, and
that the rules survive their JSON text.
"""

import random
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from papertrader.errors import GameRuleViolation, InvalidInput, QuoteUnavailable
from papertrader.trading import games
from papertrader.trading.commissions import Percent, PerOrder, PerShare, Zero
from papertrader.trading.fill_models import BarFillModel, IdealFillModel
from papertrader.trading.games import GameRules, Player, check_order, leaderboard, parse_commission, sharpe
from papertrader.trading.orders import OrderRequest, OrderType, Side, TimeInForce
from papertrader.trading.pretrade import Rules
from tests.trading_helpers import T0, book, place

D = Decimal
DAY = timedelta(days=1)


def rules(**changes):
    values = dict(start=T0, end=T0 + 30 * DAY, starting_cash=D("10000.00"))
    values.update(changes)
    return GameRules(**values)


def request(side="buy", quantity="10", symbol="AAPL", kind="market", limit=None, notional=None, stop=None):
    return OrderRequest(account_id=1, client_order_id="x", symbol=symbol, side=Side(side), type=OrderType(kind),
                        time_in_force=TimeInForce.DAY, quantity=D(quantity) if quantity else None,
                        notional=D(notional) if notional else None, limit_price=D(limit) if limit else None,
                        stop_price=D(stop) if stop else None)


PRICES = {"AAPL": D("100.00"), "MSFT": D("50.00")}


def refused(rule, game, req, b=None, open_orders=(), prices=PRICES, now=T0 + DAY, ended_at=None, **zone):
    with pytest.raises(GameRuleViolation) as caught:
        check_order(game, req, b or book("10000.00"), list(open_orders), prices, now, ended_at, **zone)
    assert caught.value.code == "game_rule"
    assert caught.value.rule == rule
    assert caught.value.message.startswith(f"game rule {rule}: ")
    # The rule is read back from the message alone, as a client re-creates the error from the wire.
    assert GameRuleViolation(caught.value.message).rule == rule
    return caught.value.message


def allowed(game, req, b=None, open_orders=(), prices=PRICES, now=T0 + DAY, ended_at=None):
    check_order(game, req, b or book("10000.00"), list(open_orders), prices, now, ended_at)


# --- rules: validation and text -----------------------------------------------------------------


@pytest.mark.parametrize("changes, words", [
    (dict(end=T0), "end after it starts"),
    (dict(end=T0 - DAY), "end after it starts"),
    (dict(end=T0 + 4000 * DAY), "ten years"),
    (dict(starting_cash=D("0.50")), "starting cash"),
    (dict(starting_cash=D("100.001")), "starting cash"),
    (dict(starting_cash=D("NaN")), "starting cash"),
    (dict(starting_cash=D("1e13")), "starting cash"),
    (dict(fill_model="perfect"), "fill model"),
    (dict(allow_short=True), "short selling needs margin"),
    (dict(assets=("AAPL", "not a symbol")), "not a symbol"),
    (dict(assets=tuple(f"S{i}" for i in range(501))), "at most 500"),
    (dict(max_position=D("0")), "max position"),
    (dict(max_position=D("100.5")), "max position"),
    (dict(max_position=D("12.345")), "max position"),
])
def test_rules_refuse_bad_values(changes, words):
    with pytest.raises(InvalidInput, match=words):
        rules(**changes)


def test_rules_without_time_zone_are_refused():
    with pytest.raises(InvalidInput, match="time zone"):
        rules(start=T0.replace(tzinfo=None))


def test_rules_normalize_assets_and_survive_json():
    game = rules(assets=(" msft", "AAPL", "aapl"), max_position="25", margin=True, allow_short=True,
                 commission=PerShare(D("0.005"), D("1.00"), D("5.00")), fill_model="ideal")
    assert game.assets == ("AAPL", "MSFT")
    assert game.max_position == D("25.00")
    assert GameRules.from_json(game.to_json()) == game
    assert game.describe()["commission"] == "per_share:0.005:1.00:5.00"
    assert game.describe()["start"] == "2024-03-04T14:30:00Z"


@pytest.mark.parametrize("text, model", [
    ("zero", Zero()),
    ("per_order:1", PerOrder(D("1.00"))),
    ("per_share:0.005", PerShare(D("0.005"), D("0.00"), None)),
    ("per_share:0.01:1.00:7.50", PerShare(D("0.01"), D("1.00"), D("7.50"))),
    ("percent:0.25", Percent(D("0.25"))),
])
def test_commission_texts(text, model):
    assert parse_commission(text) == model
    assert parse_commission(games.commission_text(model)) == model


@pytest.mark.parametrize("text", ["", "free", "per_order", "per_order:-1", "per_order:1.001", "per_order:5000",
                                  "per_share:x", "per_share:0.1:5:1", "percent:101", "percent:1:2", "zero:1",
                                  "per_order:" + "9" * 80, "percent:NaN", "percent:1e999"])
def test_bad_commission_texts(text):
    with pytest.raises(InvalidInput):
        parse_commission(text)


def test_trading_rules_put_the_games_models_in_place():
    base = Rules(commission_model=PerOrder(D("1.00")))
    assert rules().trading_rules(base) == base
    changed = rules(commission=Zero(), fill_model="ideal").trading_rules(base)
    assert changed.commission_model == Zero() and isinstance(changed.fill_model, IdealFillModel)
    assert changed.market_buy_buffer == base.market_buy_buffer
    back = rules(fill_model="bar").trading_rules(Rules(fill_model=IdealFillModel()))
    assert isinstance(back.fill_model, BarFillModel)


# --- the check of an order -------------------------------------------------------------------------


def test_dates_open_and_close_trading():
    game = rules()
    message = refused("dates", game, request(), now=T0 - timedelta(seconds=1))
    assert "starts at 2024-03-04 14:30 UTC" in message
    # Said in the market's zone, as people read its times.
    assert "starts at 2024-03-04 09:30 EST" in refused("dates", game, request(), now=T0 - timedelta(seconds=1),
                                                       zone=ZoneInfo("America/New_York"))
    allowed(game, request(), now=T0)
    allowed(game, request(), now=game.end - timedelta(microseconds=1))
    assert "ended at" in refused("dates", game, request(), now=game.end)
    # Ended early by its creator.
    assert "ended at 2024-03-06 14:30 UTC" in refused("dates", game, request(), now=T0 + 3 * DAY,
                                                      ended_at=T0 + 2 * DAY)
    allowed(game, request(), now=T0 + DAY, ended_at=T0 + 2 * DAY)
    assert game.open_at(T0) and not game.open_at(game.end) and not game.open_at(T0 + 3 * DAY, T0 + 2 * DAY)


def test_assets_limit_what_is_traded():
    game = rules(assets=("MSFT",))
    assert "AAPL is not traded in this game (its assets: MSFT)" in refused("assets", game, request())
    allowed(game, request(symbol="MSFT"))
    allowed(rules(), request(symbol="AAPL"))


def test_short_selling_refused_unless_allowed():
    game = rules()
    held = book("0.00", AAPL=("10", "1000.00"))
    allowed(game, request("sell", "10"), held)
    message = refused("short", game, request("sell", "11"), held)
    assert "you may sell at most the 10 AAPL you hold" in message
    assert "you hold no AAPL in this game's portfolio" in refused("short", game, request("sell", "1"))
    # Open sells count: 6 already being sold leave 4.
    selling = place(held, "sell", "6")
    assert "may sell at most the 4 AAPL" in refused("short", game, request("sell", "5"), held, [selling])
    allowed(game, request("sell", "4"), held, [selling])
    # All 10 already being sold: said so ('you may sell at most the 0 AAPL you hold' read as if none were held).
    everything = place(held, "sell", "10")
    assert "your open sells already sell all 10 AAPL you hold" in refused("short", game, request("sell", "1"), held,
                                                                          [everything])
    # A notional sale counts at the last price; without one it is refused rather than guessed.
    refused("short", game, request("sell", None, notional="1100.00"), held)
    allowed(game, request("sell", None, notional="900.00"), held)
    refused("short", game, request("sell", None, notional="900.00"), held, prices={})
    # Margin without shorting: still no short sales; with shorting allowed they pass the game.
    refused("short", rules(margin=True), request("sell", "1"))
    allowed(rules(margin=True, allow_short=True), request("sell", "1"))


def test_max_position_counts_the_order_the_position_and_open_orders():
    game = rules(max_position="25")  # of 10,000 equity: 2,500
    allowed(game, request("buy", "25"))
    message = refused("max_position", game, request("buy", "26"))
    assert "at most 25.00% of the portfolio (2500.00 of equity 10000.00); AAPL would be worth 2600.00" in message
    # Held shares count at the last price, and equity includes them.
    held = book("8000.00", AAPL=("20", "2000.00"))  # equity 10,000; AAPL 2,000
    allowed(game, request("buy", "5"), held)
    refused("max_position", game, request("buy", "6"), held)
    # Open buys count too.
    pending = place(held, "buy", "3")
    refused("max_position", game, request("buy", "3"), held, [pending])
    allowed(game, request("buy", "2"), held, [pending])
    # A limit order is valued at its limit, a notional order at its notional.
    allowed(game, request("buy", "30", kind="limit", limit="80.00"))
    refused("max_position", game, request("buy", "30", kind="limit", limit="90.00"))
    refused("max_position", game, request("buy", None, notional="2600.00"))
    allowed(game, request("buy", None, notional="2500.00"))
    # A stop buy at the higher of its stop and the last price.
    refused("max_position", game, request("buy", "24", kind="stop", stop="110.00"))


def test_max_position_values_each_order_at_its_own_price_whatever_came_first():
    game = rules(max_position="25")  # of 10,000 equity: 2,500; AAPL last 100.00
    # A limit buy of 20 at 110 (2,200) and a market buy of 4 (400): 2,600, refused whichever is placed first.
    limit_first = place(book("10000.00"), "buy", "20", kind="limit", limit="110.00")
    message = refused("max_position", game, request("buy", "4"), open_orders=[limit_first])
    assert "AAPL would be worth 2600.00 with your open orders" in message
    market_first = place(book("10000.00"), "buy", "4")
    refused("max_position", game, request("buy", "20", kind="limit", limit="110.00"), open_orders=[market_first])
    # A limit buy far below the market adds what it would cost at its limit: 20 at 50 (1,000) + 15 at 100.
    low = place(book("10000.00"), "buy", "20", kind="limit", limit="50.00")
    allowed(game, request("buy", "15"), open_orders=[low])
    refused("max_position", game, request("buy", "16"), open_orders=[low])
    allowed(game, request("buy", "20", kind="limit", limit="50.00"),
            open_orders=[place(book("10000.00"), "buy", "15")])


def test_max_position_never_stops_a_player_getting_out():
    game = rules(max_position="10", margin=True, allow_short=True)
    # Prices rose: the position is now worth far more than 10%; selling some is still allowed.
    held = book("0.00", AAPL=("100", "5000.00"))
    allowed(game, request("sell", "10"), held)
    refused("max_position", game, request("buy", "1"), held)
    # Short positions: adding is limited, covering is not.
    short = book("20000.00", AAPL=("-50", "-5000.00"))  # equity 15,000; short 5,000
    refused("max_position", game, request("sell", "1"), short)
    allowed(game, request("buy", "50"), short)


def test_max_position_needs_a_price():
    with pytest.raises(QuoteUnavailable):
        check_order(rules(max_position="50"), request(), book(), [], {}, T0 + DAY)


def test_rules_are_checked_in_a_documented_order():
    game = rules(assets=("MSFT",), max_position="1")
    refused("dates", game, request("sell", "5"), now=T0 - DAY)
    refused("assets", game, request("sell", "5"))
    refused("short", game, request("sell", "5", symbol="MSFT"))
    refused("max_position", game, request("buy", "5", symbol="MSFT"))


# --- the leaderboard ---------------------------------------------------------------------------------


def test_sharpe_by_hand():
    # (the formula on a few returns: minimum=2; by default no ratio is given with fewer than 20, below)
    # Returns +10%, -10%, +10%: mean 1/30, sample stdev sqrt(1/75), ratio 1/sqrt(12); x sqrt(252) = sqrt(21).
    assert sharpe(D("100"), [D("110"), D("99"), D("108.9")], minimum=2) == D("4.5826")
    assert sharpe(D("100"), [D("110")], minimum=1) is None  # one return: no deviation
    assert sharpe(D("100"), [D("110"), D("121")], minimum=2) is None  # constant returns: zero deviation
    assert sharpe(D("100"), [D("0"), D("10")], minimum=2) is None  # a previous equity that is not positive
    # Losing steadily but not evenly: negative.
    assert sharpe(D("100"), [D("99"), D("97"), D("96")], minimum=2) < 0


def test_no_sharpe_ratio_before_twenty_daily_returns():
    """An annualized ratio of two or three daily returns was shown (4.5826 of +10%, -10%, +10%) as if it meant
    something; it is given from twenty daily returns (about a month of market days) on."""
    assert games.MIN_SHARPE_RETURNS == 20
    closes = [D(100 + (i % 3)) for i in range(1, 21)]  # 101, 102, 100, 101, ...
    assert sharpe(D("100"), [D("110"), D("99"), D("108.9")]) is None
    assert sharpe(D("100"), closes[:19]) is None
    assert sharpe(D("100"), closes) == sharpe(D("100"), closes, minimum=2) is not None
    [standing] = leaderboard(D("100"), [Player("ann", closes[-2], closes[:19])])
    assert standing.sharpe is None
    from datetime import date

    state = games.DailyReturns(D("100"))
    for i, equity in enumerate(closes):
        state = state.at(date(2026, 1, 1) + timedelta(days=i), equity)
        assert (state.sharpe() is None) == (i < 19), i  # (today's return counts, as it stands)
    assert state.sharpe() == sharpe(D("100"), closes)


def test_leaderboard_by_hand():
    cash = D("10000.00")
    players = [
        Player("carol", D("10500.00"), [D("10200.00"), D("10500.00")]),
        Player("alice", D("11000.00"), [D("9000.00"), D("11000.00")]),
        Player("bob", D("10500.00"), [D("10600.00"), D("10500.00")]),
        Player("dave", D("9000.00"), [D("9000.00")]),
    ]
    board = leaderboard(cash, players, minimum=2)
    assert [(s.rank, s.username) for s in board] == [(1, "alice"), (2, "carol"), (2, "bob"), (4, "dave")]
    assert [s.view()["return_percent"] for s in board] == [D("10.0000"), D("5.0000"), D("5.0000"), D("-10.0000")]
    # carol and bob tie on return; carol's ride was smoother (+2%, +2.94...%) than bob's (+6%, -0.94...%).
    carol, bob = board[1], board[2]
    assert carol.sharpe > bob.sharpe
    # By hand: carol's returns 0.02 and 0.0294117647..., bob's 0.06 and -0.0094339622...
    r1, r2 = D("0.02"), D("10500") / D("10200") - 1
    mean = (r1 + r2) / 2
    sd = (((r1 - mean) ** 2 + (r2 - mean) ** 2) / 1).sqrt()
    assert carol.sharpe == (mean / sd * D(252).sqrt()).quantize(D("0.0001"))
    assert board[3].sharpe is None
    by_sharpe = leaderboard(cash, players, by="sharpe", minimum=2)
    assert [s.username for s in by_sharpe] == ["carol", "bob", "alice", "dave"]
    assert by_sharpe[-1].rank == 4 and by_sharpe[-1].sharpe is None


def test_leaderboard_refuses_unknown_ranking():
    with pytest.raises(InvalidInput):
        leaderboard(D("1.00"), [], by="luck")


def test_leaderboard_entries_hold_usernames_only():
    [standing] = leaderboard(D("100.00"), [Player("ann", D("100.00"))])
    assert set(standing.view()) == {"rank", "username", "equity", "return_percent", "sharpe"}


money = st.integers(min_value=-10_000_00, max_value=10_000_000_00).map(lambda c: D(c).scaleb(-2))
names = st.text(alphabet="abcdefghij_", min_size=3, max_size=6)


@st.composite
def fields_of_players(draw):
    usernames = draw(st.lists(names, min_size=0, max_size=30, unique=True))
    return [Player(u, draw(money), tuple(draw(st.lists(money, max_size=6)))) for u in usernames]


@settings(max_examples=200, deadline=None)
@given(fields_of_players(), st.sampled_from(games.RANKINGS), st.randoms(use_true_random=False))
def test_ranking_is_a_deterministic_permutation(players, by, rnd):
    cash = D("10000.00")
    board = leaderboard(cash, players, by=by)
    assert sorted(s.username for s in board) == sorted(p.username for p in players)
    shuffled = list(players)
    rnd.shuffle(shuffled)
    assert leaderboard(cash, shuffled, by=by) == board
    for i, s in enumerate(board):
        figure = s.total_return if by == "return" else s.sharpe
        if i == 0:
            assert s.rank == 1
            continue
        before = board[i - 1]
        before_figure = before.total_return if by == "return" else before.sharpe
        if figure == before_figure:
            assert s.rank == before.rank  # ties share a rank...
        else:
            assert s.rank == i + 1  # ...and the next one skips as many places
            if by == "return" or figure is not None:
                assert before_figure is not None and before_figure > figure
        assert s.total_return == s.equity / cash - 1


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=100, max_value=10**12).map(lambda c: D(c).scaleb(-2)),
       st.booleans(), st.booleans(), st.lists(st.sampled_from(["AAPL", "MSFT", "SPY", "brk.b"]), max_size=4),
       st.one_of(st.none(), st.integers(min_value=1, max_value=10000).map(lambda c: D(c).scaleb(-2))),
       st.sampled_from(["zero", "per_order:1.00", "per_share:0.005:1.00", "percent:0.1", None]),
       st.sampled_from([None, "bar", "ideal"]))
def test_rules_round_trip(cash, margin, short, assets, max_position, commission, fill):
    game = rules(starting_cash=cash, margin=margin or short, allow_short=short, assets=tuple(assets),
                 max_position=max_position, commission=parse_commission(commission) if commission else None,
                 fill_model=fill)
    assert GameRules.from_json(game.to_json()) == game


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=200), st.integers(min_value=1, max_value=100),
       st.integers(min_value=1, max_value=100), st.sampled_from(["buy", "sell"]), st.booleans())
def test_max_position_allows_exactly_what_fits(held, quantity, percent, side, short_book):
    """An order that adds to a position passes iff the position after it is worth at most the percent of
    equity; an order that reduces one always passes the size rule."""
    game = rules(max_position=D(percent), margin=True, allow_short=True)
    sign = -1 if short_book else 1
    b = book("5000.00", AAPL=(str(sign * held), str(sign * held * 100))) if held else book("5000.00")
    equity = D("5000.00") + sign * held * D("100.00")
    adds = (side == "buy") == (sign > 0) or held == 0
    req = request(side, str(quantity))
    after = (held + quantity) * D("100.00")
    try:
        check_order(game, req, b, [], PRICES, T0 + DAY)
        ok = True
    except GameRuleViolation as e:
        assert e.rule == "max_position"
        ok = False
    if not adds:
        assert ok
    else:
        assert ok == (after <= (equity * percent / 100).quantize(D("0.01")))


def test_leaderboard_is_stable_for_many_equal_players():
    players = [Player(f"p{i:04d}", D("100.00"), ()) for i in range(1000)]
    random.Random(4).shuffle(players)
    board = leaderboard(D("100.00"), players)
    assert all(s.rank == 1 for s in board)
    assert [s.username for s in board] == sorted(p.username for p in players)


def test_a_games_models_price_its_portfolios_fills_in_a_shared_step():
    """One step, two accounts: the game's portfolio pays the game's commission at the game's fill model,
    the other the deployment's."""
    from papertrader.trading.market import MarketStep
    from papertrader.trading.step import step
    from tests.trading_helpers import at, bar

    deployment = Rules(fill_model=BarFillModel(half_spread_bps=D(0), impact_bps=D(0)))
    game = rules(commission=PerOrder(D("2.50")), fill_model="ideal")
    outside, inside = book(account=1), book(account=2)
    orders = [place(outside, quantity="10"), place(inside, quantity="10")]
    result = step({1: outside, 2: inside}, orders, MarketStep(at(1), {"AAPL": bar(100, 102, 99, 101)}),
                  deployment, {2: game.trading_rules(deployment)})
    fills = {e.fill.account_id: e.fill for e in result.events}
    assert (fills[1].price, fills[1].commission) == (D("100"), D("0.00"))  # the bar's open, no commission
    assert (fills[2].price, fills[2].commission, fills[2].model) == (D("101"), D("2.50"), "ideal")
    assert result.books[2].cash == D("100000.00") - D("1010.00") - D("2.50")


def test_rank_by_reorders_without_recomputing():
    cash = D("100.00")
    players = [Player("a", D("120.00"), (D("90.00"), D("120.00"))),
               Player("b", D("110.00"), (D("105.00"), D("110.00"))), Player("c", D("100.00"))]
    by_return = leaderboard(cash, players)
    assert games.rank_by(by_return, "sharpe") == leaderboard(cash, players, by="sharpe")
    assert games.rank_by(games.rank_by(by_return, "sharpe"), "return") == by_return


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(min_value=-1000, max_value=3_000_000).map(lambda c: D(c).scaleb(-2)), max_size=25),
       st.integers(min_value=1, max_value=4))
def test_running_sums_give_the_two_pass_sharpe_ratio(closes, points_per_day):
    """The master's DailyReturns (running sums, several updates a day) agree with the definition (two passes
    over the daily closes) to the last of its 4 decimals."""
    from datetime import date

    cash = D("10000.00")
    state = games.DailyReturns(cash)
    for i, equity in enumerate(closes):
        day = date(2026, 1, 1) + timedelta(days=i)
        for k in range(points_per_day - 1):  # earlier updates of the day, overwritten by its last one
            state = state.at(day, equity + k + 1)
        state = state.at(day, equity)
    by_definition = sharpe(cash, closes, minimum=2)
    mine = state.sharpe(minimum=2)
    assert (mine is None) == (by_definition is None), (closes, mine, by_definition)
    if mine is not None:
        assert abs(mine - by_definition) <= D("0.0001"), (closes, mine, by_definition)


def test_daily_returns_by_hand():
    from datetime import date

    state = games.DailyReturns(D("100"))
    assert state.sharpe(minimum=2) is None
    state = state.at(date(2026, 1, 1), D("110"))
    assert state.sharpe(minimum=1) is None and state.count == 0  # one return (today's): no deviation yet
    state = state.at(date(2026, 1, 2), D("99")).at(date(2026, 1, 3), D("105")).at(date(2026, 1, 3), D("108.9"))
    assert state.count == 2 and state.previous == D("99")
    assert state.sharpe(minimum=2) == sharpe(D("100"), [D("110"), D("99"), D("108.9")], minimum=2) == D("4.5826")
    broken = games.DailyReturns(D("100")).at(date(2026, 1, 1), D("0")).at(date(2026, 1, 2), D("5"))
    assert broken.at(date(2026, 1, 3), D("6")).sharpe(minimum=2) is None


# --- who sees a player's portfolio -----------------------------------------------------------


@pytest.mark.parametrize("is_creator, playing, shown, own, allowed", [
    (True, False, False, False, True),    # the creator, who does not play, in a game that hides portfolios
    (True, True, False, False, True),     # the creator who also plays
    (False, True, False, False, False),   # a player, portfolios hidden
    (False, True, True, False, True),     # a player, portfolios shown
    (False, False, True, False, False),   # an outsider of a public game that shows portfolios
    (False, False, False, False, False),  # an outsider, hidden
    (False, True, False, True, True),     # a player asking for their own
    (False, False, False, True, True),    # a removed player asking for their own
])
def test_who_may_ask_for_a_players_portfolio(is_creator, playing, shown, own, allowed):
    assert games.may_see_portfolios(is_creator, playing, shown, own) is allowed


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_the_creator_always_may_and_nobody_outside_the_game_ever_sees_another(is_creator, playing, shown, own):
    """Whatever the setting: the creator may; whoever neither created the game nor plays in it sees no one's
    portfolio but their own; the setting only ever opens portfolios to players."""
    allowed = games.may_see_portfolios(is_creator, playing, shown, own)
    if is_creator or own:
        assert allowed
    elif not playing:
        assert not allowed
    else:
        assert allowed is shown


def test_a_removed_players_portfolio_stays_the_creators_to_see():
    assert games.shows_player(is_creator=True, removed=True)
    assert not games.shows_player(is_creator=False, removed=True)  # to players, they no longer play
    assert games.shows_player(is_creator=False, removed=True, own=True)
    assert games.shows_player(is_creator=False, removed=False)
