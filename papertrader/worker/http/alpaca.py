"""Alpaca's JSON shapes of PaperTrader's values, as alpaca-py 0.44 parses them.

Money and quantities are JSON strings (alpaca-py's models reject numbers where Alpaca sends
strings), enums lower-case and closed, ids UUIDs, times RFC 3339 in UTC with a ``Z``.  Every
function takes the plain values the application layer answers with and returns a dict ready for
:func:`dumps`, which writes a Decimal as a JSON number with its exact digits (market data and
portfolio history are numbers in Alpaca's API; no float is ever made).
"""

import json
from datetime import datetime, time, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from papertrader.money import money_text, price_text, quantity_text
from papertrader.trading.fill_models import stop_level

#: Exchanges alpaca-py's closed AssetExchange enum knows; any other is sent as "".
EXCHANGES = frozenset({"AMEX", "ARCA", "ASCX", "BATS", "NYSE", "NASDAQ", "NYSEARCA", "FTXU", "CBSE", "GNSS",
                       "ERSX", "OTC", "CRYPTO"})
#: Asset classes alpaca-py's AssetClass enum knows.
ASSET_CLASSES = frozenset({"us_equity", "us_option", "crypto", "crypto_perp"})
_encode_text = json.encoder.encode_basestring_ascii


def dumps(value):
    """JSON bytes of ``value`` (dicts, lists, text, numbers, Decimals, booleans, None), compact."""
    out = []
    _encode(value, out.append)
    return "".join(out).encode("ascii")


def _encode(value, write):
    if isinstance(value, str):
        write(_encode_text(value))
    elif value is None:
        write("null")
    elif value is True:
        write("true")
    elif value is False:
        write("false")
    elif isinstance(value, Decimal):
        write(plain(value))
    elif isinstance(value, int):
        write(str(value))
    elif isinstance(value, dict):
        write("{")
        first = True
        for key, item in value.items():
            if not first:
                write(",")
            first = False
            write(_encode_text(key))
            write(":")
            _encode(item, write)
        write("}")
    elif isinstance(value, (list, tuple)):
        write("[")
        for i, item in enumerate(value):
            if i:
                write(",")
            _encode(item, write)
        write("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} as JSON")


def plain(value):
    """A Decimal's digits without an exponent or trailing zeros (``100.50`` -> ``100.5``)."""
    if value == value.to_integral_value():
        return format(value.quantize(Decimal(1)), "f")
    return format(value.normalize(), "f")


def exchange(name):
    name = (name or "").upper()
    return name if name in EXCHANGES else ""

ACCOUNT_NUMBER_PREFIX = "PT"


