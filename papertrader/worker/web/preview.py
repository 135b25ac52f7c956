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
from papertrader.trading.fill_models import stop_level
from papertrader.trading.orders import Order, OrderClass, OrderRequest, OrderType, Side, Status, TimeInForce
from papertrader.trading.pretrade import (
    MAX_NOTIONAL,
    MIN_NOTIONAL,
    check_request,
    check_stop_side,
    reservation,
    short_reservation,
)
from papertrader.worker.web import formatting as fmt

FIELDS = ("side", "type", "amount_by", "qty", "notional", "limit_price", "stop_price", "trail_by", "trail",
          "time_in_force", "take_profit", "stop_loss", "stop_loss_limit")
EXITS = ("take_profit", "stop_loss", "stop_loss_limit")
#: The fields that are numbers: typed as people write them ('$1,250.50'), read as numbers.
NUMBERS = ("qty", "notional", "limit_price", "stop_price", "trail") + EXITS
#: The order types that take exits (papertrader/trading/contingent.py): the page hides them for the others.
EXIT_TYPES = ("market", "limit", "stop", "stop_limit")


def rules(settings):
    from papertrader.app.trading import rules_from

    return rules_from(settings)


def has_exits(form):
    """Does the ticket ask for exits (a take-profit or a stop-loss), where the page shows them (by shares, an order
    type that takes them)?"""
    return form.get("amount_by") != "dollars" and (form.get("type") or "market") in EXIT_TYPES and \
        any(form.get(k) for k in EXITS)


def order_class(form, held):
    """The class the ticket's exits make (None: none): an order that closes a position held (a sell of shares held,
    a buy of a short position) is an OCO order; one that opens or adds to one a bracket order with both exits, an
    OTO order with one.  ``held``: the portfolio's quantity of the asset (negative: short)."""
    if not has_exits(form):
        return None
    closing = (form.get("side") == "sell" and held > 0) or (form.get("side") == "buy" and held < 0)
    if closing:
        return "oco"
    return "bracket" if form.get("take_profit") and form.get("stop_loss") else "oto"


def order_arguments(form, held=Decimal(0)):
    """The ticket's fields as PlaceOrder's arguments: only those the chosen type uses (a field the page
    hid keeps what was typed in it, and is ignored).  With exits, a bracket, OTO or OCO order (``order_class``;
    ``held``: the quantity of the asset the portfolio holds)."""
    kind = form.get("type") or "market"
    if form.get("amount_by") != "dollars" and "$" in (form.get("qty") or ""):
        # '$100' in the shares box is a hundred dollars meant, never a hundred shares.
        raise InvalidInput("the amount is in shares, not dollars: to buy or sell a dollar amount, choose Dollars")
    form = {k: (fmt.typed_number(v) if k in NUMBERS and isinstance(v, str) else v) for k, v in form.items()}
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
    chosen = order_class(form, held)
    if chosen is not None:
        if arguments["time_in_force"] not in ("day", "gtc"):
            raise InvalidInput("an order with exits (a take-profit or a stop-loss) takes time in force Day or GTC")
        if chosen == "oco" and kind in ("market", "limit") and form.get("take_profit") and \
                (kind == "market" or not arguments.get("limit_price")):
            # Exits on shares held: an OCO order, a limit order at the take-profit (one number, typed once).
            arguments.update(type="limit", limit_price=form["take_profit"])
        elif chosen == "oco" and kind != "limit":
            what = "a sale of shares you hold" if form.get("side") == "sell" else "a buy that covers a short position"
            raise InvalidInput(f"exits on {what} make an OCO order, which is a limit order: choose Limit (its limit"
                               " price is the take-profit) and a stop-loss stop price")
        arguments["order_class"] = chosen
        for name in EXITS:
            arguments[name] = form.get(name) or None
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
        trail_percent=validation.percent("trail percent", arguments.get("trail_percent")),
        order_class=OrderClass(arguments.get("order_class") or "simple"),
        take_profit=validation.price("take-profit limit price", arguments.get("take_profit")),
        stop_loss=validation.price("stop-loss stop price", arguments.get("stop_loss")),
        stop_loss_limit=validation.price("stop-loss limit price", arguments.get("stop_loss_limit")))


