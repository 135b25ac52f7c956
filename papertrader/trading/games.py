"""Trading games: a game's rules, the check every order in a game passes, and the leaderboard (pure).

A game is played from ``start`` (inclusive) to ``end`` (exclusive), or until its creator ends it
early; every player starts with ``starting_cash`` in a portfolio of the game.  Its rules
(:class:`GameRules`, a frozen value that validates itself):

- ``commission`` and ``fill_model``: the models its portfolios trade with (None: the deployment's);
- ``margin``: its portfolios are margin accounts (they may borrow); ``allow_short``: they may also sell
  short (short selling needs a margin account, so it implies ``margin``);
- ``assets``: the symbols that may be traded (empty: every symbol of the deployment);
- ``max_position``: the most, in percent of the portfolio's equity, that one position may be worth
  once an order that opens or adds to it has filled (None: no limit).

:func:`check_order` runs before the deployment's own checks (papertrader/trading/pretrade.py) and
raises :class:`~papertrader.errors.GameRuleViolation` (code ``game_rule``) naming the rule that
refused the order — ``dates``, ``assets``, ``short`` or ``max_position`` — and why.  Orders that
reduce a position are never refused for its size: a player can always get out.

The leaderboard (:func:`leaderboard`) ranks players by total return, or by a risk-adjusted return:

    total return = equity / starting cash - 1
    daily returns r_1..r_n: r_i = E_i / E_(i-1) - 1, where E_0 is the starting cash and E_i the
                  equity at the last update of the i-th day with an update (so today counts too)
    Sharpe ratio = mean(r) / stdev(r) x sqrt(252)       (risk-free rate 0; stdev is the sample
                  standard deviation, n - 1; undefined (None) with fewer than MIN_SHARPE_RETURNS (20)
                  returns, a zero stdev, or an E_(i-1) that is not positive)

An annualized ratio of a few daily returns is noise (its standard error is about sqrt(252 / n): 11 with two
returns, 3.5 with twenty), so none is given before twenty daily returns: about a month of market days, a
usual shortest window for a figure annualized from daily data (as a 20-day historical volatility).

Both are computed in Decimal (28 digits), so every platform ranks the same.  The master keeps each
player's returns as running sums (:class:`DailyReturns`: count, sum, sum of squares, the last day's
equity), so an update costs the same however long the game has run; the variance is then
(sum of squares - sum^2 / n) / (n - 1), the same quantity.  Players with the same
figure share a rank (1, 2, 2, 4); a player without a Sharpe ratio ranks after those with one.  Within
a tie the list is ordered by the other figure (higher first), then by username — deterministic.
Entries carry usernames only.
"""

import json
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation, localcontext
from typing import Optional, Sequence, Tuple

from papertrader.errors import GameRuleViolation, InvalidInput, QuoteUnavailable
from papertrader.money import CENT, MAX_MONEY, money_text, price_text, quantity_text, round_money

from . import margin
from .commissions import CommissionModel, Percent, PerOrder, PerShare, Zero
from .orders import OrderType, Side

#: Rules' names, as check_order's errors give them.
DATES, ASSETS, SHORT, MAX_POSITION = "dates", "assets", "short", "max_position"
#: How leaderboards may be ranked.
RANKINGS = ("return", "sharpe")
FILL_MODELS = ("bar", "ideal")
#: Limits on what a game creator chooses.
MAX_ASSETS = 500
MAX_LENGTH = timedelta(days=366 * 10)
MIN_CASH = Decimal("1.00")
MAX_COMMISSION = Decimal("1000.00")
MAX_COMMISSION_TEXT = 64
TRADING_DAYS = 252
SQRT_TRADING_DAYS = Decimal(TRADING_DAYS).sqrt()
#: The fewest daily returns a Sharpe ratio is given with (module docstring).
MIN_SHARPE_RETURNS = 20
#: Why a standing has no Sharpe ratio, as the leaderboards say under an "n/a".
NO_SHARPE = (f"a Sharpe ratio needs {MIN_SHARPE_RETURNS} daily returns (about a month of market days),"
             " not all the same")
FOUR = Decimal("0.0001")


def _decimal(text, what):
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidInput(f"{what}: {str(text)[:32]!r} is not a number")
    if not value.is_finite():
        raise InvalidInput(f"{what} must be a finite number")
    return value


def _money(text, what, top=MAX_COMMISSION):
    value = _decimal(text, what)
    if value < 0 or value > top or value != round_money(value):
        raise InvalidInput(f"{what} must be an amount of money from 0 to {money_text(top)}")
    return round_money(value)


