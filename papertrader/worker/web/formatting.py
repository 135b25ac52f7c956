"""Numbers and times as the website shows them: money with its currency, prices, quantities, percents.

Every value arrives as a Decimal (never a float) and leaves as text; the page right-aligns it.
Money is rounded by the one rule (papertrader/money.py), then grouped by thousands.
"""

import re
from datetime import timezone
from decimal import Decimal

from papertrader import times
from papertrader.errors import PaperTraderError
from papertrader.money import price_text, quantity_text, quote_text, round_money, shares_text

#: The currency of every account (Alpaca's paper accounts are in US dollars too).
CURRENCY = "USD"
SYMBOLS = {"USD": "$"}
ZERO = Decimal(0)


def _group(text):
    whole, dot, frac = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    whole = whole.lstrip("-")
    return f"{sign}{int(whole):,}{dot}{frac}"


def money(value, currency=CURRENCY, signed=False):
    """'$1,234.50', '-$12.00'; with ``signed``, '+$3.10' for a gain."""
    if value is None:
        return "—"
    value = round_money(Decimal(value))
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{_group(format(abs(value), 'f'))}"


def price(value, currency=CURRENCY):
    """'$187.25', '$0.1234': as brokers show prices (``money.quote_text``, as the command line shows them too), 2
    decimals from $1 up (rounded by the one rule: an average fill price of 187.2551 is shown $187.26), 2 to 4 below
    (a sub-dollar price is quoted to 1/100 of a cent).  Only what is shown: a form's value is the exact price
    (number_text)."""
    if value is None:
        return "—"
    value = Decimal(value)
    sign = "-" if value < 0 else ""
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{_group(quote_text(abs(value)))}"


def exact_price(value, currency=CURRENCY):
    """A price paid: '$28.2663', '$28.27' — to the 1/100 of a cent it was filled at (at least 2 decimals, no
    zeros after them), so that shares x price is the amount charged, as a trade confirmation shows it (a
    fill with slippage is rarely a whole cent).  Quotes are shown with ``price``."""
    if value is None:
        return "—"
    value = Decimal(value)
    sign = "-" if value < 0 else ""
    return f"{sign}{SYMBOLS.get(currency, currency + ' ')}{_group(price_text(abs(value)))}"


def quantity(value):
    """'1,000', '2.5' (up to 6 decimals, no trailing zeros)."""
    if value is None:
        return "—"
    return _group(quantity_text(Decimal(value)))


def percent(value, signed=True):
    """'+1.25%' from 1.25 (a value already in percent)."""
    if value is None:
        return "—"
    value = Decimal(value).quantize(Decimal("0.01"))
    if value == 0:
        return "0.00%"  # (a change of -0.004% is no '-0.00%')
    sign = "+" if signed and value > 0 else ""
    return f"{sign}{value}%"


def change_percent(now, before):
    """The change from ``before`` to ``now`` in percent (None without a base)."""
    if now is None or not before:
        return None
    return (100 * (Decimal(now) - Decimal(before)) / Decimal(before)).quantize(Decimal("0.01"))


def sign(value):
    """'up', 'down' or 'flat': the colour a change is shown in (with its sign, never by colour alone)."""
    if value is None or value == 0:
        return "flat"
    return "up" if value > 0 else "down"


#: The time zone times are shown in: the market's (its calendar's, as the master's clock says: New York's for
#: XNYS, so that a session runs 09:30 to 16:00), UTC until the master has said.  One market per deployment.
_zone = timezone.utc


def show_times_in(name):
    """Show times in the IANA zone ``name`` from now on (an unknown or empty name: UTC)."""
    global _zone
    _zone = times.zone(name)


def zone_name():
    """The zone times are shown in, as an IANA name ('America/New_York', 'UTC')."""
    return getattr(_zone, "key", "UTC")


def when(moment, seconds=False):
    """A moment in the market's time zone, with the zone's abbreviation: '2010-03-04 09:30 EST' (UTC: '... UTC')."""
    return "—" if moment is None else times.local(moment, _zone, seconds)


def when_or_day(moment):
    """A moment that may stand for a day (a game's start, its midnight in the market's zone or UTC: '2010-01-04'),
    else ``when``."""
    return "—" if moment is None else times.local_or_day(moment, _zone)


def last_day(end):
    """The last day an end given as a day plays through ('2016-01-22' of the midnight after it), or None."""
    return times.last_day(end, _zone)