def exits_note(request):
    """What a bracket, OTO or OCO order's exits will do, in a sentence ('' for a simple order)."""
    kind = request.order_class
    if kind is OrderClass.SIMPLE:
        return ""
    exits = []
    if request.take_profit is not None or kind is OrderClass.OCO:
        exits.append(f"a take-profit at {fmt.price(request.take_profit or request.limit_price)}")
    if request.stop_loss is not None:
        exits.append(f"a stop-loss at {fmt.price(request.stop_loss)}" +
                     (f" (limit {fmt.price(request.stop_loss_limit)})" if request.stop_loss_limit is not None else ""))
    # Exits take the order's time in force: as day orders they end at the close, filled or not.
    day = request.time_in_force is TimeInForce.DAY
    lasting = " Its exits are day orders too: they expire at the close unfilled (choose GTC to keep them)." \
        if day else ""
    if kind is OrderClass.OCO:
        return (f"An OCO order: {' and '.join(exits)}; whichever fills first cancels the other.{lasting}")
    then = "sell what it bought" if request.side is Side.BUY else "buy back what it sold"
    if kind is OrderClass.BRACKET:
        return (f"A bracket order: {' and '.join(exits)}, held until this order fills, then open to {then};"
                f" whichever fills first cancels the other.{lasting}")
    lasting = " Its exit is a day order too: it expires at the close unfilled (choose GTC to keep it)." if day else ""
    return f"An OTO order: {exits[0]}, held until this order fills, then open to {then}.{lasting}"


def game_refusal(request, symbol, last, held, portfolio, game):
    """What a game's rules (``game``: a Games answer's game, None outside one) would refuse of this order, in a
    sentence (None: nothing): the game not open, an asset it does not trade, a position larger than it allows
    (papertrader/trading/games.py check_order, which the master runs; counted here without the open orders it
    adds, so the master may still refuse what this lets through)."""
    if game is None:
        return None
    if game["status"] == "upcoming":
        return f"{game['name']} starts {fmt.when_or_day(game['start'])}: its orders are taken from then."
    if game["status"] == "ended":
        return f"{game['name']} has ended: it takes no more orders."
    if game["assets"] and symbol not in game["assets"]:
        return f"{symbol} is not traded in {game['name']} (its assets: {', '.join(game['assets'])})."
    limit = game.get("max_position")
    buy = request.side is Side.BUY
    if limit is None or not (held >= 0 if buy else held <= 0):  # only an order that opens or adds to a position
        return None
    # Each part at its own price, as the master values it: the position at the last price, the order at its limit,
    # a stop at the higher of its stop and the last price, else the last price.
    price = request.limit_price if request.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else \
        max(last, request.stop_price) if request.type is OrderType.STOP and request.stop_price is not None else last
    adds = request.notional if request.quantity is None else request.quantity * price
    value = round_money(abs(held) * last + adds)
    allowed = round_money(portfolio["equity"] * limit / 100)
    if value <= allowed:
        return None
    return (f"In {game['name']} one position may be worth at most {fmt.percent(limit, signed=False)} of the portfolio"
            f" ({fmt.money(max(allowed, Decimal(0)))}): {symbol} would be worth {fmt.money(value)}.")


def settings_refusal(request, configuration):
    """What the portfolio's trading settings (``configuration``: a PortfolioConfiguration answer, None if unknown)
    would refuse of this order, in a sentence (None: nothing): a fraction of a share or a dollar amount with
    fractional shares off (papertrader/trading/configuration.py check_order, which the master runs)."""
    if not configuration or configuration.get("fractional_trading") is not False:
        return None
    if request.notional is not None:
        return ("Fractional shares are off in this portfolio: an order for a dollar amount would be refused. Give a"
                " whole number of shares, or turn fractional shares on in its settings.")
    if request.quantity is not None and request.quantity != request.quantity.to_integral_value():
        return (f"Fractional shares are off in this portfolio: {fmt.quantity(request.quantity)} is not a whole"
                " number of shares, and would be refused.")
    return None