def parse_commission(text) -> CommissionModel:
    """A commission model from its text: ``zero``, ``per_order:AMOUNT``, ``per_share:RATE[:MIN[:MAX]]``
    or ``percent:PERCENT``."""
    text = (text or "").strip()
    if len(text) > MAX_COMMISSION_TEXT:
        raise InvalidInput(f"commission must be at most {MAX_COMMISSION_TEXT} characters")
    kind, *args = text.split(":")
    if kind == "zero" and not args:
        return Zero()
    if kind == "per_order" and len(args) == 1:
        return PerOrder(_money(args[0], "per-order commission"))
    if kind == "per_share" and 1 <= len(args) <= 3:
        rate = _decimal(args[0], "per-share rate")
        if not 0 <= rate <= 100 or rate != rate.quantize(Decimal("0.000001")):
            raise InvalidInput("per-share rate must be from 0 to 100, with at most 6 decimals")
        minimum = _money(args[1], "per-share minimum") if len(args) > 1 else Decimal("0.00")
        maximum = _money(args[2], "per-share maximum") if len(args) > 2 else None
        if maximum is not None and maximum < minimum:
            raise InvalidInput("per-share maximum may not be below its minimum")
        return PerShare(rate.quantize(Decimal("0.000001")).normalize(), minimum, maximum)
    if kind == "percent" and len(args) == 1:
        percent = _decimal(args[0], "commission percent")
        if not 0 <= percent <= 100 or percent != percent.quantize(FOUR):
            raise InvalidInput("commission percent must be from 0 to 100, with at most 4 decimals")
        return Percent(percent.normalize())
    raise InvalidInput("commission must be zero, per_order:AMOUNT, per_share:RATE[:MIN[:MAX]] or percent:PERCENT")


def commission_text(model: CommissionModel) -> str:
    """The text :func:`parse_commission` reads back as ``model``."""
    if isinstance(model, Zero):
        return "zero"
    if isinstance(model, PerOrder):
        return f"per_order:{money_text(model.amount)}"
    if isinstance(model, PerShare):
        text = f"per_share:{format(model.rate, 'f')}:{money_text(model.minimum)}"
        return text + (f":{money_text(model.maximum)}" if model.maximum is not None else "")
    if isinstance(model, Percent):
        return f"percent:{format(model.percent, 'f')}"
    raise ValueError(f"no text for commission model {model!r}")


def parse_percent(text, what="max position"):
    """A percent above 0 and at most 100, with at most 2 decimals."""
    value = _decimal(str(text).strip().rstrip("%"), what)
    if not 0 < value <= 100 or value != value.quantize(CENT):
        raise InvalidInput(f"{what} must be a percent above 0 and at most 100, with at most 2 decimals")
    return value.quantize(CENT)