def day(moment):
    """A date, '2010-03-04': of a daily stamp (a market day is kept as its midnight UTC, or its session's open: in
    the market's time zone, where a session opening before midnight UTC has its date), or of a moment."""
    return "—" if moment is None else times.day(moment, _zone)


def number_text(value):
    """A Decimal as plain decimal text for the page's scripts (charts): never a float in Python."""
    if value is None:
        return None
    text = format(Decimal(value), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def rate(value):
    """An amount per share (a commission's rate, a dividend) in dollars, exact to its last nonzero decimal, at least
    to the cent: '$0.005', '$0.50', '$1.2345'."""
    whole, _, frac = format(Decimal(value), "f").partition(".")
    return f"{SYMBOLS[CURRENCY]}{_group(whole)}.{frac.rstrip('0').ljust(2, '0')}"


def commission(model):
    """A commission model (papertrader/trading/commissions.py), or a game's text of one ('per_order:1.00'), in
    words: '$1.00 per order', '$0.005 per share (min $1.00, max $10.00)', '0.1% of the trade', 'none'."""
    from papertrader.trading.commissions import PerOrder, Percent, PerShare, Zero
    from papertrader.trading.games import parse_commission

    if isinstance(model, str):
        try:
            model = parse_commission(model)
        except PaperTraderError:
            return model
    if isinstance(model, Zero):
        return "none"
    if isinstance(model, PerOrder):
        return f"{money(model.amount)} per order"
    if isinstance(model, PerShare):
        bounds = ([f"min {money(model.minimum)}"] if model.minimum else []) + \
            ([f"max {money(model.maximum)}"] if model.maximum else [])
        return f"{rate(model.rate)} per share" + (f" ({', '.join(bounds)})" if bounds else "")
    if isinstance(model, Percent):
        return f"{number_text(model.percent)}% of the trade"
    return model.describe()


#: How bars price fills (papertrader/trading/fill_models.py), by the model's name: a short name, and a phrase.
FILL_NAMES = {"bar": "Realistic (spread, volume)", "ideal": "Simple (closing price)"}
FILLS = {"bar": "Realistic: a market order pays a small spread, and a large order fills over several updates as"
                " volume trades",
         "ideal": "Simple: orders are judged at each update's closing price and fill in full there, with no spread"}


#: A dividend's details as the ledger stores them (papertrader/master/order_store.py): '0.5 per share on 6 shares'
#: ('on 1 share'; 'on 1 shares' before).
DIVIDEND_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?) per share on (-?[0-9]+(?:\.[0-9]+)?) shares?")


def activity_details(kind, text):
    """The details of a line of the history with its money as the pages show it: '$0.50 per share on 6 shares'."""
    match = DIVIDEND_RE.fullmatch(text or "") if kind == "dividend" else None
    if match is None:
        return text
    held = Decimal(match.group(2))
    return f"{rate(Decimal(match.group(1)))} per share on {shares_text(held, quantity(held))}"


def fills(name, short=False):
    """A fill model's name ('bar', or the description a fill carries, 'bar(half_spread_bps=2, ...)') in words:
    its phrase, or (``short``) its short name."""
    name = name or ""
    return (FILL_NAMES if short else FILLS).get(name.split("(", 1)[0], name)


STATUS = {
    "new": "open", "partially_filled": "partly filled", "filled": "filled", "canceled": "canceled",
    "expired": "expired", "replaced": "replaced", "rejected": "rejected", "held": "held",
}
#: Bracket, OCO and OTO orders (papertrader/trading/contingent.py): their class, and the part an exit plays.
CLASSES = {"bracket": "Bracket", "oco": "OCO", "oto": "OTO"}
CLASS_WORDS = {"bracket": "a bracket order: an entry with a take-profit and a stop-loss exit",
               "oco": "an OCO order (one cancels other): a take-profit and a stop-loss of shares held",
               "oto": "an OTO order (one triggers other): an entry with one exit"}
LEGS = {"take_profit": "Take-profit", "stop_loss": "Stop-loss"}
TYPES = {"market": "Market", "limit": "Limit", "stop": "Stop", "stop_limit": "Stop limit",
         "trailing_stop": "Trailing stop"}
TIFS = {"day": "Day", "gtc": "Good till canceled", "ioc": "Immediate or cancel", "fok": "Fill or kill",
        "opg": "At the open", "cls": "At the close"}


