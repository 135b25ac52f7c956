"""The order ticket: its form as PlaceOrder's arguments, and the preview of what an order would cost.

The preview runs the trading core's own rules (papertrader/trading/pretrade.py: the order's shape,
and the cash a buy reserves: at its limit price, else the last price plus ``market_buy_buffer``, plus
its commission) on the worker's newest quote and the account's buying power, so the person sees the
figure the master will check before they send the order.  It uses this worker's configuration of the
rules (commission and buffer): give workers the master's config file.  The master still decides.
"""

import json
from datetime import datetime, timezone
from decimal import ROUND_CEILING, Decimal, InvalidOperation

from papertrader.errors import InvalidInput, PaperTraderError
from papertrader.master import validation
from papertrader.money import CENT, QUANTITY_STEP, round_money
from papertrader.trading.orders import Order, OrderRequest, OrderType, Side, Status, TimeInForce
from papertrader.trading.pretrade import MAX_NOTIONAL, MIN_NOTIONAL, check_shape, reservation
from papertrader.worker.web import formatting as fmt

FIELDS = ("side", "type", "amount_by", "qty", "notional", "limit_price", "stop_price", "trail_by", "trail",
          "time_in_force")


def rules(settings):
    from papertrader.app.trading import rules_from

    return rules_from(settings)


def order_arguments(form):
    """The ticket's fields as PlaceOrder's arguments: only those the chosen type uses (a field the page
    hid keeps what was typed in it, and is ignored)."""
    kind = form.get("type") or "market"
    arguments = dict(side=form.get("side") or "buy", type=kind, time_in_force=form.get("time_in_force") or "day")
    if form.get("amount_by") == "dollars":
        arguments["notional"] = form.get("notional") or None
        if arguments["notional"] is None:
            raise InvalidInput("enter the amount in dollars")
        _check_amount(arguments["notional"])
    else:
        arguments["quantity"] = form.get("qty") or None
        if arguments["quantity"] is None:
            raise InvalidInput("enter how many shares")
    if kind in ("limit", "stop_limit"):
        arguments["limit_price"] = form.get("limit_price") or None
    if kind in ("stop", "stop_limit"):
        arguments["stop_price"] = form.get("stop_price") or None
    if kind == "trailing_stop":
        key = "trail_price" if form.get("trail_by") == "price" else "trail_percent"
        arguments[key] = form.get("trail") or None
    return {k: v for k, v in arguments.items() if v is not None}


def _check_amount(text):
    """The trading core's bounds of a notional order (pretrade.check_shape), said as money on the page: the
    core's own words ('from 1.00 to 1000000000') are those of every client.  Text that is no number at all is
    left to the master's check, which says so."""
    try:
        amount = Decimal(text.strip())
    except InvalidOperation:
        return
    if not amount.is_finite() or amount < MIN_NOTIONAL or amount > MAX_NOTIONAL or amount != amount.quantize(CENT):
        raise InvalidInput(f"the amount must be from {fmt.money(MIN_NOTIONAL)} to {fmt.money(MAX_NOTIONAL)}, in"
                           " dollars and cents")


def _request(symbol, arguments):
    try:
        kind = OrderType(arguments["type"])
        tif = TimeInForce(arguments["time_in_force"])
        side = Side(validation.side(arguments["side"]))
    except ValueError:
        raise InvalidInput("choose a side, an order type and a time in force")
    return OrderRequest(
        account_id=0, client_order_id="preview", symbol=symbol, side=side, type=kind, time_in_force=tif,
        quantity=validation.quantity(arguments["quantity"]) if arguments.get("quantity") else None,
        notional=validation.money_amount("amount", arguments.get("notional")),
        limit_price=validation.price("limit price", arguments.get("limit_price")),
        stop_price=validation.price("stop price", arguments.get("stop_price")),
        trail_price=validation.price("trail", arguments.get("trail_price")),
        trail_percent=validation.percent("trail percent", arguments.get("trail_percent")))


def preview(form, symbol, quote, portfolio, rules):
    """What the ticket would do now: {"ok", "cost", "after", "note"} (texts for the page)."""
    answer = {"ok": False, "cost": "—", "after": "—", "note": "",
              "buying_power": fmt.money(portfolio["buying_power"])}
    if not (form.get("qty") if form.get("amount_by") != "dollars" else form.get("notional")):
        answer["ok"] = True
        return answer  # nothing typed yet: nothing to say
    try:
        request = _request(symbol, order_arguments(form))
        check_shape(request)
    except PaperTraderError as e:
        answer["note"] = _sentence(e.message)
        return answer
    last = quote["price"] if quote else None
    if last is None:
        answer["note"] = "No price yet for this asset: try again after the next update."
        return answer
    order = Order(id=None, account_id=0, client_order_id="preview", symbol=symbol, side=request.side,
                  type=request.type, time_in_force=request.time_in_force, status=Status.NEW,
                  created=datetime.now(timezone.utc), quantity=request.quantity, notional=request.notional,
                  limit_price=request.limit_price, stop_price=request.stop_price, trail_price=request.trail_price,
                  trail_percent=request.trail_percent)
    held = next((p["quantity"] for p in portfolio["positions"] if p["symbol"] == symbol), Decimal(0))
    if request.side is Side.BUY:
        needed = reservation(order, last, rules, remember=False)
        after = portfolio["buying_power"] - needed
        answer.update(ok=after >= 0, cost=fmt.money(needed), after=fmt.money(after))
        buffered = request.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT) and request.notional is None
        note = (f"Reserved at the last price {fmt.price(last)} plus {_plain(rules.market_buy_buffer * 100)}% for"
                " price moves, and its commission; a market order pays the price of its fill." if buffered else
                "Reserved at your limit price, plus its commission." if request.notional is None else
                "A notional order reserves its amount.")
        answer["note"] = note if after >= 0 else "Not enough buying power for this order."
        return answer
    shares = request.quantity if request.quantity is not None else \
        (request.notional / last).quantize(QUANTITY_STEP, rounding=ROUND_CEILING)
    reference = request.limit_price or request.stop_price or last
    proceeds = round_money(shares * reference)
    answer.update(ok=shares <= held, cost=f"{fmt.money(proceeds)} proceeds", after=fmt.money(portfolio["buying_power"]))
    answer["note"] = (f"You hold {fmt.quantity(held)} {symbol}." if shares <= held else
                      f"You hold {fmt.quantity(held)} {symbol}: short selling is not allowed.")
    return answer


def _plain(value):
    return fmt.number_text(Decimal(value).normalize())


def _sentence(text):
    text = text.strip()
    return (text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else text


def as_json(answer):
    return json.dumps(answer, separators=(",", ":")).encode("utf-8")