def daily_note(request, fill_model, reserved=None):
    """What an order should know on a market of daily bars (a replay of whole sessions, each one bar), in a
    sentence ('' for a limit order: ``limit_note`` says where a marketable one fills): the price shown is the last
    close; a market order fills at the next session's open (the ``ideal`` fill model, or a ``cls`` order: its
    close), which may be far from it; a stop (or trailing stop) that the next session opens past triggers at that
    open and fills there, not at the stop (the ``ideal`` model judges a stop at each session's close, and fills it
    there).  A buy's reservation (``reserved``: the buffer, in percent) covers a move that far, and a bigger gap
    costs more than the preview said (fill_models.py: the rules these words say)."""
    kind = request.type
    beyond = f" (beyond the {reserved}% reserved, it costs more than shown here)" if reserved is not None else ""
    ideal = fill_model == "ideal"
    if kind is OrderType.MARKET:  # (a cls order: at the close, whatever the model)
        at = "close" if ideal or request.time_in_force is TimeInForce.CLS else "open"
        return (f"On this market of daily bars the price shown is the last close: the order fills at the next"
                f" session's {at}, which may differ{beyond}.")
    if kind in (OrderType.STOP, OrderType.TRAILING_STOP):
        if ideal:
            return (f"On this market of daily bars a stop is judged at each session's close: the order fills at the"
                    f" first close at or past its stop, which may be far from it{beyond}.")
        return (f"On this market of daily bars, if a session opens past the stop, the order triggers at that open"
                f" and fills there, which may be far from the stop{beyond}.")
    if kind is OrderType.STOP_LIMIT:
        if ideal:
            return ("On this market of daily bars a stop is judged at each session's close: the first close at or"
                    " past the stop triggers the order, and it fills there only within your limit (else it waits as"
                    " a limit order).")
        return ("On this market of daily bars, if a session opens past the stop, the order triggers at that open"
                " and fills there only within your limit (else it waits as a limit order).")
    return ""


def limit_note(request, last, daily=False, fill_model=None):
    """What a marketable limit order (a buy's limit at or above the last price, a sale's at or below it) will do, in
    a sentence: fill at once, at about the last price; an ``opg`` (``cls``) order at the open (close) only, if that
    price is within its limit.  On a market of daily bars (``daily``), where the last price is the last close: at
    the next session's open (the ``ideal`` fill model, or a ``cls`` order: its close), at the limit or better; a
    session that opens past the limit fills it only if it trades through the limit later, at the limit (an
    auction order, or any order of the ``ideal`` model, only at that one price: fill_models.evaluate)."""
    buy = request.side is Side.BUY
    near, within = ("at or above", "at or below") if buy else ("at or below", "at or above")
    better, past, through = ("less", "above", "below") if buy else ("more", "below", "above")
    tif = request.time_in_force
    auction = tif in (TimeInForce.OPG, TimeInForce.CLS)
    if not daily:
        if auction:
            what, at = ("an opg", "open") if tif is TimeInForce.OPG else ("a cls", "close")
            return (f"Your limit is {near} the last price, {fmt.price(last)}: {what} order fills at the {at} only,"
                    f" at that price, if it is {within} your limit.")
        return (f"Your limit is {near} the last price, {fmt.price(last)}: it will likely fill at once, at about that"
                f" price (a limit {'buy pays' if buy else 'sale gets'} its limit or {better}).")
    at = "close" if fill_model == "ideal" or tif is TimeInForce.CLS else "open"
    said = f"Your limit is {near} the last close, {fmt.price(last)}: on this market of daily bars"
    if fill_model == "ideal" or auction:
        return f"{said} it fills at the next session's {at}, at that price, if it is {within} your limit."
    return (f"{said} it will likely fill at the next session's open, at your limit or {better} (if the session opens"
            f" {past} your limit, it fills only once the price trades {through} it, at your limit).")


SUSPENDED = ("Trading is suspended in this portfolio: this order would be refused. Turn it back on in its settings"
             " (Portfolios, Manage).")