#: Amounts of money in the trading core's messages, which are shared with the command line and the HTTP API and
#: so written plain ('needs up to 24083850.00'): a number of exactly two decimals (money_text) where the words
#: before it say it is money, or before 'of SYMBOL' (a notional order: '500.00 of AAPL').
MONEY_RE = re.compile(r"(needs up to |buying power is |cash is |of equity |would be worth |portfolio \()"
                      r"(-?[0-9]+\.[0-9]{2})(?![0-9])")
NOTIONAL_RE = re.compile(r"(?<![0-9.$])([0-9]+\.[0-9]{2})(?= of [A-Z])")
#: Prices in them: two to four decimals (price_text) after ' at ', 'at an average ' or 'limit of '.
PRICE_RE = re.compile(r"(\bat |at an average |\blimit of )([0-9]+\.[0-9]{2,4})(?![0-9])")
#: And the prices of a bracket's exits and what they are checked against ('the take-profit (210.00) must be at least
#: a cent above the last price (187.25)').
PAREN_PRICE_RE = re.compile(r"((?:take-profit|stop-loss|price) \()([0-9]+\.[0-9]{2,4})(?=\))")
#: Quantities of an asset in them ('buying 100000 AAPL'), grouped as the pages show them.
QUANTITY_RE = re.compile(r"((?:buying|selling|shorting|cent:|fill:) )([0-9]+(?:\.[0-9]+)?)"
                         r"(?= [A-Z][A-Z0-9.\-]*\b)")
#: An order named by its number, which the website never shows.
ORDER_NUMBER_RE = re.compile(r"\border [0-9]+\b(?!-)")
#: A refusal that says an order does not exist, by its number.
NO_ORDER_RE = re.compile(r"^[Nn]o order [0-9]+\b(?!-)")
#: Another order named beside the words that already say which it is ('its entry, order 12, ended unfilled'):
#: those words are enough.
APPOSITION_RE = re.compile(r"(\b(?:its entry|the other exit)), order [0-9]+,")
#: An order's class as the pages write it ('an oco order' is 'an OCO order').
CLASS_RE = re.compile(r"\b([Aa]n?) ((?:buy|sell) )?(bracket|oco|oto) order")


def _class_words(match):
    article, side, kind = match.groups()
    if not side:  # 'an OCO order', 'a bracket order'
        article = article[0] + ("" if kind == "bracket" else "n")
    return f"{article} {side or ''}{'bracket' if kind == 'bracket' else kind.upper()} order"


#: The trading core's words for a portfolio's configuration (papertrader/trading/configuration.py), as the website
#: names its trading settings (on the portfolio's page: Portfolios, Manage).
SETTINGS_WORDS = (
    (" (its configuration's suspend_trade): turn it off to place or replace orders",
     ": new orders and changes to open orders are refused (canceling still works). Turn off “Suspend trading”"
     " in its trading settings (Portfolios, Manage) to trade"),
    (" (its configuration's no_shorting)", " (“Long only” in its trading settings)"),
    (" (its configuration's fractional_trading)", " (“Fractional shares” is off in its trading settings)"),
    ("give a quantity of whole shares, not a notional", "give a whole number of shares, not a dollar amount"),
    # (a game's starting cash: the operator's setting is no business of the person filling in the form)
    (" on this server (setting max_portfolio_cash, as every portfolio's)", " on this server (as every portfolio's)"),
)

#: A refused starting cash (a game's or a portfolio's: papertrader/app/games.py, portfolios.py): its amounts are
#: money, written plain by the core ('from 1.00 to 10000000.00', 'at most 1000000000000'), never one typed in
#: quotes ('(not 'abc')').
STARTING_CASH_RE = re.compile(r"^(?:a portfolio's )?(?:starting )?cash\b", re.I)
CASH_AMOUNT_RE = re.compile(r"(?<![0-9.,'$])[0-9]+\.[0-9]{2}(?![0-9'])|(?<=at most )[0-9]+(?=\.?$)")


#: The trading core's word for a number of shares is the command's, "quantity" (the HTTP API's "qty"); the
#: website's field is labelled "Shares", and its refusals name it so: (pattern, words; a function of the match).
SHARES_WORDS = (
    (re.compile(r"^quantity ('.*?') is "), r"shares: \1 is "),
    (re.compile(r"^quantity has more than ([0-9]+) decimals"), r"shares may have at most \1 decimals"),
    (re.compile(r"^quantity must be at most ([0-9]+)(?![0-9.])"),
     lambda m: f"shares must be at most {quantity(Decimal(m.group(1)))}"),
    (re.compile(r"^quantity must be positive, at most ([0-9]+),"),
     lambda m: f"shares must be positive, at most {quantity(Decimal(m.group(1)))},"),
    (re.compile(r"^quantity must be "), "shares must be "),
    (re.compile(r"\ba fractional quantity takes time in force 'day'"), "a fraction of a share takes time in force Day"),
    (re.compile(r" with time in force 'day'"), " with time in force Day"),
    (re.compile(r"\bgiven as a quantity \(not a notional\)"), "given in shares (not dollars)"),
)


