"""Fill models: how a bar prices an order, and how much of it the bar can take.

Both models use only prices that traded after the order arrived.  A bar that
began before the order arrived (its ``start`` is earlier than the order's
``created``) contributes only its close, the one price known to come later; a
bar that began at or after the arrival contributes its open, high, low and close.

``ideal`` (for teaching and tests): every order is judged at the bar's close
only, fills whole, without slippage.

``bar`` (the default) is honest about what a bar tells:

- a market order fills at the bar's open, plus slippage against the trader;
- a limit order fills only if the bar traded *through* its limit (a buy needs a
  low strictly below the limit): at the open if the open was already better than
  the limit (with slippage, never past the limit), else at the limit;
- a stop triggers when the high (buy) or low (sell) reaches it and then fills as
  a market order at the worse of the stop and the open (a gap fills at the
  open); a stop-limit then fills in that bar only if that price is within its
  limit, and waits as a limit order otherwise;
- a trailing stop's level follows the best price since it was placed: it is
  checked against the level as it stands at the bar's open, then the bar's
  high (sell) or low (buy) moves the level for the next bar;
- slippage: ``half_spread_bps + impact_bps x q / liquidity`` basis points of the
  reference price, where ``q`` is the fill's quantity and ``liquidity`` what the bar
  allows; a fill is never priced outside the bar's low-high range;
- liquidity: all orders together take at most ``volume_share`` of a bar's
  volume; what does not fit stays open for later bars (``partially_filled``).
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Optional

from papertrader.money import QUANTITY_STEP, round_price, round_to_tick

from .orders import OrderType, Side, TimeInForce

BPS = Decimal("0.0001")


@dataclass(frozen=True)
class Match:
    """How an order stands against one bar.

    ``price``: the reference price it may fill at in this bar (None: it cannot fill here).
    ``aggressive``: the fill takes liquidity (market-like) and pays slippage; a passive
    limit fill at its limit does not.  ``triggered``/``watermark``: the order's stop state
    after this bar, whether or not it fills.
    """

    price: Optional[Decimal]
    aggressive: bool = False
    triggered: bool = False
    watermark: Optional[Decimal] = None


def bid_ask(price, half_spread_bps):
    """The bid and the ask shown with a last ``price`` (the market's data has trades, not quotes): ``half_spread_bps``
    basis points each side (the fill model's, what a market order pays beside the impact of its size), each on a
    valid tick, rounded away from the price (a cent from $1 up: a $10.00 stock with 2 basis points is bid
    $9.99 and offered at $10.01, never $10.00 both); a bid below the smallest tick is None (no bid)."""
    bid = round_to_tick(price * (1 - half_spread_bps * BPS), ROUND_FLOOR)
    ask = round_to_tick(price * (1 + half_spread_bps * BPS), ROUND_CEILING)
    return (bid if bid > 0 else None), ask


def trail_level(order, watermark):
    """A trailing stop's stop price from its watermark (see :func:`stop_level`)."""
    return stop_level(order.side is Side.SELL, watermark, order.trail_price, order.trail_percent)


def stop_level(sell, watermark, trail_price=None, trail_percent=None):
    """The stop price of a trailing stop (a sell's if ``sell``) at ``watermark``, trailing by ``trail_price`` or
    else ``trail_percent``: on a valid tick, rounded away from the market (a sell's down, a buy's up), so the
    trail is never tighter than the one asked for."""
    offset = trail_price if trail_price is not None else watermark * trail_percent / 100
    if sell:
        return round_to_tick(watermark - offset, ROUND_FLOOR)
    return round_to_tick(watermark + offset, ROUND_CEILING)


def evaluate(order, o, h, l, c, session_bar):
    """Match ``order`` against prices o/h/l/c (pure rules shared by every model).

    ``session_bar`` is "open" if this bar holds the open of the order's session,
    "close" if it holds its close, else None (for ``opg``/``cls`` orders).
    """
    buy = order.side is Side.BUY
    tif = order.time_in_force
    limit = order.limit_price

    def limit_match(reference_open):
        # Marketable at the open: take it (slippage applies, capped at the limit).
        if (buy and reference_open <= limit) or (not buy and reference_open >= limit):
            return Match(reference_open, aggressive=True, triggered=order.triggered, watermark=order.watermark)
        # Traded through the limit later in the bar: a passive fill at the limit.
        if (buy and l < limit) or (not buy and h > limit):
            return Match(limit, triggered=order.triggered, watermark=order.watermark)
        return Match(None, triggered=order.triggered, watermark=order.watermark)

    if tif is TimeInForce.OPG or tif is TimeInForce.CLS:
        wanted = "open" if tif is TimeInForce.OPG else "close"
        if session_bar != wanted:
            return Match(None)
        price = o if tif is TimeInForce.OPG else c
        if order.type is OrderType.LIMIT and ((buy and price > limit) or (not buy and price < limit)):
            return Match(None)
        return Match(price)  # the auction price: no slippage

    kind = order.type
    if kind is OrderType.MARKET:
        return Match(o, aggressive=True)
    if kind is OrderType.LIMIT:
        return limit_match(o)
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT):
        stop = order.stop_price
        if order.triggered:
            return limit_match(o) if kind is OrderType.STOP_LIMIT else Match(o, aggressive=True, triggered=True)
        if (buy and h >= stop) or (not buy and l <= stop):
            trigger = max(stop, o) if buy else min(stop, o)
            if kind is OrderType.STOP:
                return Match(trigger, aggressive=True, triggered=True)
            if (buy and trigger <= limit) or (not buy and trigger >= limit):
                return Match(trigger, aggressive=True, triggered=True)
            return Match(None, triggered=True)
        return Match(None)
    if kind is OrderType.TRAILING_STOP:
        if order.triggered:
            return Match(o, aggressive=True, triggered=True, watermark=order.watermark)
        mark = order.watermark if order.watermark is not None else o
        mark = max(mark, o) if not buy else min(mark, o)
        level = trail_level(order, mark)
        if (not buy and l <= level) or (buy and h >= level):
            trigger = min(level, o) if not buy else max(level, o)
            return Match(trigger, aggressive=True, triggered=True, watermark=mark)
        mark = max(mark, h) if not buy else min(mark, l)
        return Match(None, watermark=mark)
    raise ValueError(f"unknown order type {kind!r}")


class FillModel:
    name = "?"

    def describe(self):
        return self.name

    def match(self, order, bar, session_bar):
        """The order against ``bar``: a Match, or None if the bar ended before the order arrived."""
        if bar.end <= order.created:
            return None
        if bar.start >= order.created and not self.close_only:
            return evaluate(order, bar.open, bar.high, bar.low, bar.close, session_bar)
        c = bar.close
        return evaluate(order, c, c, c, c, session_bar)

    close_only = False

    def limit_rests(self, order, bar):
        """Whether a limit order (not ``opg``/``cls``) finds no price on ``bar``: what ``match`` says (a Match without
        a price, or None), without making a Match.  A market step asks it of every resting order first: most of them
        rest, and a step over thousands of them spent most of its time making Matches that said so.  (A model that
        matches otherwise overrides both.)"""
        if bar.end <= order.created:
            return True
        if bar.start >= order.created and not self.close_only:
            opening, low, high = bar.open, bar.low, bar.high
        else:
            opening = low = high = bar.close
        limit = order.limit_price
        if order.side is Side.BUY:  # (evaluate's limit_match: marketable at the open, or traded through later)
            return opening > limit and low >= limit
        return opening < limit and high <= limit

    def fill_time(self, order, match, bar, now):
        """When a fill on ``match`` happened: at the bar's start if it took the bar's open (a bar that began
        after the order arrived, priced at its open: a market order, a gap through a stop or a limit, an opg
        order), else by ``now``, the end of the step (a bar tells no more about when its other prices traded)."""
        at_open = (not self.close_only and bar.start >= order.created and match.price == bar.open
                   and order.time_in_force is not TimeInForce.CLS)
        return min(bar.start, now) if at_open else now

    def liquidity(self, bar):
        """Most shares all orders together may take from ``bar`` (None: no limit)."""
        return None

    def price(self, order, match, quantity, liquidity, bar):
        """The fill price of ``quantity`` shares on a Match: the reference price plus slippage."""
        return match.price


@dataclass(frozen=True)
class IdealFillModel(FillModel):
    """Every order judged at the bar's close, filled whole, no slippage."""

    name = "ideal"
    close_only = True


@dataclass(frozen=True)
class BarFillModel(FillModel):
    half_spread_bps: Decimal = Decimal("2")
    impact_bps: Decimal = Decimal("10")
    volume_share: Decimal = Decimal("0.1")

    name = "bar"

    def describe(self):
        return (f"bar(half_spread_bps={self.half_spread_bps}, impact_bps={self.impact_bps},"
                f" volume_share={self.volume_share})")

    def liquidity(self, bar):
        return (Decimal(bar.volume) * self.volume_share).quantize(QUANTITY_STEP, rounding=ROUND_DOWN)

    def price(self, order, match, quantity, liquidity, bar):
        if not match.aggressive:
            return match.price
        participation = quantity / liquidity if liquidity else Decimal(1)
        bps = self.half_spread_bps + self.impact_bps * min(participation, Decimal(1))
        if order.side is Side.BUY:
            price = round_price(match.price * (1 + bps * BPS))
            if order.limit_price is not None:
                price = min(price, order.limit_price)
        else:
            price = round_price(match.price * (1 - bps * BPS))
            if order.limit_price is not None:
                price = max(price, order.limit_price)
        return min(max(price, bar.low), bar.high)