def preview(form, symbol, quote, portfolio, rules, game=None, configuration=None, daily=False):
    """What the ticket would do now: {"ok", "cost", "after", "note"} (texts for the page).  A game's portfolio
    pays the game's commission (``commission_model`` of the portfolio answer), and its order is checked against the
    game's rules (``game``: the game the portfolio plays in, as Games shows it) and the portfolio's trading settings
    (``configuration``: trading suspended, fractional shares off; None: not known).  ``daily``: the market moves a
    whole session per update (daily bars): a market order is said to fill at the next session's open, a marketable
    limit order there too (not at once), and a stop that the session opens past at that open."""
    if portfolio.get("commission_model"):
        from dataclasses import replace

        from papertrader.trading.games import parse_commission

        rules = replace(rules, commission_model=parse_commission(portfolio["commission_model"]))
    answer = {"ok": False, "cost": "—", "after": "—", "note": "",
              "buying_power": fmt.money(portfolio["buying_power"])}
    if (configuration or {}).get("suspend_trade") or portfolio.get("suspend_trade"):
        answer["note"] = SUSPENDED  # whatever is typed: said as soon as the page shows the ticket
        return answer
    if not (form.get("qty") if form.get("amount_by") != "dollars" else form.get("notional")):
        answer["ok"] = True
        return answer  # nothing typed yet: nothing to say
    position = next((p for p in portfolio["positions"] if p["symbol"] == symbol), None)
    held = position["quantity"] if position is not None else Decimal(0)
    last = quote["price"] if quote else None
    try:
        request = _request(symbol, order_arguments(form, held))
        request = check_request(request, last)  # (an OCO order's limit price is its take-profit's)
        check_stop_side(request, last)  # as the master checks a new order
    except PaperTraderError as e:
        answer["note"] = _sentence(fmt.said(e.message))
        return answer
    if last is None:
        answer["note"] = "No price yet for this asset: try again after the next update."
        return answer
    refused = settings_refusal(request, configuration) or game_refusal(request, symbol, last, held, portfolio, game)
    if refused:
        answer["note"] = refused
        return answer
    exits = exits_note(request)
    # (a game's own fill model, else the deployment's)
    fill_model = (game or {}).get("fill_model") or getattr(rules.fill_model, "name", None)

    def gap(reserved=None):
        return daily_note(request, fill_model, reserved) if daily else ""

    order = Order(id=None, account_id=0, client_order_id="preview", symbol=symbol, side=request.side,
                  type=request.type, time_in_force=request.time_in_force, status=Status.NEW,
                  created=datetime.now(timezone.utc), quantity=request.quantity, notional=request.notional,
                  limit_price=request.limit_price, stop_price=request.stop_price, trail_price=request.trail_price,
                  trail_percent=request.trail_percent)
    margin = portfolio.get("kind") == "margin"
    if request.side is Side.BUY and margin and held < 0:  # a buy to cover: it needs no buying power
        covers = request.quantity is not None and request.quantity <= -held
        answer.update(ok=covers, cost="—", after=fmt.money(portfolio["buying_power"]), label="Reserved (up to)")
        answer["note"] = (" ".join(filter(None, (exits,
                                                f"It covers {fmt.quantity(request.quantity)} of the"
                                                f" {fmt.quantity(-held)} {symbol} you are short: a cover needs no"
                                                " buying power.", gap())))
                          if covers else f"You are short {fmt.quantity(-held)} {symbol}: a buy covers at most that"
                                         " many shares, given as a number of shares (cover first, then buy).")
        return answer
    if request.side is Side.SELL and margin and held <= 0:  # a short sale
        if (configuration or {}).get("no_shorting") or portfolio.get("no_shorting"):
            answer["note"] = ("Long only: short selling is turned off in this portfolio's settings, and you hold no"
                              f" {symbol}: this sale would be refused.")
            return answer
        if request.quantity is None or request.quantity != request.quantity.to_integral_value():
            answer["note"] = ("A short sale is a whole number of shares, given as a number of shares (not a dollar"
                              " amount): this sale would be refused.")
            return answer
        needed = short_reservation(order, last, rules)
        after = portfolio["buying_power"] - needed
        answer.update(ok=after >= 0, cost=fmt.money(needed), after=fmt.money(after), label="Reserved (up to)")
        # (as pretrade.short_reservation: at the highest of its prices and the last, a buffer unless a limit order)
        price = max(p for p in (request.limit_price, request.stop_price, last) if p is not None)
        buffer = "" if request.type is OrderType.LIMIT else \
            f" plus {_plain(rules.market_buy_buffer * 100)}% for price moves"
        answer["note"] = " ".join(filter(None, (
            exits,
            f"A short sale: you sell {symbol} you borrow. Until it fills it keeps {fmt.money(needed)} of your margin"
            f" buying power ({fmt.quantity(request.quantity)} shares at {fmt.price(price)}{buffer}, and its"
            " commission); once filled, the value of the shares short counts against it until you buy them back.",
            gap()))) if after >= 0 else "Not enough buying power for this short sale."
        return answer
    if request.side is Side.BUY:
        needed = reservation(order, last, rules, remember=False)
        after = portfolio["buying_power"] - needed
        answer.update(ok=after >= 0, cost=fmt.money(needed), after=fmt.money(after), label="Reserved (up to)")
        buffered = request.type not in (OrderType.LIMIT, OrderType.STOP_LIMIT) and request.notional is None
        stop = "once triggered it buys at the market and pays the price of its fill"
        basis, pays = (
            (f"its stop price {fmt.price(request.stop_price)}", stop) if request.type is OrderType.STOP else
            ("its starting stop (the last price plus the trail)", stop) if request.type is OrderType.TRAILING_STOP
            else (f"the last price {fmt.price(last)}", "a market order pays the price of its fill"))
        note = (f"Reserved at {basis} plus {_plain(rules.market_buy_buffer * 100)}% for price moves, and its"
                f" commission; {pays}." if buffered else
                "Reserved at your limit price, plus its commission." if request.notional is None else
                "A notional order reserves its amount.")
        if request.type is OrderType.LIMIT and request.limit_price >= last:
            note += " " + limit_note(request, last, daily, fill_model)
        answer["note"] = " ".join(filter(None, (exits, note, gap(
            _plain(rules.market_buy_buffer * 100) if request.notional is None else None)))) if after >= 0 else \
            "Not enough buying power for this order."
        return answer
    shares = request.quantity if request.quantity is not None else \
        (request.notional / last).quantize(QUANTITY_STEP, rounding=ROUND_CEILING)
    # What it would bring: at its limit (the least a limit sale takes), at its stop (where a stop sells once the
    # price falls to it: below the last price, as the master requires), a trailing stop's at its starting stop
    # (the last price less the trail: it sells there if the price falls from here), else (a market sale) at the
    # last price.
    reference = request.limit_price or request.stop_price or last
    if request.type is OrderType.TRAILING_STOP:
        reference = stop_level(True, last, request.trail_price, request.trail_percent)
    marketable = request.type is OrderType.LIMIT and request.limit_price <= last
    if marketable:  # it sells at once, at about the last price: not at its lower limit
        reference = last
    proceeds = round_money(shares * reference)
    # What open sales (and exits) already keep of the position is not free to sell (the master's qty_available).
    free = position.get("available", held) if position is not None else held
    kept = held - free if 0 <= free < held else Decimal(0)
    answer.update(ok=shares <= held - kept, cost=fmt.money(proceeds), after=fmt.money(portfolio["buying_power"]),
                  label="Estimated proceeds")
    answer["note"] = (
        f"You hold {fmt.quantity(held)} {symbol}" + (f", {fmt.quantity(kept)} of them kept by your open orders" if kept
                                                     else "") + "." if shares <= held - kept else
        f"You hold {fmt.quantity(held)} {symbol}, {fmt.quantity(kept)} of them kept by your open orders: "
        f"{fmt.quantity(held - kept)} free to sell (cancel or change those orders first)." if shares <= held else
        f"You hold {fmt.quantity(held)} {symbol}: a sale may not turn a long position short (sell"
        " what you hold first, then sell short)." if margin else
        f"You hold {fmt.quantity(held)} {symbol}: short selling is not allowed in a cash portfolio.")
    if answer["ok"]:
        answer["note"] = " ".join(filter(None, (
            exits, answer["note"],
            limit_note(request, last, daily, fill_model) if marketable else "", gap())))
    return answer