#: A game's rule as its page names it ("Largest position", "Short selling"...), for the master's refusal
#: "game rule RULE: ..." (papertrader/trading/games.py), whose RULE is a code name.
GAME_RULE_WORDS = {"dates": "The game's dates", "assets": "The game's assets",
                   "short": "The game's short selling rule", "max_position": "The game's largest position"}
GAME_RULE_RE = re.compile(r"^game rule (" + "|".join(GAME_RULE_WORDS) + r"): ")


def said(text, order=None):
    """A message of the trading core as the website words it: its amounts of money, prices and quantities as the
    pages show them ('$24,083,850.00', '$187.25', '100,000 AAPL'), and an order it names by number ('order 9')
    named as the pages name it (``order``: 'Buy 1 AAPL'; without it, 'another order')."""
    if not text:
        return text
    for core, words in SETTINGS_WORDS:
        text = text.replace(core, words)
    for pattern, words in SHARES_WORDS:
        text = pattern.sub(words, text, count=1)
    if STARTING_CASH_RE.match(text):
        text = CASH_AMOUNT_RE.sub(lambda m: money(Decimal(m.group(0))), text)
    text = GAME_RULE_RE.sub(lambda m: GAME_RULE_WORDS[m.group(1)] + ": ", text, count=1)
    text = MONEY_RE.sub(lambda m: m.group(1) + money(Decimal(m.group(2))), text)
    text = NOTIONAL_RE.sub(lambda m: money(Decimal(m.group(1))), text)
    text = PRICE_RE.sub(lambda m: m.group(1) + price(Decimal(m.group(2))), text)
    text = PAREN_PRICE_RE.sub(lambda m: m.group(1) + price(Decimal(m.group(2))), text)
    text = QUANTITY_RE.sub(lambda m: m.group(1) + quantity(Decimal(m.group(2))), text)
    text = APPOSITION_RE.sub(lambda m: m.group(1), text)
    text = CLASS_RE.sub(_class_words, text)
    if order is None and NO_ORDER_RE.match(text):  # 'no order 999 in ...': not 'no another order'
        return NO_ORDER_RE.sub("no such order", text, count=1)
    return ORDER_NUMBER_RE.sub(lambda m: order or "another order", text, count=1)


#: A number as people type it on a page: a dollar sign, thousands separators ('$5,000.50', '1,000').
TYPED_NUMBER_RE = re.compile(r"^\s*\$?\s*([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(\.[0-9]*)?\s*$")


def typed_number(text):
    """``text`` without the dollar sign and thousands separators a person may type ('$5,000' -> '5000'); anything
    else as it was (the master's check then says what is wrong with it)."""
    match = TYPED_NUMBER_RE.match(text or "")
    if match is None:
        return text
    return match.group(1).replace(",", "") + (match.group(2) or "")


#: (a token of the User-Agent header, the browser it names), first match wins: Edge and Opera say Chrome too,
#: Chrome says Safari too.
BROWSERS = (("Edg/", "Edge"), ("EdgA/", "Edge"), ("EdgiOS/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
            ("FxiOS/", "Firefox"), ("SamsungBrowser/", "Samsung Internet"), ("CriOS/", "Chrome"),
            ("Chromium/", "Chromium"), ("Chrome/", "Chrome"), ("Safari/", "Safari"))
#: The same of the system: Android and iOS before Linux and macOS, whose names they also carry.
SYSTEMS = (("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("CrOS", "ChromeOS"),
           ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Macintosh", "macOS"), ("Linux", "Linux"))


def device(user_agent):
    """A browser's User-Agent as a person reads it in their sessions list: 'Firefox on Windows' (None: no header).
    Only a label (a client may say anything): nothing relies on it."""
    if not user_agent:
        return None
    browser = next((name for token, name in BROWSERS if token in user_agent), None)
    system = next((name for token, name in SYSTEMS if token in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or (f"a browser on {system}" if system else "a browser")