def _iso(moment):
    """A time as people read it in messages and JSON: UTC, 'Z', microseconds only if any."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment.microsecond == 0 else \
        moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class GameRules:
    """Everything a game's creator decides (see the module's docstring); validated when made."""

    start: datetime
    end: datetime
    starting_cash: Decimal
    commission: Optional[CommissionModel] = None
    fill_model: Optional[str] = None
    margin: bool = False
    allow_short: bool = False
    assets: Tuple[str, ...] = ()
    max_position: Optional[Decimal] = None

    def __post_init__(self):
        for name in ("start", "end"):
            moment = getattr(self, name)
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise InvalidInput(f"the game's {name} must be a time with a time zone")
        if self.end <= self.start:
            raise InvalidInput("a game must end after it starts")
        if self.end - self.start > MAX_LENGTH:
            raise InvalidInput("a game may last at most ten years")
        cash = self.starting_cash
        if not isinstance(cash, Decimal) or not cash.is_finite() or not MIN_CASH <= cash <= MAX_MONEY \
                or cash != round_money(cash):
            raise InvalidInput(f"starting cash must be an amount of money from {money_text(MIN_CASH)} to"
                               f" {money_text(MAX_MONEY)}")
        if self.commission is not None and not isinstance(self.commission, CommissionModel):
            raise InvalidInput("commission must be a commission model")
        if self.fill_model is not None and self.fill_model not in FILL_MODELS:
            raise InvalidInput(f"fill model must be one of {', '.join(FILL_MODELS)}")
        if self.allow_short and not self.margin:
            raise InvalidInput("short selling needs margin accounts: allow margin too")
        if len(self.assets) > MAX_ASSETS:
            raise InvalidInput(f"a game may list at most {MAX_ASSETS} assets")
        symbols = tuple(sorted({str(s).strip().upper() for s in self.assets}))
        for symbol in symbols:
            if not 1 <= len(symbol) <= 16 or not all(c.isascii() and (c.isalnum() or c in ".-/") for c in symbol):
                raise InvalidInput(f"{symbol[:16]!r} is not a symbol")
        object.__setattr__(self, "assets", symbols)
        if self.max_position is not None:
            object.__setattr__(self, "max_position", parse_percent(self.max_position))

    # --- what it changes ----------------------------------------------------------

    def trading_rules(self, base):
        """The deployment's trading rules (pretrade.Rules) with this game's models in place."""
        from .fill_models import BarFillModel, IdealFillModel

        changes = {}
        if self.commission is not None:
            changes["commission_model"] = self.commission
        if self.fill_model == "ideal":
            changes["fill_model"] = IdealFillModel()
        elif self.fill_model == "bar" and not isinstance(base.fill_model, BarFillModel):
            changes["fill_model"] = BarFillModel()
        return replace(base, **changes)

    def open_at(self, now, ended_at=None):
        """Is trading open at ``now``?"""
        return self.start <= now < self.closes(ended_at)

    def closes(self, ended_at=None):
        """When trading closes: the end, or the time the creator ended the game if earlier."""
        return min(self.end, ended_at) if ended_at is not None else self.end

    # --- storage -----------------------------------------------------------------

    def to_json(self):
        """The rules as canonical JSON text (the database keeps it; :meth:`from_json` reads it back)."""
        return json.dumps(self.describe(), sort_keys=True, separators=(",", ":"))

    def describe(self):
        """The rules as plain JSON values (strings for times and amounts)."""
        return {
            "start": _iso(self.start), "end": _iso(self.end), "starting_cash": money_text(self.starting_cash),
            "commission": commission_text(self.commission) if self.commission is not None else None,
            "fill_model": self.fill_model, "margin": self.margin, "allow_short": self.allow_short,
            "assets": list(self.assets),
            "max_position": format(self.max_position, "f") if self.max_position is not None else None,
        }

    @classmethod
    def from_json(cls, text):
        from papertrader.times import parse_iso

        data = json.loads(text)
        return cls(start=parse_iso(data["start"]), end=parse_iso(data["end"]),
                   starting_cash=Decimal(data["starting_cash"]),
                   commission=parse_commission(data["commission"]) if data.get("commission") else None,
                   fill_model=data.get("fill_model"), margin=bool(data.get("margin")),
                   allow_short=bool(data.get("allow_short")), assets=tuple(data.get("assets") or ()),
                   max_position=Decimal(data["max_position"]) if data.get("max_position") else None)


# --- the check of an order ----------------------------------------------------------------


def _refuse(rule, why):
    raise GameRuleViolation(f"game rule {rule}: {why}", rule=rule)


def _open_remaining(open_orders, book, symbol, side, prices):
    """Shares the account's open orders of ``side`` in ``symbol`` may still add."""
    total = Decimal(0)
    for o in open_orders:
        if o.open and o.symbol == symbol and o.side is side and o.account_id == book.account_id:
            if o.quantity is not None:
                total += o.quantity - o.filled_quantity
            elif prices.get(symbol):
                total += o.notional / prices[symbol]
    return total


