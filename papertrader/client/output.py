"""How the client shows results: readable tables, or JSON with decimals as strings.

Times: a person reads them in the market's time zone with its abbreviation, as the website shows them
('2024-03-04 09:30:00 EST': ``table`` and ``fields``, given the zone); JSON and CSV, which programs read, keep
them exact, ISO-8601 in UTC as the server sent them ('2024-03-04T14:30:00+00:00': ``plain``).
"""

import csv
import io
import json
import re
from datetime import datetime, timezone
from decimal import Decimal

from papertrader import times
from papertrader.money import money_text, price_text, quantity_text, quote_text

MONEY = {"cash", "equity", "market_value", "amount", "cash_after", "commission", "notional", "cost", "buying_power",
         "realized_pl", "unrealized_pl", "change_today"}
PRICES = {"price", "average_price", "open", "high", "low", "close", "limit_price", "stop_price", "trail_price",
          "stop_level", "previous_close", "bid", "ask"}
QUANTITIES = {"quantity", "filled_quantity", "position_quantity"}
#: A quote's and a candle's prices: a person reads them as the website shows them, quoted to the cent from $1 up
#: (``quoted``); JSON and CSV keep every price exact, and what was paid is shown exact everywhere.
QUOTED = {"price", "open", "high", "low", "close", "previous_close", "bid", "ask"}
#: A number a spreadsheet may take as it is (CSV): a negative one too.
_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def plain(value, key=None, zone=None):
    """A JSON-ready copy: Decimals as decimal strings by kind, times as ISO-8601; with ``zone`` (for a person, not
    a program), times in that zone with its abbreviation, to the second: '2024-03-04 09:30:00 EST'."""
    if isinstance(value, dict):
        return {k: plain(v, k, zone) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, key, zone) for v in value]
    if isinstance(value, Decimal):
        if key in MONEY:
            return money_text(value)
        if key in PRICES:
            return price_text(value)
        if key in QUANTITIES:
            return quantity_text(value)
        return format(value, "f")
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds") if zone is None else times.local(value, zone, seconds=True)
    return value


def quoted(record, keys=QUOTED):
    """``record`` (a dict) with its prices of ``keys`` as brokers quote them to people ('187.25' for 187.2551, to
    four decimals below $1: ``money.quote_text``), for a table or a line; the rest as it was."""
    return {k: quote_text(v) if k in keys and isinstance(v, Decimal) else v for k, v in record.items()}


def shown(value, zone):
    """``value`` as a person reads it (times in ``zone``): ``plain`` with the zone."""
    return plain(value, zone=zone)


def to_json(value):
    return json.dumps(plain(value), indent=None)


#: A figure that is not available (a Sharpe ratio of too few returns), aligned as the numbers of its column.
NOT_AVAILABLE = "n/a"


def table(rows, columns, zone=timezone.utc):
    """Rows (dicts) as an aligned text table for a person (times in ``zone``); numbers right-aligned (and
    NOT_AVAILABLE among them)."""
    rows = [shown(r, zone) for r in rows]
    cells = [[_text(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(_is_number(row[i]) for row in cells if row[i] and row[i] != NOT_AVAILABLE)
               and any(row[i] for row in cells)
               for i in range(len(columns))]
    lines = ["  ".join(c.upper().ljust(w) if not n else c.upper().rjust(w)
                       for c, w, n in zip(columns, widths, numeric)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(row, widths, numeric)).rstrip())
    return "\n".join(lines)


def fields(record, keys, zone=timezone.utc):
    """One record as 'key: value' lines for a person (times in ``zone``)."""
    record = shown(record, zone)
    width = max(len(k) for k in keys)
    return "\n".join(f"{k.replace('_', ' ') + ':':<{width + 2}}{_text(record.get(k))}" for k in keys
                     if record.get(k) is not None)


def _text(value):
    """A value as text for a person: yes and no for booleans (JSON keeps true and false)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _is_number(text):
    """A number, or an amount of dollars ('$500.00': a notional order's quantity), right-aligned in a table."""
    try:
        Decimal(text[1:] if text.startswith("$") else text)
        return True
    except Exception:
        return False


def csv_text(rows, columns, newline="\r\n"):
    """``rows`` (dicts) as CSV with a header of ``columns`` (values as ``plain`` gives them; none: empty), for a
    spreadsheet.  A value that a spreadsheet would take for a formula (=, +, -, @ first) is kept as text with
    a leading apostrophe; a negative number stays a number."""
    def cell(value):
        text = "" if value is None else str(value)
        if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER_RE.fullmatch(text):
            return "'" + text
        return text

    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(columns)
    for row in rows:
        shown = plain(row)
        writer.writerow([cell(shown.get(c)) for c in columns])
    return out.getvalue()



#: A game's standings, as the leaderboard shows them and its CSV lists them.
BOARD_COLUMNS = ["rank", "username", "equity", "return_percent", "sharpe"]


def standings_csv(standings, unranked=(), newline="\r\n"):
    """A game's standings as CSV, every player: those not ranked yet (``unranked``: joined since the last
    update) last, with no figures (a gradebook misses no one)."""
    return csv_text(list(standings) + [{"username": name} for name in unranked or ()], BOARD_COLUMNS, newline)


def keys_still_working(keys):
    """'Your API key still works' / 'Your 3 API keys still work' ('' for none): said after a password changed
    or every session ended, which leave API keys working (a key is not a session)."""
    if not keys:
        return ""
    return "Your API key still works" if keys == 1 else f"Your {keys} API keys still work"


def clock_text(clock, zone):
    """The market clock (a ``Clock`` answer, or papertrader-admin's market state) as a person reads it, times in
    ``zone``: its time, open or closed, next open and close, calendar, source, and a replay's state, step and
    days (midnights UTC, shown as their dates); an ended replay says so.  The command line's ``clock`` and
    ``market``, and ``papertrader-admin market``, show it alike."""
    clock = {k: v for k, v in clock.items() if v is not None}
    shown = dict(clock, market="open" if clock.get("is_open") else "closed")
    if clock.get("mode") == "replay":
        shown["replay"] = (f"{clock.get('state')}, {clock.get('step')} per update, from"
                           f" {times.day(clock['start'], zone)}" +
                           (f" to {times.day(clock['end'], zone)}" if clock.get("end") else ""))
        if clock.get("state") == "ended":
            # No session opens after the replay's last day: there is no next open or close to show.
            ended = f" on {times.day(clock['end'], zone)}" if clock.get("end") else ""
            shown.update(market=f"closed: the replay ended{ended} (no session opens; orders are refused)",
                         next_open=None, next_close=None)
    return fields(shown, ["time", "market", "next_open", "next_close", "calendar", "source", "replay"], zone)