def _plain(value):
    return fmt.number_text(Decimal(value).normalize())


def _sentence(text):
    text = text.strip()
    return (text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")) if text else text


def as_json(answer):
    return json.dumps(answer, separators=(",", ":")).encode("utf-8")


#: The replace page's fields (as its form names them).
REPLACE_FIELDS = ("qty", "limit_price", "stop_price", "trail_by", "trail", "time_in_force")


def _as_order(view, **changes):
    """An open order as GetOrder answers it, as the trading core's Order (for what it keeps of buying power), with
    ``changes``: what it has filled stays (a replacement asks for what it names, beside what filled)."""
    filled = view.get("filled_quantity") or Decimal(0)
    fields = dict(
        id=view.get("id"), account_id=0, client_order_id=view.get("client_order_id") or "preview",
        symbol=view["symbol"], side=Side(view["side"]), type=OrderType(view["type"]),
        time_in_force=TimeInForce(view["time_in_force"]), status=Status.NEW,
        created=view.get("created") or datetime.now(timezone.utc), quantity=view.get("quantity"),
        notional=view.get("notional"), limit_price=view.get("limit_price"), stop_price=view.get("stop_price"),
        trail_price=view.get("trail_price"), trail_percent=view.get("trail_percent"), filled_quantity=filled,
        filled_value=filled * (view.get("average_price") or Decimal(0)),
        commission=view.get("commission") or Decimal("0.00"), watermark=view.get("watermark"))
    fields.update(changes)
    return Order(**fields)


def _changes(form, old):
    """The replace form's changes as the new order's fields (as amend.replace makes it: a new order, nothing of it
    filled, for the shares typed, by default what the old order had left; each price the old one's unless typed)."""
    typed = {k: fmt.typed_number(form.get(k) or "") for k in ("qty", "limit_price", "stop_price", "trail")}
    if "$" in (form.get("qty") or ""):
        raise InvalidInput("the amount is in shares, not dollars")
    changes = dict(filled_quantity=Decimal(0), filled_value=Decimal(0), commission=Decimal("0.00"))
    if typed["qty"]:
        changes["quantity"] = validation.quantity(typed["qty"])
    elif old.get("quantity") is not None:
        changes["quantity"] = old["quantity"] - (old.get("filled_quantity") or Decimal(0))
    if typed["limit_price"]:
        changes["limit_price"] = validation.price("limit price", typed["limit_price"])
    if typed["stop_price"]:
        changes["stop_price"] = validation.price("stop price", typed["stop_price"])
    if typed["trail"]:
        if form.get("trail_by") == "price":
            changes.update(trail_price=validation.price("trail", typed["trail"]), trail_percent=None)
        else:
            changes.update(trail_percent=validation.percent("trail percent", typed["trail"]), trail_price=None)
    return changes


def replace_preview(form, old, quote, portfolio, rules):
    """What replacing the open order ``old`` (as GetOrder answers it) by the one the replace page's ``form``
    describes would do to buying power: the old order's reservation is freed and the new one's taken (the master
    checks a replacement so: trading/amend.py), counted by the same rules as the ticket's preview.  A sale of
    shares held (or a buy to cover) keeps no buying power: said so."""
    if portfolio.get("commission_model"):  # a game's own
        from dataclasses import replace

        from papertrader.trading.games import parse_commission

        rules = replace(rules, commission_model=parse_commission(portfolio["commission_model"]))
    power = portfolio["buying_power"]
    answer = {"ok": True, "cost": "—", "after": fmt.money(power), "note": "", "buying_power": fmt.money(power),
              "label": "Reserved (up to)"}
    symbol = old["symbol"]
    position = next((p for p in portfolio["positions"] if p["symbol"] == symbol), None)
    held = position["quantity"] if position is not None else Decimal(0)
    margin = portfolio.get("kind") == "margin"
    buys = old["side"] == "buy" and not (margin and held < 0)
    shorts = old["side"] == "sell" and margin and held <= 0
    if not (buys or shorts):
        answer["note"] = ("A buy to cover keeps no buying power." if old["side"] == "buy" else
                          f"A sale of {symbol} you hold keeps no buying power.")
        return answer
    last = quote["price"] if quote else None
    if last is None:
        answer.update(ok=False, after="—", note="No price yet for this asset: try again after the next update.")
        return answer
    try:
        new = _as_order(old, **_changes(form, old))
    except PaperTraderError as e:
        answer.update(ok=False, after="—", note=_sentence(fmt.said(e.message)))
        return answer
    keeps = (lambda order: reservation(order, last, rules, remember=False)) if buys else \
        (lambda order: short_reservation(order, last, rules))
    before, after = keeps(_as_order(old)), keeps(new)
    left = power + before - after
    answer.update(ok=left >= 0, cost=fmt.money(after), after=fmt.money(left))
    answer["note"] = (f"The old order keeps {fmt.money(before)} of your buying power; replaced, that is freed and the"
                      f" new one keeps {fmt.money(after)}." if left >= 0 else
                      f"Not enough buying power for this replacement: the new order would keep {fmt.money(after)},"
                      f" and {fmt.money(power + before)} is free once the old one's {fmt.money(before)} is freed.")
    return answer