def _when(moment, zone):
    """A time in a message, for a person: in the market's zone with its abbreviation ('2024-01-29 00:00 AEDT')."""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def check_order(rules: GameRules, request, book, open_orders, prices, now, ended_at=None, zone=timezone.utc):
    """Raise GameRuleViolation unless ``request`` (an OrderRequest) is allowed by the game's rules now.

    ``book`` and ``open_orders`` are the game portfolio's, ``prices`` the last prices.  A refused order
    names the first rule it breaks, in this order: dates, assets, short, max_position.  Its times are said in
    ``zone``, the market's.
    """
    closes = rules.closes(ended_at)
    if now < rules.start:
        _refuse(DATES, f"the game starts at {_when(rules.start, zone)}; orders are taken from then")
    if now >= closes:
        _refuse(DATES, f"the game ended at {_when(closes, zone)}; no more orders are taken")
    if rules.assets and request.symbol not in rules.assets:
        _refuse(ASSETS, f"{request.symbol} is not traded in this game (its assets: {', '.join(rules.assets)})")
    buy = request.side is Side.BUY
    held = book.quantity(request.symbol)
    last = prices.get(request.symbol)
    if not buy and not rules.allow_short:
        selling = _open_remaining(open_orders, book, request.symbol, Side.SELL, prices)
        if request.quantity is not None:
            wanted = request.quantity
        elif last:
            wanted = request.notional / last
        else:
            wanted = None
        if held <= 0 or wanted is None or selling + wanted > held:
            have = max(held - selling, Decimal(0))
            if held <= 0:
                _refuse(SHORT, f"you hold no {request.symbol} in this game's portfolio, and short selling (selling"
                               " shares you do not have) is not allowed in this game")
            if not have:  # ('you may sell at most the 0 AAPL you hold' read as if none were held)
                _refuse(SHORT, f"your open sells already sell all {quantity_text(held)} {request.symbol} you hold:"
                               " selling more would be a short sale, which this game does not allow")
            _refuse(SHORT, f"you may sell at most the {quantity_text(have)} {request.symbol} you hold (after your"
                           " open sells): selling more would be a short sale, which this game does not allow")
    if rules.max_position is None or not margin.opens(buy, held):
        return
    price = _reference(request, last)
    if price is None or (last is None and held):
        raise QuoteUnavailable(f"no price is known yet for {request.symbol}; try again after the next update")
    # Each part at its own price, so the answer does not depend on the order the orders came in: the position
    # at the last price, each open order on the same side at its own reference, the new order at its own.
    value = abs(held) * (last or price) + _size_value(request, request.quantity, price)
    for o in open_orders:
        if o.open and o.symbol == request.symbol and o.side is request.side and o.account_id == book.account_id:
            value += _size_value(o, None if o.quantity is None else o.quantity - o.filled_quantity,
                                 _reference(o, last) or price)
    value = round_money(value)
    equity = margin.value(book, prices).equity
    allowed = round_money(equity * rules.max_position / 100)
    if value > allowed:
        _refuse(MAX_POSITION, f"one position may be worth at most {format(rules.max_position, 'f')}% of the"
                              f" portfolio ({money_text(max(allowed, Decimal('0.00')))} of equity"
                              f" {money_text(equity)}); {request.symbol} would be worth {money_text(value)}"
                              f" with your open orders (the position at {price_text(last or price)}, each order"
                              " at its limit or stop, or at that price)")


def _size_value(order, remaining, price):
    """What an order (or request) adds to a position, in money: its notional, else ``remaining`` x ``price``."""
    return order.notional if remaining is None else remaining * price


def _reference(request, last):
    """The price an order's size is valued at: its limit (limit orders), else the higher of the last
    price and its stop (stop orders), else the last price (None if there is none)."""
    if request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return request.limit_price
    if last is None:
        return None
    if request.type is OrderType.STOP and request.stop_price is not None:
        return max(last, request.stop_price)
    return last


# --- who sees a player's portfolio ---------------------------------------------------------


def may_see_portfolios(is_creator, playing, show_portfolios, own=False):
    """Whether an account may ask for a player's portfolio in a game at all: the game's creator always; a
    player of it (not removed) when the game shows portfolios (``show_portfolios``, chosen at its creation);
    anyone their own (``own``: the username asked for is theirs).  Decided before the username asked for is
    looked up, so a refusal is the same whether that player exists or not: it tells nobody who plays."""
    return bool(is_creator or own or (playing and show_portfolios))


def shows_player(is_creator, removed, own=False):
    """Whether a player's portfolio is shown to someone who may see portfolios (``may_see_portfolios``): a
    player the creator removed stays visible to the creator (and to themselves); to the other players they no
    longer play."""
    return bool(is_creator or own or not removed)


# --- the leaderboard -----------------------------------------------------------------------


@dataclass(frozen=True)
class Player:
    """What the leaderboard needs of one player: the username, the equity now, and the equity at the
    last update of each day with an update, oldest first (today's included)."""

    username: str
    equity: Decimal
    daily: Sequence[Decimal] = field(default_factory=tuple)


@dataclass(frozen=True)
class Standing:
    rank: int
    username: str
    equity: Decimal
    #: equity / starting cash - 1, as a fraction (28 digits).
    total_return: Decimal
    #: Annualized Sharpe ratio of the daily returns, 4 decimals (None: not defined yet).
    sharpe: Optional[Decimal]

    def view(self):
        """Plain values for clients: the return in percent, 4 decimals."""
        return {"rank": self.rank, "username": self.username, "equity": self.equity,
                "return_percent": (self.total_return * 100).quantize(FOUR),
                "sharpe": self.sharpe}


def total_return(equity, starting_cash):
    with localcontext() as context:
        context.prec = 28
        return equity / starting_cash - 1