def when(moment):
    """RFC 3339 in UTC with a Z, microseconds (Alpaca sends nanoseconds; alpaca-py takes either)."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def number(value, kind="plain"):
    """A Decimal as the string Alpaca sends (None stays None)."""
    if value is None:
        return None
    if kind == "money":
        return money_text(value)
    if kind == "price":
        return price_text(value)
    if kind == "quantity":
        return quantity_text(value)
    return format(value.normalize() if value == value.to_integral_value() else value, "f")


def order(o):
    """An order (as the application's ``order_view`` answers it) as Alpaca's Order."""
    status = o["status"]
    updated = when(o.get("updated"))
    filled = o.get("filled_quantity") or Decimal(0)
    return {
        "id": o["uuid"],
        "client_order_id": o["client_order_id"],
        "created_at": when(o["created"]),
        "updated_at": updated,
        "submitted_at": when(o["created"]),
        "filled_at": updated if status == "filled" else None,
        "expired_at": updated if status == "expired" else None,
        "expires_at": when(o.get("expires")),
        "canceled_at": updated if status == "canceled" else None,
        "failed_at": updated if status == "rejected" else None,
        "replaced_at": updated if status == "replaced" else None,
        "replaced_by": o.get("replaced_by_uuid"),
        "replaces": o.get("replaces_uuid"),
        "asset_id": o.get("asset_id"),
        "symbol": o["symbol"],
        "asset_class": "us_equity",
        "notional": number(o.get("notional"), "money"),
        "qty": number(o.get("quantity"), "quantity"),
        "filled_qty": number(filled, "quantity"),
        "filled_avg_price": number(o.get("average_price"), "price"),
        "order_class": o.get("order_class") or "simple",
        "order_type": o["type"],
        "type": o["type"],
        "side": o["side"],
        # As when it was accepted; an order stored before schema version 16 is told by its side.
        "position_intent": o.get("position_intent") or ("buy_to_open" if o["side"] == "buy" else "sell_to_close"),
        "time_in_force": o["time_in_force"],
        "limit_price": number(o.get("limit_price"), "price"),
        "stop_price": number(stop_price(o), "price"),
        "status": status,
        "extended_hours": False,
        "legs": [order(leg) for leg in o["legs"]] if o.get("legs") else None,
        "trail_percent": number(o.get("trail_percent")),
        "trail_price": number(o.get("trail_price"), "price"),
        "hwm": number(o.get("watermark"), "price"),
        "commission": number(o.get("commission"), "money"),
        "reason": o.get("reason"),
    }


def stop_price(o):
    """An order's stop price; a trailing stop's is its current stop level, as Alpaca shows it: the level the
    trading core keeps while it is open, else the one of its last watermark."""
    if o["type"] != "trailing_stop":
        return o.get("stop_price")
    if o.get("stop_level") is not None:
        return o["stop_level"]
    watermark = o.get("watermark")
    if watermark is None:
        return None
    return stop_level(o["side"] == "sell", watermark, o.get("trail_price"), o.get("trail_percent"))


def account(p, username):
    """The account (``p``: the application's ``portfolio`` answer) as Alpaca's TradeAccount."""
    zero = Decimal("0.00")
    long_value = p.get("long_market_value")
    if long_value is None:
        long_value = sum((pos["market_value"] for pos in p["positions"]), zero)
    short_value = p.get("short_market_value") or zero
    last_equity = p["equity"] - p["change_today"]
    on_margin = p.get("kind") == "margin"
    # A cash portfolio's buying power is its cash (multiplier 1); a margin portfolio's is Reg T's (2x the
    # excess of equity over the initial requirement at 50%), and what is not marginable is its cash.
    cash_power = max(p["cash"], zero) if on_margin else p["buying_power"]
    out = {
        "id": p["account_uuid"],
        "account_number": ACCOUNT_NUMBER_PREFIX + p["account_uuid"].replace("-", "")[:10].upper(),
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "buying_power": money_text(p["buying_power"]),
        "regt_buying_power": money_text(p["buying_power"]),
        "daytrading_buying_power": "0",
        "non_marginable_buying_power": money_text(min(cash_power, p["buying_power"])),
        "options_buying_power": "0",
        "cash": money_text(p["cash"]),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": money_text(p["equity"]),
        "equity": money_text(p["equity"]),
        "last_equity": money_text(last_equity),
        "long_market_value": money_text(long_value),
        "short_market_value": money_text(-short_value if short_value else short_value),
        "initial_margin": money_text(p.get("initial_margin") or zero),
        "maintenance_margin": money_text(p.get("maintenance_margin") or zero),
        "last_maintenance_margin": money_text(p.get("maintenance_margin") or zero),
        "sma": "0",
        "multiplier": "2" if on_margin else "1",
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": bool(p.get("suspend_trade")),
        "shorting_enabled": on_margin and not p.get("no_shorting"),
        "daytrade_count": 0,
        "options_approved_level": 0,
        "options_trading_level": 0,
        # When it was made (or last reset: a new account, as Alpaca's reset makes) in the market's time, a replay's
        # own, as its orders show theirs; the wall clock's for one made before that was kept (schema version 22).
        "created_at": when(p.get("began") or p.get("created")),
        "user": username,
    }
    if p.get("margin_call") is not None:  # ours (Alpaca has no such fields): an open margin call
        out.update(margin_call=money_text(p["margin_call"]), margin_call_deadline=when(p["margin_call_deadline"]))
    return out


def configuration(c):
    """Alpaca's AccountConfiguration, from a PortfolioConfiguration answer."""
    return {name: c[name] for name in (
        "dtbp_check", "trade_confirm_email", "suspend_trade", "no_shorting", "fractional_trading",
        "max_margin_multiplier", "pdt_check", "ptp_no_exception_entry", "max_options_trading_level")}


def clock(c):
    return {"timestamp": when(c["time"]), "is_open": bool(c["is_open"]), "next_open": when(c["next_open"]),
            "next_close": when(c["next_close"])}



# --- positions and assets ----------------------------------------------------------------------


def ratio(part, whole, places=Decimal("0.000001")):
    """part / whole as the string Alpaca sends for a ratio (0.2 is 20%); "0" if ``whole`` is 0."""
    if not whole:
        return "0"
    return plain((part / whole).quantize(places))


def position(p, asset_id, exchange_name):
    """A position (one of the ``portfolio`` answer's) as Alpaca's Position."""
    quantity, cost, value = p["quantity"], p["cost"], p["market_value"]
    price, last = p.get("price"), p.get("previous_close")
    intraday = p.get("change_today")
    out = {
        "asset_id": asset_id,
        "symbol": p["symbol"],
        "exchange": exchange(exchange_name),
        "asset_class": "us_equity",
        "asset_marginable": bool(p.get("marginable")),
        "avg_entry_price": price_text(p["average_price"]),
        "qty": quantity_text(quantity),
        "qty_available": quantity_text(p["available"]) if p.get("available") is not None else None,
        "side": "short" if quantity < 0 else "long",
        "market_value": money_text(value),
        "cost_basis": money_text(cost),
        "unrealized_pl": money_text(value - cost),
        "unrealized_plpc": ratio(value - cost, abs(cost)),  # signed as the profit, a short's too
        "current_price": price_text(price) if price is not None else None,
        "lastday_price": price_text(last) if last is not None else None,
        "change_today": ratio(price - last, last) if price is not None and last else None,
        "unrealized_intraday_pl": money_text(intraday) if intraday is not None else None,
        "unrealized_intraday_plpc": ratio(intraday, abs(p["day_base"])) if intraday is not None and p.get("day_base")
        else None,
    }
    return out


def asset(a):
    """An asset (one of the ``asset_list`` answer's) as Alpaca's Asset (its class under the key ``class``)."""
    return {
        "id": a["id"],
        "class": a["asset_class"] if a["asset_class"] in ASSET_CLASSES else "us_equity",
        "exchange": exchange(a.get("exchange")),
        "symbol": a["symbol"],
        "name": a.get("name") or a["symbol"],
        "status": a.get("status") or "active",  # inactive: a replay's, with no price yet
        "tradable": bool(a["tradable"]),
        "marginable": bool(a.get("marginable")),
        "shortable": bool(a.get("shortable")),
        "easy_to_borrow": bool(a.get("shortable")),
        "fractionable": bool(a["fractionable"]),
        "maintenance_margin_requirement": int(a["maintenance_margin"]) if a.get("maintenance_margin") else 100,
        "attributes": [],
    }


def watchlist(w, account_uuid, assets=None):
    """A watchlist (the application's answer) as Alpaca's Watchlist; ``assets`` (Alpaca's Asset of each symbol,
    in order) where Alpaca shows them: every answer about one list, not the list of lists."""
    out = {"id": w["watchlist_id"], "account_id": account_uuid, "name": w["name"], "created_at": when(w["created"]),
           "updated_at": when(w["updated"])}
    if assets is not None:
        out["assets"] = assets
    return out


# --- orders in bulk ----------------------------------------------------------------------------------


def canceled(order_json):
    """One element of DELETE /v2/orders' 207 answer."""
    return {"id": order_json["id"], "status": 200, "body": order_json}


def closed(symbol, order_json):
    """One closed position of DELETE /v2/positions' 207 answer."""
    return {"symbol": symbol, "status": 200, "order_id": order_json["id"], "body": order_json}


def not_closed(symbol, status, code, message):
    return {"symbol": symbol, "status": status, "body": {"code": code, "message": message, "symbol": symbol}}


# --- calendar, history, activities -----------------------------------------------------------------


def calendar_day(session, zone, settles):
    """One session as Alpaca's Calendar: ``open``/``close`` as HH:MM in the exchange's time zone.  A session
    that runs to midnight (the always-open calendar) closes at "23:59" of its day, since alpaca-py reads
    ``close`` as a time of ``date``.  ``settles``: the settlement day of its trades."""
    tz = ZoneInfo(zone)
    opens, closes = session["open"].astimezone(tz), session["close"].astimezone(tz)
    day = session["date"]
    close = closes.strftime("%H:%M") if closes.date().isoformat() == day else "23:59"
    return {"date": day, "open": opens.strftime("%H:%M"), "close": close,
            "session_open": opens.strftime("%H%M"), "session_close": close.replace(":", ""),
            "settlement_date": settles.isoformat()}


def portfolio_history(h, zone=None):
    """The equity curve as Alpaca's PortfolioHistory; with ``zone`` (daily points), each timestamp is its day at
    00:00 in that time zone, as Alpaca's daily points are (1580187600: 28 January 2020, 00:00 in New York)."""
    timestamps = list(h["timestamps"])
    if zone is not None:
        tz = ZoneInfo(zone)
        timestamps = [int(datetime.combine(datetime.fromtimestamp(t, tz).date(), time(), tz).timestamp())
                      for t in timestamps]
    return {"timestamp": timestamps, "equity": list(h["equity"]),
            "profit_loss": list(h["profit_loss"]), "profit_loss_pct": list(h["profit_loss_pct"]),
            "base_value": h["base_value"], "timeframe": h["timeframe"], "cashflow": {}}


#: Our kinds of activity and Alpaca's activity types.
ACTIVITY_TYPES = {"fill": "FILL", "dividend": "DIV", "split": "SPLIT", "borrow_fee": "FEE"}


def activity(a, account_uuid):
    """An activity (one of the ``activities`` answer's) as Alpaca's TradeActivity or NonTradeActivity."""
    kind = ACTIVITY_TYPES[a["kind"]]
    out = {"id": a["id"], "account_id": account_uuid, "activity_type": kind, "symbol": a["symbol"]}
    if kind == "FILL":
        leaves = a.get("leaves_qty") or Decimal(0)
        out.update({
            "transaction_time": when(a["time"]), "type": "partial_fill" if leaves > 0 else "fill",
            "price": price_text(a["price"]), "qty": quantity_text(a["quantity"]),
            "side": "sell_short" if a.get("short_sale") else a.get("side"),
            "leaves_qty": quantity_text(leaves), "cum_qty": quantity_text(a.get("cum_qty") or a["quantity"]),
            "order_id": a.get("order_uuid"), "order_status": a.get("order_status"),
            # PaperTrader's own (alpaca-py's TradeActivity ignores them): what the fill cost in commission, and the
            # cash it moved (signed, commission included), so the activities add up to the cash.
            "commission": money_text(a.get("commission") or Decimal("0.00")), "net_amount": money_text(a["amount"])})
    else:
        out.update({"date": a["time"].astimezone(timezone.utc).date().isoformat(),
                    "transaction_time": when(a["time"]), "net_amount": money_text(a["amount"]),
                    "description": a.get("details") or "", "status": "executed",
                    "qty": quantity_text(a["quantity"])})
        if kind == "DIV":
            out["per_share_amount"] = plain(a["price"])
    return out


# --- market data ------------------------------------------------------------------------------------


def bar(b):
    """A bar as Alpaca's (prices as JSON numbers; ``n`` and ``vw`` unknown, so null)."""
    return {"t": when(b["time"]), "o": b["open"], "h": b["high"], "l": b["low"], "c": b["close"],
            "v": b["volume"], "n": None, "vw": None}


def corporate_action(a):
    """A CorporateActions row as Alpaca's market data shows it (rates as JSON numbers; no CUSIPs are known here:
    empty)."""
    out = {"id": a["id"], "symbol": a["symbol"]}
    if a["kind"] == "cash_dividend":
        out.update(cusip="", rate=a["rate"], special=False, foreign=False)
    elif a["kind"] == "reverse_split":
        out.update(old_cusip="", new_cusip="", new_rate=a["new_rate"], old_rate=a["old_rate"])
    else:
        out.update(cusip="", new_rate=a["new_rate"], old_rate=a["old_rate"])
    out.update(process_date=a["process_date"], ex_date=a["ex_date"])
    if a.get("pay_date"):
        out["payable_date"] = a["pay_date"]
    return out


#: The exchange trades and quotes name: IEX, as Alpaca's free feed.
EXCHANGE = "V"


def trade_id(moment):
    """A trade's id: its time in nanoseconds (one trade per symbol and update)."""
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


def quote_fields(q):
    """A worker's cached quote as Alpaca's quote (the REST API's latest quote and the stream's, the same): bid
    and ask from the fill model's spread; sizes are not simulated (1 each, a round lot)."""
    return {"bx": EXCHANGE, "bp": q.get("bid") or q["price"], "bs": 1, "ax": EXCHANGE,
            "ap": q.get("ask") or q["price"], "as": 1, "c": ["R"], "z": ""}


def trade_fields(q):
    """A worker's cached quote as Alpaca's trade (REST's latest and the stream's, the same): the last price at
    its time; its size the volume of the update that made it."""
    return {"i": trade_id(q["time"]), "x": EXCHANGE, "p": q["price"], "s": int(q.get("volume") or 0),
            "c": ["@"], "z": ""}


def quote(q):
    return {"t": when(q["time"]), **quote_fields(q)}


def trade(q):
    return {"t": when(q["time"]), **trade_fields(q)}

