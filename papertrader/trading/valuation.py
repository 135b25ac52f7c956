"""Positions valued at newer prices (pure: no I/O).

The master values an account when it answers ``Portfolio`` (papertrader/app/trading.py): each position
at its last price, market value = quantity x price rounded to the cent, unrealized P&L = market value -
cost, today's change = quantity x (price - previous close) rounded to the cent, equity = cash + the
market values.  A worker's website keeps that answer and, as each update brings new prices, values it
again by the same rules with :func:`revalue` — no round trip to the master per price; cash, buying power
and realized P&L only change with orders, and then the page asks the master again.
"""

from decimal import Decimal

from papertrader.money import round_money

HUNDREDTH = Decimal("0.01")


def revalue(portfolio, quotes):
    """``portfolio`` (a Portfolio answer: cash, positions with symbol, quantity, cost...) valued at
    ``quotes`` ({symbol: {"price": Decimal, "previous_close": Decimal or absent}}); a position without a
    newer quote keeps its values.  Returns a new dict (the answer is not changed)."""
    positions = []
    equity = portfolio["cash"]
    unrealized = today = Decimal("0.00")
    for held in portfolio["positions"]:
        position = dict(held)
        quote = quotes.get(held["symbol"])
        if quote is not None and quote.get("price") is not None:
            price = quote["price"]
            value = round_money(held["quantity"] * price)
            position.update(price=price, market_value=value, unrealized_pl=value - held["cost"])
            if held["cost"]:
                position["unrealized_percent"] = (100 * (value - held["cost"]) / held["cost"]).quantize(HUNDREDTH)
            previous = quote.get("previous_close", held.get("previous_close"))
            if previous is not None:
                position["previous_close"] = previous
                position["change_today"] = round_money(held["quantity"] * (price - previous))
        equity += position["market_value"]
        unrealized += position["unrealized_pl"]
        today += position.get("change_today") or Decimal("0.00")
        positions.append(position)
    return dict(portfolio, positions=positions, equity=equity, unrealized_pl=unrealized, change_today=today)
