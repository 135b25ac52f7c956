"""Alpaca's JSON shapes of PaperTrader's values, as alpaca-py 0.44 parses them.

Money and quantities are JSON strings (alpaca-py's models reject numbers where Alpaca sends
strings), enums lower-case and closed, ids UUIDs, times RFC 3339 in UTC with a ``Z``.  Every
function takes the plain values the application layer answers with and returns a dict ready for
``json.dumps``.
"""

from datetime import timezone
from decimal import Decimal

from papertrader.money import money_text, price_text, quantity_text

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
        "order_class": "simple",
        "order_type": o["type"],
        "type": o["type"],
        "side": o["side"],
        "position_intent": ("buy_to_open" if o["side"] == "buy" else "sell_to_close"),
        "time_in_force": o["time_in_force"],
        "limit_price": number(o.get("limit_price"), "price"),
        "stop_price": number(o.get("stop_price"), "price"),
        "status": status,
        "extended_hours": False,
        "legs": None,
        "trail_percent": number(o.get("trail_percent")),
        "trail_price": number(o.get("trail_price"), "price"),
        "hwm": number(o.get("watermark"), "price"),
        "commission": number(o.get("commission"), "money"),
        "reason": o.get("reason"),
    }


def account(p, username):
    """The account (``p``: the application's ``portfolio`` answer) as Alpaca's TradeAccount."""
    long_value = sum((pos["market_value"] for pos in p["positions"]), Decimal("0.00"))
    last_equity = p["equity"] - p["change_today"]
    return {
        "id": p["account_uuid"],
        "account_number": ACCOUNT_NUMBER_PREFIX + p["account_uuid"].replace("-", "")[:10].upper(),
        "status": "ACTIVE",
        "crypto_status": "INACTIVE",
        "currency": "USD",
        "buying_power": money_text(p["buying_power"]),
        "regt_buying_power": money_text(p["buying_power"]),
        "daytrading_buying_power": "0",
        "non_marginable_buying_power": money_text(p["buying_power"]),
        "options_buying_power": "0",
        "cash": money_text(p["cash"]),
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": money_text(p["equity"]),
        "equity": money_text(p["equity"]),
        "last_equity": money_text(last_equity),
        "long_market_value": money_text(long_value),
        "short_market_value": "0",
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "multiplier": "1",
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "shorting_enabled": False,
        "daytrade_count": 0,
        "options_approved_level": 0,
        "options_trading_level": 0,
        "created_at": when(p.get("created")),
        "user": username,
    }


def clock(c):
    return {"timestamp": when(c["time"]), "is_open": bool(c["is_open"]), "next_open": when(c["next_open"]),
            "next_close": when(c["next_close"])}

