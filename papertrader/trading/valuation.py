"""Positions valued at newer prices, and a portfolio's change today (pure: no I/O).

The master values an account when it answers ``Portfolio`` (papertrader/app/trading.py): each position
at its last price, market value = quantity x price rounded to the cent, unrealized P&L = market value -
cost, equity = cash + the market values.

Today's change is equity now less equity when the day began (``last_equity``, as Alpaca calls it): the cash
then plus what was held then at the previous session's close (:func:`day_start`).  So a share bought today
counts from what it cost, not from yesterday's close; a commission, a dividend and a sale today count too.  A
position's own change is its market value less its ``day_base``: what its shares held at the day's start
were worth then, plus what today's fills in it cost (less what they brought).

A worker's website keeps that answer and, as each update brings new prices, values it again by the same
rules with :func:`revalue` — no round trip to the master per price; cash, buying power and realized P&L
only change with orders (and a new session begins a new day), and then the page asks the master again.
"""

from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping

from papertrader.money import round_money

HUNDREDTH = Decimal("0.01")
ZERO = Decimal("0.00")


@dataclass(frozen=True)
class DayStart:
    """A portfolio as the day began: its equity then (``last_equity``) and, for each position held now, its
    ``day_base`` (what today's change in it counts from)."""

    last_equity: Decimal
    bases: Mapping[str, Decimal]


def unrealized_percent(value, cost):
    """A position's unrealized profit in percent of what it cost, signed as the profit (a short that lost shows a
    negative percent, as at Alpaca: its cost is negative, the percent counts from its size); None without a cost."""
    if not cost:
        return None
    return (100 * (value - cost) / abs(cost)).quantize(HUNDREDTH)


def day_start(cash, positions, values, references, start_quantities, today):
    """How the day began for a portfolio.

    ``cash`` and ``positions`` ({symbol: quantity}) are now; ``values`` ({symbol: market value now}) and
    ``references`` ({symbol: the price the day started from: the previous session's close, or the last price
    if the symbol has not traded today; None without a quote}); ``start_quantities``: the quantity held when
    the day began of each symbol today's fills changed (on the basis of ``references``); ``today``: the day's
    transactions as (kind, symbol, amount), every one of which changed cash by its amount."""
    cash_then = cash - sum((amount for _, _, amount in today), ZERO)
    invested = {}
    for kind, symbol, amount in today:
        if kind == "fill":
            invested[symbol] = invested.get(symbol, ZERO) - amount
    held_then = {**positions, **start_quantities}

    def worth_then(symbol):
        quantity = held_then.get(symbol) or 0
        if not quantity:
            return ZERO
        reference = references.get(symbol)
        if reference is None:  # no price: valued as now (its cost), unchanged today
            return values.get(symbol, ZERO)
        return round_money(quantity * reference)

    last_equity = cash_then + sum((worth_then(s) for s in held_then), ZERO)
    bases = {s: worth_then(s) + invested.get(s, ZERO) for s in positions}
    return DayStart(last_equity, bases)


def new_day(portfolio, quotes):
    """Whether ``quotes`` come from a session that began after the one ``portfolio``'s day began with (its
    ``day_start`` and their ``session_open``): its day's figures are then the master's to give again."""
    began = portfolio.get("day_start")
    return began is not None and any(q.get("session_open") is not None and q["session_open"] > began
                                     for q in quotes.values())


def revalue(portfolio, quotes):
    """``portfolio`` (a Portfolio answer: cash, positions with symbol, quantity, cost, day_base...) valued at
    ``quotes`` ({symbol: {"price": Decimal, "previous_close": Decimal or absent}}) of the same day; a position
    without a newer quote keeps its values.  Returns a new dict (the answer is not changed)."""
    positions = []
    equity = portfolio["cash"]
    unrealized = ZERO
    for held in portfolio["positions"]:
        position = dict(held)
        quote = quotes.get(held["symbol"])
        if quote is not None and quote.get("price") is not None:
            price = quote["price"]
            value = round_money(held["quantity"] * price)
            position.update(price=price, market_value=value, unrealized_pl=value - held["cost"])
            if held["cost"]:
                position["unrealized_percent"] = unrealized_percent(value, held["cost"])
            if quote.get("previous_close") is not None:
                position["previous_close"] = quote["previous_close"]
            if held.get("day_base") is not None:
                position["change_today"] = value - held["day_base"]
        equity += position["market_value"]
        unrealized += position["unrealized_pl"]
        positions.append(position)
    answer = dict(portfolio, positions=positions, equity=equity, unrealized_pl=unrealized)
    if portfolio.get("last_equity") is not None:
        answer["change_today"] = equity - portfolio["last_equity"]
    return answer