def sharpe(starting_cash, daily, minimum=None):
    """The annualized Sharpe ratio of the daily returns (module docstring), 4 decimals, or None (also with fewer
    than ``minimum`` returns, by default MIN_SHARPE_RETURNS; never fewer than two)."""
    if len(daily) < max(2, MIN_SHARPE_RETURNS if minimum is None else minimum):
        return None
    with localcontext() as context:
        context.prec = 28
        returns, previous = [], starting_cash
        for equity in daily:
            if previous <= 0:
                return None
            returns.append(equity / previous - 1)
            previous = equity
        n = len(returns)
        mean = sum(returns) / n
        variance = sum((r - mean) * (r - mean) for r in returns) / (n - 1)
        if not variance:
            return None
        ratio = mean / variance.sqrt() * Decimal(TRADING_DAYS).sqrt()
    return ratio.quantize(FOUR)


def leaderboard(starting_cash, players, by="return", sharpes=None, minimum=None):
    """Rank ``players`` (Players) of a game that gave each ``starting_cash``: a list of Standings,
    first place first (see the module's docstring for the ties).  ``sharpes`` ({username: ratio or None}),
    if given, are the players' Sharpe ratios already computed (from their DailyReturns); otherwise each is
    computed from the player's ``daily`` (given with at least ``minimum`` returns: sharpe())."""
    if by not in RANKINGS:
        raise InvalidInput(f"rank by one of {', '.join(RANKINGS)}")
    return rank_by([Standing(0, p.username, p.equity, total_return(p.equity, starting_cash),
                             sharpes[p.username] if sharpes is not None else sharpe(starting_cash, p.daily, minimum))
                    for p in players], by)


@dataclass(frozen=True)
class DailyReturns:
    """One player's daily returns as running sums, and the latest point (see the module's docstring).

    ``previous`` is the equity at the end of the last completed day (the starting cash before any);
    ``count``, ``total`` and ``squares`` are the number, sum and sum of squares of the completed days'
    returns; ``day``/``equity`` the latest point, whose day is not over yet; ``broken``: some day began
    with an equity that is not positive (the ratio is undefined from then on).
    """

    previous: Decimal
    count: int = 0
    total: Decimal = Decimal(0)
    squares: Decimal = Decimal(0)
    day: Optional[date] = None
    equity: Optional[Decimal] = None
    broken: bool = False

    def at(self, day, equity):
        """The returns after a point of ``equity`` on ``day`` (a later day completes the stored one)."""
        if self.day is not None and day > self.day:
            previous, count, total, squares, broken = self._completed(self.equity)
            return DailyReturns(previous, count, total, squares, day, equity, broken)
        return DailyReturns(self.previous, self.count, self.total, self.squares, self.day or day, equity,
                            self.broken)

    def _completed(self, equity):
        """(previous, count, total, squares, broken) once a day that ended at ``equity`` counts."""
        if self.broken or self.previous <= 0:
            return equity, self.count, self.total, self.squares, True
        with localcontext() as context:
            context.prec = 28
            r = equity / self.previous - 1
            return equity, self.count + 1, self.total + r, self.squares + r * r, False

    def sharpe(self, minimum=None):
        """The annualized Sharpe ratio with today's point as it stands (4 decimals), or None (also with fewer than
        ``minimum`` returns, by default MIN_SHARPE_RETURNS)."""
        if self.day is None:
            return None
        _, n, total, squares, broken = self._completed(self.equity)
        if broken or n < max(2, MIN_SHARPE_RETURNS if minimum is None else minimum):
            return None
        with localcontext() as context:
            context.prec = 28
            mean = total / n
            variance = (squares - total * total / n) / (n - 1)
            if variance <= 0:
                return None
            ratio = mean / variance.sqrt() * SQRT_TRADING_DAYS
        return ratio.quantize(FOUR)


def closed_up(ranks):
    """Ranks (1, 2, 2, 4 ...; None: not ranked) after some players left the board: each becomes 1 + how many
    of those left rank above it, so the order and the ties stay and no rank is missing."""
    kept = [r for r in ranks if r is not None]
    return [None if r is None else 1 + sum(1 for other in kept if other < r) for r in ranks]


def rank_by(standings, by):
    """The same Standings ranked again by ``by`` (return or sharpe): the figures are not recomputed."""
    if by == "return":
        def key(s):
            return (-s.total_return, s.sharpe is None, -(s.sharpe or 0), s.username)

        def figure(s):
            return s.total_return
    else:
        def key(s):
            return (s.sharpe is None, -(s.sharpe or 0), -s.total_return, s.username)

        def figure(s):
            return s.sharpe
    out, rank, last = [], 0, None
    for i, s in enumerate(sorted(standings, key=key)):
        value = figure(s)
        if i == 0 or value != last:
            rank = i + 1
            last = value
        out.append(Standing(rank, s.username, s.equity, s.total_return, s.sharpe))
    return out
