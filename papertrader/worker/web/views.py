"""The website's pages and the fragments its live connection pushes: plain values in, HTML out.

Every function here is pure (no I/O, no Twisted): it takes the answers of the application's commands
(dicts of Decimals, datetimes and text) and returns :class:`Markup`.  Elements whose text changes live
carry ``data-live="KEY"`` (the live connection sends new text by key); parts that change shape (a new
position, an order that filled) are ``data-section="NAME"`` and are sent again whole, by the same
function that rendered them in the page.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from urllib.parse import quote, urlencode

from papertrader.trading.games import NO_SHARPE, may_see_portfolios
from papertrader.worker.web import formatting as fmt
from papertrader.worker.web.markup import Markup, h, join
from papertrader.worker.web.security import CSRF_FIELD

#: The static files' version in their URLs (``?v=``), so that browsers fetch a file that changed (they keep them a
#: day): a digest of all their contents, set when the website reads them (papertrader/worker/web/__init__.py).
STATIC_VERSION = "0"
CHART_LIBRARY = "/static/vendor/lightweight-charts.standalone.production.js"
INTERVALS = [("1m", "1m"), ("5m", "5m"), ("15m", "15m"), ("1h", "1h"), ("1d", "1D")]
INTERVAL_WORDS = {"1m": "one-minute", "5m": "five-minute", "15m": "fifteen-minute", "1h": "hourly", "1d": "daily"}
RANGES = {"1D": "Day", "1W": "Week", "1M": "Month", "1A": "Year", "ALL": "All"}
#: What an empty table of each live section says.
EMPTY = {"positions": "No open positions: find an asset under Trade to buy one.", "open-orders": "No open orders.",
         "closed-orders": "No closed orders yet.", "activities": "No transactions yet."}
#: What the sign-in page says when a page was sent there because its session ended: the same words for
#: every reason (the visitor is not signed in, so which reason it was is not theirs to learn).
SESSION_ENDED = ("Your session ended: you were signed out (from another device, by a password change or by the"
                 " operator), or it expired. Sign in again.")
NAV = [("dashboard", "/", "Dashboard"), ("trade", "/assets", "Trade"), ("orders", "/orders", "Orders"),
       ("history", "/history", "History"), ("portfolios", "/portfolios", "Portfolios"), ("games", "/games", "Games"),
       ("account", "/account", "Account")]


def static(path):
    return f"/static/{path}?v={STATIC_VERSION}"


@dataclass
class Chrome:
    """What every page around its content needs: who is signed in, the CSRF token of its forms, the
    flash message, which tab is current, the market clock and the sign-in providers."""

    csrf: str
    username: str = None
    flash: dict = None
    tab: str = None
    clock: dict = None
    providers: list = field(default_factory=list)
    #: The account's open portfolios' names, and the one the pages show and trade.
    portfolios: list = field(default_factory=list)
    portfolio: str = None
    #: Real seconds between market updates (a replay moves one step of market time per update).
    update_interval: float = None


def csrf_input(csrf):
    return h("input", {"type": "hidden", "name": CSRF_FIELD, "value": csrf})


def post_form(action, csrf, *children, cls=None, confirm=None, label=None):
    return h("form", {"method": "post", "action": action, "class": cls, "data-confirm": confirm,
                      "aria-label": label}, csrf_input(csrf), *children)


def button(label, cls="btn", **attrs):
    return h("button", dict({"type": "submit", "class": cls}, **attrs), label)


def live(key, value, sign=None, tag="span", cls=None):
    return h(tag, {"data-live": key, "data-sign": sign, "class": cls}, value)


def num(value, key=None, sign=None, header=None):
    """A right-aligned number cell (its column's name for the phone layout)."""
    attrs = {"class": "num", "data-label": header}
    if key:
        attrs["data-live"] = key
    if sign:
        attrs["data-sign"] = sign
    return h("td", attrs, value)


def cell(value, header=None, cls=None):
    return h("td", {"data-label": header, "class": cls}, value)


def when_cell(moment, header):
    """A moment in a table's cell: its date and its time of day each kept whole, so that a narrow column breaks its
    line between them ('2010-01-22' over '09:30 EST'), never inside the date at a hyphen ('2010-01-' over '22 09:30')."""
    day, _, clock = fmt.when(moment).partition(" ")
    return cell(h("span", {"class": "when"}, h("span", day), " ", h("span", clock)) if clock else day, header)


def table(headers, rows, section=None, empty="Nothing yet.", caption=None, cls="data"):
    """A table whose numeric columns (headers given as ('Name', 'num')) are right-aligned; ``section`` names
    its body for the live connection, which sends it again whole (see :func:`body`).  A column whose header is
    not shown, ('Name', 'sr'), still has one for screen readers; '' is a column of buttons ('Actions')."""
    def th(name, kind):
        if name == "":
            name, kind = "Actions", "sr"
        if kind == "sr":
            return h("th", {"scope": "col"}, h("span", {"class": "sr-only"}, name))
        return h("th", {"scope": "col", "class": kind or None}, name)

    head = h("tr", *[th(name, kind) for name, kind in ((x if isinstance(x, tuple) else (x, None)) for x in headers)])
    return h("div", {"class": "table-scroll"},
             h("table", {"class": cls}, h("caption", {"class": "sr-only"}, caption or "table"),
               h("thead", head), h("tbody", {"data-section": section}, body(rows, len(headers), empty))))


def body(rows, columns, empty):
    """A table body's rows, or one row saying it is empty."""
    return rows if rows else h("tr", {"class": "empty"}, h("td", {"colspan": str(columns)}, empty))


def message(flash):
    """The flash message at the top of the page: focused when the page loads (app.js), so that a screen reader
    says it and a phone shows it."""
    if not flash:
        return ""
    kind = flash.get("k", "info")
    order = flash.get("o") if isinstance(flash.get("o"), str) else None  # an order placed: its news replaces this
    return h("div", {"class": f"flash {kind}", "role": "alert" if kind == "error" else "status", "id": "flash",
                     "tabindex": "-1", "data-order": order}, flash["m"])


#: The fields a refusal of each form may name: (words of the refusal, in lower case; the field's id).
ORDER_FIELDS = ((("stop-loss limit price", "stop_loss_limit"), "t-stop_loss_limit"),
                (("stop-loss stop price", "stop-loss (", "stop_loss"), "t-stop_loss"),
                (("take-profit limit price", "take-profit (", "take_profit"), "t-take_profit"),
                (("quantity", "shares"), "t-qty"), (("notional", "amount"), "t-notional"),
                (("limit price", "limit_price"), "t-limit_price"), (("stop price", "stop_price"), "t-stop_price"),
                (("trail",), "t-trail"), (("time in force",), "t-time_in_force"),
                # Too much for the cash or the shares: the amount (by shares, or by dollars: whichever is shown).
                (("needs up to", "insufficient position"), "t-qty"), (("insufficient buying power",), "t-notional"))
SIGNIN_FIELDS = ((("username",), "f-username"), (("password",), "f-password"))
REGISTER_FIELDS = SIGNIN_FIELDS + ((("email",), "f-email"),)
GAME_FIELDS = ((("first day", "would start", "ends after it starts"), "f-start"),
               (("last day", "would end", "end after it starts", "ten years"), "f-end"),
               (("starting cash",), "f-cash"), (("asset", "symbol"), "f-assets"),
               (("largest position", "max_position", "max position"), "f-max_position"),
               (("commission", "per-share", "per_share"), "f-commission"), (("fill model",), "t-fill_model"),
               (("a game's name", "game name", "name must", "already run"), "g-name"))
JOIN_FIELDS = ((("no game named",), "f-name"), (("invite code", "no code needed"), "f-code"))
PASSWORD_FIELDS = ((("current password",), "f-old_password"),
                   (("new password", "at least", "common", "too short", "too long"), "f-new_password"))
PORTFOLIO_FIELDS = ((("portfolio named", "name"), "f-name"), (("cash",), "f-cash"))


def named_fields(text, fields):
    """The ids of the fields (of ``fields``, see ORDER_FIELDS) that the refusal ``text`` names.  The words of a field
    found are not looked for again by the fields after it ('take-profit limit price' names the take-profit, not the
    limit price)."""
    lower = (text or "").lower()
    found = []
    for words, ident in fields:
        if any(word in lower for word in words):
            found.append(ident)
            for word in words:
                lower = lower.replace(word, " ")
    return list(dict.fromkeys(found))


def error_box(text, fields=()):
    """Why a form was refused, beside it: focused when the page loads (app.js), which also marks the fields it
    names (``fields``: see ORDER_FIELDS) aria-invalid, described by it."""
    if not text:
        return ""
    return h("div", {"class": "flash error", "role": "alert", "id": "form-error", "tabindex": "-1",
                     "data-fields": " ".join(named_fields(text, fields)) or None}, text)


# --- the page around the content --------------------------------------------------------------------


def document(chrome, title, main, page="other", symbol=None, charts=False, data=None):
    signed_in = chrome.username is not None
    head = [h("meta", {"charset": "utf-8"}),
            h("meta", {"name": "viewport", "content": "width=device-width, initial-scale=1"}),
            h("meta", {"name": "color-scheme", "content": "light"}),
            h("meta", {"name": "csrf-token", "content": chrome.csrf}),
            h("title", f"{'Error: ' if refused(chrome, main) else ''}{title} · PaperTrader"),
            h("link", {"rel": "icon", "href": static("favicon.svg"), "type": "image/svg+xml"}),
            h("link", {"rel": "stylesheet", "href": static("app.css")})]
    if charts:
        head.append(h("script", {"src": static(CHART_LIBRARY[len("/static/"):]), "defer": True}))
        head.append(h("script", {"type": "module", "src": static("charts.js")}))
    head.append(h("script", {"type": "module", "src": static("app.js")}))
    body_attrs = {"data-page": page, "data-symbol": symbol, "data-live-state": "off",
                  "data-signed-in": "yes" if signed_in else "no"}
    body_attrs.update(data or {})
    return Markup("<!doctype html>\n") + h(
        "html", {"lang": "en"}, h("head", *head),
        h("body", body_attrs,
          h("a", {"class": "skip", "href": "#main"}, "Skip to content"),
          header(chrome),
          h("div", {"id": "live-status", "class": "live-status", "role": "status", "aria-live": "polite"}),
          h("div", {"id": "toasts", "class": "toasts", "role": "status", "aria-live": "polite"}),
          h("main", {"id": "main", "class": "wrap", "tabindex": "-1"}, message(chrome.flash), main),
          footer(chrome, charts)))


def refused(chrome, main):
    """Does the page say that something was refused (a form's refusal beside it, or an error at the top)?"""
    return 'id="form-error"' in main or (chrome.flash or {}).get("k") == "error"


def header(chrome):
    brand = h("a", {"class": "brand", "href": "/"}, h("span", {"class": "logo", "aria-hidden": "true"}, "▲"),
              "PaperTrader")
    if chrome.username is None:
        return h("header", {"class": "top"}, h("div", {"class": "wrap bar"}, brand,
                                                h("span", {"class": "tagline"}, "Practise investing with fake money")))
    tabs = [h("a", {"href": href, "aria-current": "page" if chrome.tab == name else None}, label)
            for name, href, label in NAV]
    # The market's state and time; on a phone, where the bar has no room for the name beside "Sign out", this
    # line (a row of its own there) starts with who is signed in.
    market = h("span", {"class": "market"}, h("span", {"class": "market-user"}, chrome.username))
    if chrome.clock:
        shown = market_values(chrome.clock)
        market = h("span", {"class": "market"}, h("span", {"class": "market-user"}, chrome.username, " ·"),
                   live("market", *shown["market"]), " · ", live("clock", *shown["clock"]))
    return h("header", {"class": "top"},
             h("div", {"class": "wrap bar"}, brand, market,
               # (sent again by a game's page's live connection once its visitor joins it: a portfolio more)
               h("div", {"class": "who"}, h("span", {"data-section": "portfolio-picker", "class": "picker-slot"},
                                            portfolio_selector(chrome)),
                 h("span", {"class": "user"}, chrome.username),
                 post_form("/signout", chrome.csrf, button("Sign out", "btn small ghost"), cls="inline",
                           label="Sign out"))),
             h("nav", {"class": "tabs", "aria-label": "Main"}, h("div", {"class": "wrap"}, *tabs)))


def market_values(clock):
    """The header's market clock (a ``Clock`` answer, or the market clock a QuotesTick carries), as the live
    connection's values: whether the market is open (the sign colours its dot), and the market's time; a replay
    its operator paused says so (its time stands still until resumed)."""
    is_open = bool(clock.get("is_open"))
    said = ("Market open" if is_open else "Market closed") + (" (paused)" if clock.get("state") == "paused" else "")
    return {"market": (said, "open" if is_open else "closed"),
            "clock": (fmt.when(clock.get("time")), None)}


def portfolio_selector(chrome):
    """The navigation's choice of the portfolio the pages show and trade (a form: works without scripts)."""
    if len(chrome.portfolios) < 2:
        return ""
    options = [h("option", {"value": name, "selected": name == chrome.portfolio}, name) for name in chrome.portfolios]
    return post_form("/portfolios/use", chrome.csrf,
                     h("label", {"for": "f-shown-portfolio", "class": "sr-only"}, "Portfolio shown"),
                     h("select", {"id": "f-shown-portfolio", "name": "name"}, *options),
                     button("Switch", "btn small ghost", **{"aria-label": "Switch to this portfolio"}),
                     cls="inline portfolio-picker", label="Portfolio shown")


def footer(chrome, charts):
    parts = [h("span", "Paper trading: fake money, real rules. All amounts in ", fmt.CURRENCY, ".")]
    if charts:
        # The chart library's licence (Apache-2.0) asks for its notice and a link to TradingView.
        parts.append(h("span", "Charts: ", h("a", {"href": "https://www.tradingview.com/"},
                                              "TradingView Lightweight Charts™"),
                       " — Copyright (c) 2023 TradingView, Inc."))
    if chrome.username is not None:
        # Prices that move by themselves may be stopped (WCAG 2.2.2): the page's script shows this and keeps the
        # choice in the browser (order events and the market clock still come).
        parts.insert(0, h("span", {"class": "pause-line", "hidden": True},
                          h("button", {"type": "button", "id": "pause-live", "class": "btn small"},
                            "Pause live prices")))
    return h("footer", {"class": "foot"}, h("div", {"class": "wrap"}, *parts))


# --- signing in ------------------------------------------------------------------------------------------


def field_input(label, name, value="", kind="text", autocomplete=None, required=True, hint=None, ident=None,
                **more):
    ident = ident or f"f-{name}"
    attrs = {"id": ident, "name": name, "type": kind, "value": value if kind != "password" else None,
             "autocomplete": autocomplete, "required": required,
             "aria-describedby": f"{ident}-hint" if hint else None}
    attrs.update(more)
    return h("div", {"class": "field"}, h("label", {"for": ident}, label), h("input", attrs),
             h("p", {"class": "hint", "id": f"{ident}-hint"}, hint) if hint else "")


def signin_page(chrome, username="", error=None, going=""):
    """``going``: the page asked for before signing in (a same-site path), where signing in leads."""
    providers = ""
    if chrome.providers:
        providers = h("div", {"class": "providers"},
                      h("p", {"class": "or"}, h("span", "or")),
                      *[post_form(f"/auth/{name}/start", chrome.csrf,
                                  button(f"Sign in with {name.capitalize()}", "btn wide"), cls="provider")
                        for name in chrome.providers])
    form = post_form(
        "/signin", chrome.csrf,
        field_input("Username", "username", username, autocomplete="username", autofocus=True,
                    maxlength="24", autocapitalize="none", spellcheck="false"),
        field_input("Password", "password", kind="password", autocomplete="current-password", maxlength="1024"),
        h("div", {"class": "check"}, h("input", {"type": "checkbox", "id": "f-remember", "name": "remember",
                                                  "value": "yes"}),
          h("label", {"for": "f-remember"}, "Keep me signed in for 30 days")),
        h("input", {"type": "hidden", "name": "next", "value": going}) if going and going != "/" else "",
        button("Sign in", "btn primary wide"), cls="stack", label="Sign in")
    main = h("section", {"class": "auth card"}, h("h1", "Sign in"), error_box(error, SIGNIN_FIELDS), form, providers,
             h("p", {"class": "aside"}, "New here? ", h("a", {"href": _with_next("/register", going)},
                                                         "Create an account"),
               " — you start with fake cash to practise with."),
             h("p", {"class": "aside"}, "Forgot your password? This server sends no email: ask the person who runs"
                                        " it to reset it for you (they give you a new one to sign in with, then"
                                        " you change it under Account)."))
    return document(chrome, "Sign in", main, page="signin")


def _with_next(path, going):
    """``path`` with where to go afterwards (a same-site path: the sign-in page's ``next``), if anywhere but home."""
    return f"{path}?{urlencode({'next': going})}" if going and going != "/" else path


def register_page(chrome, username="", email="", error=None, going=""):
    """``going``: the page asked for before signing in (a same-site path: an invite link opened by someone without
    an account yet), where creating the account leads, as signing in does."""
    form = post_form(
        "/register", chrome.csrf,
        field_input("Username", "username", username, autocomplete="username", autofocus=True, maxlength="24",
                    autocapitalize="none", spellcheck="false",
                    hint="3 to 24 letters, digits, '_', '.' or '-'."),
        field_input("Email", "email", email, kind="email", autocomplete="email", maxlength="254"),
        field_input("Password", "password", kind="password", autocomplete="new-password", minlength="8",
                    maxlength="1024", hint="At least 8 characters; a few unrelated words work well. Common"
                                           " passwords are refused."),
        h("input", {"type": "hidden", "name": "next", "value": going}) if going and going != "/" else "",
        button("Create account", "btn primary wide"), cls="stack", label="Create an account")
    main = h("section", {"class": "auth card"}, h("h1", "Create an account"), error_box(error, REGISTER_FIELDS), form,
             h("p", {"class": "aside"}, "Already have one? ", h("a", {"href": _with_next("/signin", going)},
                                                                  "Sign in")))
    return document(chrome, "Create an account", main, page="register")


def provider_account_page(chrome, provider, ticket, proposal, error=None, username=""):
    """After a provider sign-in whose identity has no account yet: make one, or link an existing one."""
    create = post_form(
        "/auth/finish", chrome.csrf,
        h("input", {"type": "hidden", "name": "ticket", "value": ticket}),
        h("input", {"type": "hidden", "name": "action", "value": "create"}),
        field_input("Choose a username", "username", username or proposal or "", autocomplete="username",
                    maxlength="24", autocapitalize="none", spellcheck="false",
                    hint="3 to 24 letters, digits, '_', '.' or '-'."),
        button("Create my account", "btn primary wide"), cls="stack", label="Create an account")
    link = post_form(
        "/auth/finish", chrome.csrf,
        h("input", {"type": "hidden", "name": "ticket", "value": ticket}),
        h("input", {"type": "hidden", "name": "action", "value": "link"}),
        field_input("Username", "username", "", autocomplete="username", maxlength="24", autocapitalize="none",
                    ident="link-username"),
        field_input("Password", "password", kind="password", autocomplete="current-password"),
        button(f"Link {provider.capitalize()} to this account", "btn wide"), cls="stack",
        label="Link to an existing account")
    main = h("section", {"class": "auth card"}, h("h1", f"Signed in with {provider.capitalize()}"),
             h("p", "This identity has no PaperTrader account yet."), error_box(error),
             h("h2", "New account"), create, h("h2", "Or link it to an account you have"), link)
    return document(chrome, "Finish signing in", main, page="provider")


def redirect_page(chrome, url, title, text):
    """A page that moves the browser on by itself (a meta refresh: no script) and links there too."""
    main = h("section", {"class": "auth card"}, h("h1", title), h("p", text),
             h("p", h("a", {"class": "btn primary", "href": url}, "Continue")))
    page = document(chrome, title, main, page="redirect")
    return page.replace("<head>", f'<head><meta http-equiv="refresh" content="0;url={_attr(url)}">', 1)


def _attr(text):
    from html import escape

    return escape(text, quote=True)


def error_page(chrome, status, title, text):
    back = h("p", h("a", {"class": "btn", "href": "/"}, "Go to the dashboard")) if chrome.username else \
        h("p", h("a", {"class": "btn", "href": "/signin"}, "Sign in"))
    main = h("section", {"class": "card narrow"}, h("h1", title), h("p", text), back)
    return document(chrome, title, main, page="error", data={"data-status": str(status)})


# --- the dashboard ----------------------------------------------------------------------------------


def summary(p):
    """The account's figures (each a live key)."""
    values = summary_values(p)
    items = []
    shown = [("Equity", "equity"), ("Cash", "cash"), ("Buying power", "buying_power"),
             ("Today's change", "change_today"), ("Total P&L", "total_pl")]
    if "maintenance_margin" in values:
        shown.append(("Maintenance margin", "maintenance_margin"))
    for label, key in shown:
        text, sign = values[key]
        note = values.get(key + "_note")
        items.append(h("div", {"class": "stat"}, h("dt", label),
                       h("dd", live(key, text, sign, cls="value"),
                         live(key + "_note", note[0], note[1], cls="note") if note else "")))
    return h("dl", {"class": "stats six" if len(shown) == 6 else "stats", "aria-label": "Account summary"}, *items)


def margin_figures(p):
    """A margin portfolio's requirement at the last prices, as the summary shows it: {key: (text, sign)}; none
    for a cash portfolio.  The note says how far equity is above it (below it: a margin call is due at the next
    trading step, papertrader/trading/margin.py)."""
    if p.get("kind") != "margin" or p.get("maintenance_margin") is None:
        return {}
    excess = p["equity"] - p["maintenance_margin"]
    note = (f"Equity is {fmt.money(excess)} above it" if excess >= 0 else
            f"Equity is {fmt.money(-excess)} below it")
    return {"maintenance_margin": (fmt.money(p["maintenance_margin"]), None),
            "maintenance_margin_note": (f"{note} · initial {fmt.money(p.get('initial_margin'))}",
                                        None if excess >= 0 else "down")}


def margin_call_state(p):
    """What the margin call notice shows (None: no call): it is made again when this changes."""
    if p.get("margin_call") is None:
        return None
    return p["margin_call"], p.get("margin_call_deadline")


def margin_call_inner(p):
    """The notice of an open margin call (empty without one): how much, by when, and what happens then."""
    if margin_call_state(p) is None:
        return ""
    return h("div", {"class": "flash error", "role": "alert", "id": "margin-call"},
             h("strong", "Margin call: "),
             f"your equity is {fmt.money(p['margin_call'])} below the maintenance requirement"
             f" ({fmt.money(p.get('maintenance_margin'))}). Meet it by {fmt.when(p.get('margin_call_deadline'))}"
             " — sell, buy to cover, or let prices move — or the platform then closes positions at the market until"
             " it is met, the largest requirement first.")


def margin_call_notice(p):
    """:func:`margin_call_inner` in the dashboard's section the live connection replaces."""
    return h("div", {"data-section": "margin-call"}, margin_call_inner(p)) if p.get("kind") == "margin" else ""


def summary_values(p):
    """The live values of :func:`summary`: {key: (text, sign)}.  Total P&L is the equity less the starting
    cash (``starting_cash`` in ``p``, else realized + unrealized): dividends count too."""
    total = p["realized_pl"] + p["unrealized_pl"]
    if p.get("starting_cash") is not None:
        total = p["equity"] - p["starting_cash"]
    other = total - p["realized_pl"] - p["unrealized_pl"]
    today_base = p["equity"] - p["change_today"]
    # The percent (of the equity the day began with) on a line of its own: beside the amount it wrapped in a
    # summary card's width.
    percent = fmt.percent((100 * p["change_today"] / today_base).quantize(Decimal("0.01"))) if today_base else ""
    return {
        "equity": (fmt.money(p["equity"]), None), "cash": (fmt.money(p["cash"]), None),
        "buying_power": (fmt.money(p["buying_power"]), None),
        "change_today": (fmt.money(p["change_today"], signed=True), fmt.sign(p["change_today"])),
        "change_today_note": (percent, None),
        "total_pl": (fmt.money(total, signed=True), fmt.sign(total)),
        "total_pl_note": (f"Realized {fmt.money(p['realized_pl'], signed=True)} · unrealized"
                          f" {fmt.money(p['unrealized_pl'], signed=True)}" +
                          (f" · dividends {fmt.money(other, signed=True)}" if other else ""), None),
        **margin_figures(p),
    }


POSITION_HEADERS = ["Symbol", ("Shares", "num"), ("Avg price", "num"), ("Last", "num"), ("Market value", "num"),
                    ("Unrealized P&L", "num"), ("Today", "num"), ""]


def position_action(pos):
    """A position's link to the order ticket that closes it, as a broker's "Sell" is: the ticket filled in with the
    shares held (a short position: "Buy to cover" the shares short), to preview and place as any order."""
    s, held = pos["symbol"], pos["quantity"]
    side, words = ("buy", "Buy to cover") if held < 0 else ("sell", "Sell")
    # (to the shares field itself: a browser focuses the target of a link's fragment if it can, else none — a
    # fragment naming the ticket's section took away the focus the page's script had put on the shares)
    return h("a", {"class": "btn small", "href": f"/asset/{s}?side={side}&qty={fmt.number_text(abs(held))}#t-qty",
                   "aria-label": f"{words} {fmt.quantity(abs(held))} {s}"}, words)


def position_rows(p, names=None):
    rows = []
    for pos in p["positions"]:
        s = pos["symbol"]
        name = (names or {}).get(s)
        rows.append(h("tr", {"data-symbol": s},
                      h("th", {"scope": "row", "data-label": "Symbol"},
                        h("a", {"href": f"/asset/{s}", "class": "sym"}, s),
                        h("span", {"class": "name"}, name) if name else ""),
                      num(fmt.quantity(pos["quantity"]), header="Shares"),
                      num(fmt.price(pos["average_price"]), header="Avg price"),
                      num(fmt.price(pos.get("price")), f"pos.{s}.price", header="Last"),
                      num(fmt.money(pos["market_value"]), f"pos.{s}.market_value", header="Market value"),
                      num(_pl_text(pos), f"pos.{s}.unrealized_pl", fmt.sign(pos["unrealized_pl"]),
                          header="Unrealized P&L"),
                      num(fmt.money(pos.get("change_today"), signed=True), f"pos.{s}.change_today",
                          fmt.sign(pos.get("change_today")), header="Today"),
                      h("td", {"class": "actions"}, position_action(pos))))
    return join(*rows)


def _pl_text(pos):
    text = fmt.money(pos["unrealized_pl"], signed=True)
    if pos.get("unrealized_percent") is not None:
        text += f" ({fmt.percent(pos['unrealized_percent'])})"
    return text


def position_values(p):
    out = {}
    for pos in p["positions"]:
        s = pos["symbol"]
        out[f"pos.{s}.price"] = (fmt.price(pos.get("price")), None)
        out[f"pos.{s}.market_value"] = (fmt.money(pos["market_value"]), None)
        out[f"pos.{s}.unrealized_pl"] = (_pl_text(pos), fmt.sign(pos["unrealized_pl"]))
        out[f"pos.{s}.change_today"] = (fmt.money(pos.get("change_today"), signed=True),
                                        fmt.sign(pos.get("change_today")))
    return out


#: Rows a chart's table shows (its newest): a chart of a year of days is for the eye; its table, the last weeks.
CHART_TABLE_ROWS = 30


def chart_table(summary, headers, rows, caption):
    """A chart's data for those who cannot see it (WCAG 1.1.1): its newest rows in a table, behind a disclosure.
    Made with the page (the chart moves on live; a reload brings the table up to date)."""
    rows = rows[-CHART_TABLE_ROWS:]
    return h("details", {"class": "chart-data"}, h("summary", summary),
             table(headers, join(*[h("tr", h("th", {"scope": "row", "data-label": headers[0]}, row[0]),
                                     *[num(v, header=name[0]) if isinstance(name, tuple) else cell(v, name)
                                       for name, v in zip(headers[1:], row[1:])]) for row in reversed(rows)]),
                   caption=f"{caption}, newest first" + (f" (the last {CHART_TABLE_ROWS})"
                                                         if len(rows) == CHART_TABLE_ROWS else ""),
                   empty="No data yet."))


def _point_time(stamp, timeframe):
    moment = datetime.fromtimestamp(stamp, timezone.utc)
    return fmt.day(moment) if timeframe == "1D" else fmt.when(moment)


def equity_points(history):
    return [[t, fmt.number_text(v)] for t, v in zip(history["timestamps"], history["equity"])]


#: Seconds in a bucket of each equity timeframe (the live value updates the last bucket, or starts one).
BUCKETS = {"1Min": 60, "5Min": 300, "15Min": 900, "1H": 3600, "1D": 86400}


def close_all(csrf, p):
    """The dashboard's "Close all" (its portfolio ``p`` has positions), else nothing."""
    if not p["positions"]:
        return ""
    return post_form("/positions/close-all", csrf, button("Close all", "btn small danger"), cls="inline",
                     confirm="Cancel every open order of this portfolio and sell (or buy back) every position at the"
                             " market?")


def dashboard_page(chrome, p, history, chosen_range, names=None, ranges=("1D", "1W", "1M", "ALL")):
    label = RANGES[chosen_range]
    ranges = h("div", {"class": "seg", "role": "group", "aria-label": "Range"},
               *[h("a", {"href": f"/?range={key}", "aria-current": "true" if key == chosen_range else None},
                   RANGES[key]) for key in ranges])
    points = equity_points(history)
    base = history["equity"][0] if history["equity"] else None
    # From the portfolio's start if the range reaches back before it (site.equity_history): when it was made or
    # reset, in market time ('made'), or its first trade ('first trade': made before that was kept, or the first
    # trade is in the curve's first bucket).
    started = history.get("since_start")
    since_start = started and points and p.get("starting_cash") is not None
    before = False
    if since_start:
        # All of it: from the cash it started with, the bucket before its first point (the equity after that
        # day's trading), so that the change is the total P&L.
        base = p["starting_cash"]
    elif points and history.get("base_value") is not None:
        # Another range: from the equity at the close before it (the API's base_value), as its profit and loss
        # counts; counted from its first point, the first day's result was left out (the two differed).
        base, before = history["base_value"], True
    if since_start or before:  # (the base is the chart's first point, at the candle before the range's: the
        # close before a Monday is a Friday's, not a Sunday's; a bucket before the first point if no price is known
        # before it; its row in the table says what it is)
        at = history.get("base_time")
        if at is None or at >= points[0][0]:
            at = points[0][0] - BUCKETS.get(history["timeframe"], 86400)
        points.insert(0, [at, fmt.number_text(base)])
    change = (history["equity"][-1] - base) if history["equity"] else None

    def day_of(i):  # the day of the chart's i-th point
        return fmt.day(datetime.fromtimestamp(points[i][0], timezone.utc))

    chart = h("section", {"class": "card chart-card", "aria-labelledby": "equity-title"},
              h("div", {"class": "card-head"}, h("h2", {"id": "equity-title"}, "Equity"), ranges),
              h("p", {"class": "chart-note"},
                join(f"{label}: ", live("equity_range_change", fmt.money(change, signed=True), fmt.sign(change)),
                     f" since the close before {day_of(1)}" if before else
                     f" since {day_of(0)}" if not since_start else
                     f" since it started (its first trade: {day_of(1)})" if started == "first trade" else
                     f" since it started ({day_of(1)})")
                if len(points) > 1 and not history.get("no_trades") else
                "No trades yet: your equity is the cash you started with (the line stays flat until your first"
                " trade)." if history.get("no_trades") else
                "Not enough history yet to show a change over this range."),
              h("div", {"id": "equity-chart", "class": "chart small", "role": "img",
                        "aria-label": f"Equity, {label.lower()}",
                        "data-bucket": str(BUCKETS.get(history["timeframe"], 86400)), "data-zone": fmt.zone_name(),
                        "data-points": json.dumps(points, separators=(",", ":"))}),
              chart_table("The equity as a table", ["Time", ("Equity", "num")],
                          [(_point_time(t, history["timeframe"]) if i or not (since_start or before) else
                            "Starting cash" if since_start else "Previous close", fmt.money(Decimal(v)))
                           for i, (t, v) in enumerate(points)],
                          f"Equity, {label.lower()}"))
    positions = h("section", {"class": "card", "aria-labelledby": "positions-title"},
                  h("div", {"class": "card-head"}, h("h2", {"id": "positions-title"}, "Positions"),
                    h("div", {"class": "head-actions"},
                      # (sent again by the live connection when the positions come or go)
                      h("div", {"data-section": "close-all"}, close_all(chrome.csrf, p)),
                      h("a", {"class": "btn small primary", "href": "/assets"}, "Trade"))),
                  table(POSITION_HEADERS, position_rows(p, names), section="positions", caption="Your positions",
                        empty=EMPTY["positions"], cls="data stack-on-phone"))
    notice = suspended_notice(p.get("portfolio") or chrome.portfolio) if p.get("suspend_trade") else ""
    main = join(h("h1", {"class": "sr-only"}, "Dashboard"), notice, margin_call_notice(p), summary(p), chart,
                positions)
    data = {"data-range": chosen_range}
    if len(points) > 1:
        data["data-range-base"] = fmt.number_text(base)
    return document(chrome, "Dashboard", main, page="dashboard", charts=True, data=data)


# --- assets -------------------------------------------------------------------------------------------


#: The watchlist forms' fields, for the error box: (words of a refusal, the field they name).
WATCHLIST_FIELDS = ((("name",), "w-name"), (("symbol", "watchlist holds"), "w-symbols"))


def list_fields(n):
    """The same for the n-th list's "Add symbols" form: a refusal names its own field."""
    return ((("symbol", "watchlist holds"), f"w-add-{n}"),)


def _quote_cells(q, s):
    change = q["price"] - q["previous_close"] if q.get("previous_close") is not None else None
    pct = fmt.change_percent(q["price"], q.get("previous_close"))
    return (num(fmt.price(q["price"]), f"quote.{s}.price", header="Last"),
            num(f"{fmt.price(change) if change is None else fmt.money(change, signed=True)}"
                f" ({fmt.percent(pct)})" if pct is not None else "—", f"quote.{s}.change",
                fmt.sign(change), header="Change"))


def watchlists_card(chrome, lists, quotes, refused=(None, None, {}), said=None):
    """The account's watchlists (``lists``: dicts with name and symbols, in order), each with its symbols' prices,
    a form to add symbols and one to delete it, then a form for a new one.  ``refused``: (which form, why, what
    was typed) of a refusal (the form named ``create``, or ``list:NAME``); ``said``: the flash message of a
    change that was made, shown here rather than at the page's top."""
    which, why, typed = refused
    hidden = lambda name: h("input", {"type": "hidden", "name": "name", "value": name})  # noqa: E731
    parts = []
    for w in lists:
        name = w["name"]
        rows = []
        for s in w["symbols"]:
            q = quotes.get(s)
            remove = post_form("/watchlists/remove", chrome.csrf, hidden(name),
                               h("input", {"type": "hidden", "name": "symbol", "value": s}),
                               button("Remove", "btn small", **{"aria-label": f"Remove {s} from {name}"}),
                               cls="inline")
            rows.append(h("tr", h("th", {"scope": "row", "data-label": "Symbol"},
                                  h("a", {"class": "sym", "href": f"/asset/{s}"}, s),
                                  h("span", {"class": "name"}, (q or {}).get("name") or "")),
                          *(_quote_cells(q, s) if q else (num("—", header="Last"), num("—", header="Change"))),
                          cell(remove, header="")))
        mine = which == f"list:{name}"
        add = post_form("/watchlists/add", chrome.csrf, hidden(name),
                        field_input("Add symbols", "symbols", typed.get("symbols", "") if mine else "",
                                    ident=f"w-add-{len(parts)}", maxlength="400", autocapitalize="characters",
                                    hint="One or more, separated by commas or spaces: AAPL, MSFT."),
                        button("Add", "btn small"), cls="stack inline-form", label=f"Add symbols to {name}")
        delete = post_form("/watchlists/delete", chrome.csrf, hidden(name),
                           button("Delete list", "btn small danger", **{"aria-label": f"Delete the watchlist {name}"}),
                           cls="inline", confirm=f"Delete the watchlist {name}?")
        parts.append(h("div", {"class": "watchlist", "id": f"watchlist-{len(parts)}"},
                       h("h3", name), error_box(why, list_fields(len(parts))) if mine else "",
                       table(["Asset", ("Last", "num"), ("Change today", "num"), ""], join(*rows),
                             caption=f"Watchlist {name}", empty="No symbols yet: add some below.",
                             cls="data stack-on-phone"), add, delete))
    create = post_form(
        "/watchlists", chrome.csrf,
        field_input("Name", "name", typed.get("name", "") if which == "create" else "", ident="w-name",
                    maxlength="64", hint="1 to 64 characters."),
        field_input("Symbols", "symbols", typed.get("symbols", "") if which == "create" else "", ident="w-symbols",
                    required=False, maxlength="400", autocapitalize="characters",
                    hint="Optional: separated by commas or spaces."),
        button("Create watchlist", "btn primary"), cls="stack inline-form", label="Create a watchlist")
    return h("section", {"class": "card", "id": "watchlists", "aria-labelledby": "watchlists-title"},
             h("h2", {"id": "watchlists-title"}, "Watchlists"),
             h("p", {"class": "muted"}, "Lists of stocks to follow, the same in the command line (papertrader"
                                        " watchlist) and for your API keys."),
             message(said), *parts, h("h3", "New watchlist"),
             error_box(why, WATCHLIST_FIELDS) if which == "create" else "", create)


def assets_page(chrome, quotes, query, watchlists="", watched=()):
    search = h("form", {"method": "get", "action": "/assets", "class": "search", "role": "search"},
               h("label", {"for": "q", "class": "sr-only"}, "Search assets"),
               h("input", {"id": "q", "name": "q", "type": "search", "value": query, "maxlength": "64",
                           "placeholder": "Search by symbol or name", "autocomplete": "off",
                           "autocapitalize": "characters"}),
               button("Search", "btn"))
    rows = []
    for q in quotes:
        s = q["symbol"]
        change = q["price"] - q["previous_close"] if q.get("previous_close") is not None else None
        pct = fmt.change_percent(q["price"], q.get("previous_close"))
        rows.append(h("tr",
                      h("th", {"scope": "row", "data-label": "Symbol"},
                        h("a", {"class": "sym", "href": f"/asset/{s}"}, s),
                        h("span", {"class": "name"}, q.get("name") or "")),
                      num(fmt.price(q["price"]), f"quote.{s}.price", header="Last"),
                      num(f"{fmt.price(change) if change is None else fmt.money(change, signed=True)}"
                          f" ({fmt.percent(pct)})" if pct is not None else "—", f"quote.{s}.change",
                          fmt.sign(change), header="Change"),
                      cell(h("span", {"class": "badge warn"}, "stale") if q.get("stale") else "", header="")))
    listing = table(["Asset", ("Last", "num"), ("Change today", "num"), ("Price freshness", "sr")], join(*rows),
                    caption="Assets",
                    empty=f"No asset matches {query!r}." if query else
                    "No prices yet: try again after the next update.",
                    cls="data stack-on-phone")
    main = join(h("section", {"class": "card"}, h("h1", "Trade"), search, listing), watchlists)
    return document(chrome, "Trade", main, page="assets",
                    data={"data-symbols": " ".join(list(dict.fromkeys([*watched, *(q["symbol"] for q in quotes)]))
                                                   [:200])})


def price_values(symbol, q):
    """Live values of a symbol's last price and today's change (a row of a list of prices)."""
    change = q["price"] - q["previous_close"] if q.get("previous_close") is not None else None
    pct = fmt.change_percent(q["price"], q.get("previous_close"))
    return {f"quote.{symbol}.price": (fmt.price(q["price"]), None),
            f"quote.{symbol}.change": ((f"{fmt.money(change, signed=True)} ({fmt.percent(pct)})" if change is not None
                                        else "—"), fmt.sign(change))}


def quote_values(symbol, q, day=None):
    """Live values of an asset's quote block."""
    if q is None:
        return {}
    out = price_values(symbol, q)
    out[f"quote.{symbol}.bid"] = (fmt.price(q.get("bid")), None)
    out[f"quote.{symbol}.ask"] = (fmt.price(q.get("ask")), None)
    out[f"quote.{symbol}.time"] = (fmt.when(q.get("time")) + (" (stale)" if q.get("stale") else ""), None)
    out[f"quote.{symbol}.previous_close"] = (fmt.price(q.get("previous_close")), None)
    if day is not None:
        out[f"quote.{symbol}.day_range"] = (f"{fmt.price(day['low'])} – {fmt.price(day['high'])}", None)
    return out


def quote_value(symbol, q, day=None):
    """A function giving an element of ``symbol``'s quote that the live connection keeps up to date ('—': none
    yet): ``v("price")``, ``v("bid")`` ..."""
    values = quote_values(symbol, q, day)

    def v(key):
        text, sign = values.get(f"quote.{symbol}.{key}", ("—", None))
        return live(f"quote.{symbol}.{key}", text, sign)

    return v


def candle_rows(candles):
    return [[int(c["time"].timestamp()), fmt.number_text(c["open"]), fmt.number_text(c["high"]),
             fmt.number_text(c["low"]), fmt.number_text(c["close"]), c["volume"]] for c in candles]


def watch_form(chrome, symbol, lists):
    """On an asset's page: which of the account's watchlists (``lists``: dicts with name and symbols) hold it, and
    a form to add it to another (a link to make one, if there is none)."""
    holding = [w["name"] for w in lists if symbol in w["symbols"]]
    others = [w["name"] for w in lists if symbol not in w["symbols"]]
    said = h("p", {"class": "muted"}, f"In your watchlist{'s' if len(holding) > 1 else ''}: {', '.join(holding)}."
             ) if holding else ""
    if not lists:
        # One sentence, one flex item (.watch lays out its children side by side: the link and the rest of the
        # sentence stood on two lines on a phone).
        return h("p", {"class": "muted watch"}, h("span", h("a", {"href": "/assets#watchlists"}, "Make a watchlist"),
                                                  f" to follow {symbol} with other stocks."))
    if not others:
        return h("div", {"class": "watch"}, said)
    add = post_form("/watchlists/add", chrome.csrf,
                    h("input", {"type": "hidden", "name": "symbols", "value": symbol}),
                    h("input", {"type": "hidden", "name": "back", "value": f"/asset/{symbol}"}),
                    h("label", {"for": "watch-name", "class": "sr-only"}, "Watchlist"),
                    h("select", {"id": "watch-name", "name": "name"},
                      *[h("option", {"value": name}, name) for name in others]),
                    button("Add to watchlist", "btn small"), cls="inline", label=f"Add {symbol} to a watchlist")
    return h("div", {"class": "watch"}, said, add)


def asset_page(chrome, asset, quote, candles, interval, day, portfolio, open_orders, side="buy", form=None,
               error=None, client_order_id="", intervals=None, watch=""):
    """``intervals``: the candle intervals the market has (a market of daily bars has no intraday ones);
    ``watch``: the watchlists part (:func:`watch_form`)."""
    s = asset["symbol"]
    v = quote_value(s, quote, day)

    intervals = h("div", {"class": "seg", "role": "group", "aria-label": "Candle interval"},
                  *[h("a", {"href": f"/asset/{s}?interval={key}", "aria-current": "true" if key == interval else None,
                            "aria-label": f"{label}, {INTERVAL_WORDS[key]} candles"}, label) for key, label in INTERVALS
                    if intervals is None or key in intervals])
    head = h("div", {"class": "asset-head"},
             h("div", h("h1", s, " ", h("span", {"class": "name"}, asset.get("name") or "")),
               h("p", {"class": "muted"}, asset.get("exchange") or "", " · ",
                 "fractional shares" if asset.get("fractionable") else "whole shares only",
                 "" if asset.get("tradable", True) else " · not tradable now"), watch),
             h("div", {"class": "quote"}, h("span", {"class": "last"}, v("price")),
               h("span", {"class": "chg"}, v("change"))))
    facts = h("dl", {"class": "facts"},
              *[h("div", h("dt", label), h("dd", v(key))) for label, key in
                (("Bid", "bid"), ("Ask", "ask"), ("Day range", "day_range"), ("Previous close", "previous_close"),
                 ("As of", "time"))])
    last = candles[-1] if candles else None
    chart = h("section", {"class": "card chart-card", "aria-labelledby": "chart-title"},
              h("div", {"class": "card-head"}, h("h2", {"id": "chart-title"}, "Price"), intervals),
              h("div", {"id": "price-chart", "class": "chart", "role": "img",
                        "aria-label": f"{s} candlestick chart, {INTERVAL_WORDS[interval]} candles with volume" +
                                      (f"; last close {fmt.price(last['close'])}" if last else ""),
                        "data-interval": interval, "data-zone": fmt.zone_name(),
                        "data-candles": json.dumps(candle_rows(candles), separators=(",", ":"))}),
              h("p", {"class": "chart-note"}, f"{len(candles)} candle{'s' if len(candles) != 1 else ''}" if candles
                else "No candles yet for this interval."),
              chart_table("The candles as a table", ["Time", ("Open", "num"), ("High", "num"), ("Low", "num"),
                                                     ("Close", "num"), ("Volume", "num")],
                          [(fmt.day(c["time"]) if interval == "1d" else fmt.when(c["time"]), fmt.price(c["open"]),
                            fmt.price(c["high"]), fmt.price(c["low"]), fmt.price(c["close"]), f"{c['volume']:,}")
                           for c in candles], f"{s}, {INTERVAL_WORDS[interval]} candles"))
    main = join(head, facts,
                # In reading (and Tab) order: the chart, the ticket and the position, then the open orders; on a wide
                # screen the ticket and the position are a column at the right (app.css).
                h("div", {"class": "columns"},
                  h("div", {"class": "col-main"}, chart),
                  h("div", {"class": "col-side"},
                    ticket(chrome, s, quote, portfolio, side, form or {}, error, client_order_id, asset),
                    h("section", {"class": "card position-card", "aria-labelledby": "pos-title"},
                      h("h2", {"id": "pos-title"}, "Your position"),
                      h("div", {"data-section": "asset-position"}, asset_position(s, portfolio, chrome.csrf)))),
                  h("section", {"class": "card sym-orders", "aria-labelledby": "sym-orders-title"},
                    h("h2", {"id": "sym-orders-title"}, f"Your open {s} orders"),
                    open_orders_table(open_orders, chrome.csrf, section="symbol-orders", back=f"/asset/{s}"))))
    return document(chrome, s, main, page="asset", symbol=s, charts=True, data={"data-interval": interval})


def asset_position(symbol, portfolio, csrf):
    pos = next((p for p in portfolio["positions"] if p["symbol"] == symbol), None)
    if pos is None:
        return h("p", {"class": "muted"}, f"You hold no {symbol}.")
    shares = fmt.quantity(abs(pos["quantity"]))
    close = post_form(f"/asset/{symbol}/close", csrf,
                      button("Close position", "btn small danger", **{"aria-label": f"Close your {symbol} position"}),
                      cls="inline close-position",
                      confirm=(f"Sell all {shares} {symbol} at the market? Your open {symbol} sell orders, if any, are"
                               " canceled first." if pos["quantity"] > 0 else
                               f"Buy back all {shares} {symbol} at the market? Your open {symbol} buy orders, if any,"
                               " are canceled first."))
    return join(h("dl", {"class": "facts tight"},
             h("div", h("dt", "Shares"), h("dd", fmt.quantity(pos["quantity"]))),
             h("div", h("dt", "Average price"), h("dd", fmt.price(pos["average_price"]))),
             h("div", h("dt", "Market value"),
               h("dd", live(f"pos.{symbol}.market_value", fmt.money(pos["market_value"])))),
             h("div", h("dt", "Unrealized P&L"), h("dd", live(f"pos.{symbol}.unrealized_pl", _pl_text(pos),
                                                              fmt.sign(pos["unrealized_pl"]))))), close)


ORDER_TYPES = [("market", "Market"), ("limit", "Limit"), ("stop", "Stop"), ("stop_limit", "Stop limit"),
               ("trailing_stop", "Trailing stop")]
TIF_CHOICES = [("day", "Day"), ("gtc", "Good till canceled (GTC)"), ("ioc", "Immediate or cancel (IOC)"),
               ("fok", "Fill or kill (FOK)"), ("opg", "At the open (OPG)"), ("cls", "At the close (CLS)")]


def _select(label, name, choices, chosen, hint=None, **more):
    ident = f"t-{name}"
    return h("div", {"class": "field", **more}, h("label", {"for": ident}, label),
             h("select", {"id": ident, "name": name, "aria-describedby": f"{ident}-hint" if hint else None},
               *[h("option", {"value": value, "selected": value == chosen}, text) for value, text in choices]),
             h("p", {"class": "hint", "id": f"{ident}-hint"}, hint) if hint else "")


def _decimal_input(label, name, value, hint=None, show_for=None, placeholder=None):
    ident = f"t-{name}"
    return h("div", {"class": "field", "data-show-for": show_for},
             h("label", {"for": ident}, label),
             h("input", {"id": ident, "name": name, "type": "text", "inputmode": "decimal", "value": value or "",
                         "autocomplete": "off", "maxlength": "24", "placeholder": placeholder,
                         # no pattern: '$1,250.50' and '1,000' are the master's to read (a browser's pattern
                         # check stopped them with its own words, though the preview read them)
                         "aria-describedby": f"{ident}-hint" if hint else None}),
             h("p", {"class": "hint", "id": f"{ident}-hint"}, hint) if hint else "")


def real_time(seconds):
    """'about 5 seconds', 'about 2 minutes', 'less than a second'."""
    if seconds < 1:
        return "less than a second"
    if seconds < 120:
        n = round(seconds)
        return f"about {n} second{'s' if n != 1 else ''}"
    if seconds < 7200:
        return f"about {round(seconds / 60)} minutes"
    return f"about {round(seconds / 3600)} hours"


def day_hint(clock, interval):
    """What a Day order means here: until the session's close, which on a replay comes within seconds of real time
    (one step of market time per update, every ``interval`` seconds; a step of '1d' plays a whole session)."""
    if not clock or clock.get("mode") != "replay" or not interval:
        return "Day: until the close of the market's current session, in its own hours."
    if clock.get("state") == "paused":
        return ("Day: until this session's close — this server's replay is paused: market time stands still until"
                " its operator resumes it.")
    start = "Day: until this session's close — on this server's replay, "
    step = clock.get("step") or "1d"
    if step == "1d":
        return start + f"a session lasts {real_time(interval)}."
    number, unit = step[:-1], step[-1:]
    if not number.isdigit() or unit not in ("m", "h"):
        return start + "a session lasts moments."
    minutes = int(number) * (60 if unit == "h" else 1)
    moves = f"{number} {'hour' if unit == 'h' else 'minute'}{'s' if number != '1' else ''} of market time passes" \
            f" {'every ' + real_time(interval)[len('about '):] if interval >= 1 else 'several times a second'}"
    opens, closes = clock.get("next_open"), clock.get("next_close")
    if not clock.get("is_open") and opens and closes and closes > opens:
        length = (closes - opens).total_seconds()
        steps = -(-int(length) // (minutes * 60))
        return start + f"a {length / 3600:g}-hour session lasts {real_time(steps * interval)} ({moves})."
    return start + moves + "."


def ticket(chrome, symbol, quote, portfolio, side, form, error, client_order_id, asset):
    """The order ticket; ``portfolio``'s ``configuration`` (its trading settings, when known) says whether it may
    trade now and in fractions."""
    side = side if side in ("buy", "sell") else "buy"
    configuration = (portfolio or {}).get("configuration") or {}
    suspended = bool(configuration.get("suspend_trade") or (portfolio or {}).get("suspend_trade"))
    whole = configuration.get("fractional_trading") is False
    kind = form.get("type") or "market"
    amount_by = form.get("amount_by") or "shares"
    sides = h("fieldset", {"class": "sides"}, h("legend", {"class": "sr-only"}, "Side"),
              *[join(h("input", {"type": "radio", "id": f"t-side-{value}", "name": "side", "value": value,
                                 "checked": side == value}),
                     h("label", {"for": f"t-side-{value}", "class": f"side-{value}"}, text))
                for value, text in (("buy", "Buy"), ("sell", "Sell"))])
    amount = h("fieldset", {"class": "amount-by"}, h("legend", "Amount in"),
               *[join(h("input", {"type": "radio", "id": f"t-by-{value}", "name": "amount_by", "value": value,
                                  "checked": amount_by == value}),
                      h("label", {"for": f"t-by-{value}"}, text))
                 for value, text in (("shares", "Shares"), ("dollars", "Dollars"))])
    fields = [
        sides,
        _select("Order type", "type", ORDER_TYPES, kind),
        amount,
        _decimal_input("Shares", "qty", form.get("qty"),
                       hint="Whole shares only: this portfolio's settings turn fractional shares off." if whole else
                       "Up to 6 decimals.", show_for="shares", placeholder="0"),
        _decimal_input("Amount ($)", "notional", form.get("notional"),
                       hint="Refused in this portfolio: its settings allow whole shares only, not dollar amounts."
                       if whole else "A market day order for this many dollars; the shares are fixed at the fill.",
                       show_for="dollars", placeholder="0.00"),
        _decimal_input("Limit price ($)", "limit_price", form.get("limit_price"),
                       hint="Limit and stop limit orders: at this price or better.", show_for="limit stop_limit"),
        _decimal_input("Stop price ($)", "stop_price", form.get("stop_price"),
                       hint="Stop and stop limit orders: triggers once the price reaches it. A stop then sells (or"
                            " buys) at the market: past the stop when the price jumps over it.",
                       show_for="stop stop_limit"),
        _select("Trail by", "trail_by", [("percent", "Percent"), ("price", "Dollars")],
                form.get("trail_by") or "percent",
                **{"data-show-for": "trailing_stop"}),
        _decimal_input("Trail", "trail", form.get("trail"), hint="How far the stop follows the best price.",
                       show_for="trailing_stop"),
        exits_fields(form, symbol, portfolio),
        _select("Time in force", "time_in_force", TIF_CHOICES, form.get("time_in_force") or "day",
                hint=join("Stop, stop limit and trailing stop orders take Day or GTC.",
                          h("br"), day_hint(chrome.clock, chrome.update_interval))),
    ]
    preview = preview_box(portfolio)
    # The portfolio the order goes to, named on the ticket and sent with it: the one the page was made for,
    # even if another tab shows another one meanwhile.
    name = (portfolio or {}).get("portfolio") or chrome.portfolio
    # (and by its uuid: renamed or closed elsewhere before the ticket is sent, it still finds that one, or none)
    ticket_uuid = (portfolio or {}).get("account_uuid") if name else None
    where = ""
    if name:
        change = h("a", {"href": "/portfolios"}, "change") if len(chrome.portfolios) > 1 else ""
        where = h("p", {"class": "ticket-portfolio", "id": "ticket-portfolio"}, "Portfolio: ", h("strong", name),
                  join(" (", change, ")") if change else "")
    form_markup = post_form(
        f"/asset/{symbol}/order", chrome.csrf,
        h("input", {"type": "hidden", "name": "client_order_id", "value": client_order_id}),
        h("input", {"type": "hidden", "name": "portfolio", "value": name}) if name else "",
        h("input", {"type": "hidden", "name": "portfolio_uuid", "value": ticket_uuid}) if ticket_uuid else "",
        *fields, preview, suspended_notice(name, "ticket") if suspended else "",
        button("Place order", "btn primary wide", id="place-order"),
        cls="stack ticket-form", label=f"Order ticket for {symbol}")
    return h("section", {"class": "card ticket", "id": "ticket", "aria-labelledby": "ticket-title"},
             h("h2", {"id": "ticket-title"}, f"Trade {symbol}"), where, error_box(error, ORDER_FIELDS), form_markup)


EXIT_FIELDS = ("take_profit", "stop_loss", "stop_loss_limit")


def exits_fields(form, symbol, portfolio):
    """The ticket's optional exits: a take-profit and a stop-loss that make the order a bracket, OTO or OCO order
    (papertrader/trading/contingent.py; the page hides them for orders that take none: by dollars, trailing stops).
    Open when one was typed (a refused order's form)."""
    held = next((p["quantity"] for p in (portfolio or {}).get("positions", ()) if p["symbol"] == symbol), None)
    closing = ""
    if held:
        closing = (f" You hold {fmt.quantity(held)} {symbol}: a limit sell of them with a stop-loss is an OCO order,"
                   " its limit price the take-profit; whichever fills first cancels the other." if held > 0 else
                   f" You are short {fmt.quantity(-held)} {symbol}: a limit buy to cover with a stop-loss is an OCO"
                   " order, its limit price the take-profit; whichever fills first cancels the other.")
    return h("details", {"class": "exits more-rules", "data-exits": "yes",
                         "open": any(form.get(k) for k in EXIT_FIELDS)},
             h("summary", "Exits: take-profit and stop-loss (optional)"),
             h("p", {"class": "hint", "id": "t-exits-hint"},
               "For an order by shares, Day or GTC. With both, a buy is a bracket order (with one, an OTO order):"
               " its exits wait until it fills, then sell what it bought; whichever fills first cancels the other.",
               closing),
             _decimal_input("Take-profit limit price ($)", "take_profit", form.get("take_profit"),
                            hint="A limit order on the other side: sells at this price or better."),
             _decimal_input("Stop-loss stop price ($)", "stop_loss", form.get("stop_loss"),
                            hint="A stop order on the other side: triggers once the price reaches it."),
             _decimal_input("Stop-loss limit price ($)", "stop_loss_limit", form.get("stop_loss_limit"),
                            hint="Optional: makes the stop-loss a stop limit order, at this price or better."))


# --- orders ---------------------------------------------------------------------------------------------


def order_summary(o):
    """'Buy 10 AAPL', 'Sell $500.00 of MSFT'."""
    amount = fmt.quantity(o["quantity"]) if o.get("quantity") is not None else f"{fmt.money(o.get('notional'))} of"
    return f"{o['side'].capitalize()} {amount} {o['symbol']}"


def order_prices(o):
    parts = []
    if o.get("limit_price") is not None:
        parts.append(f"limit {fmt.price(o['limit_price'])}")
    if o.get("stop_price") is not None:
        parts.append(f"stop {fmt.price(o['stop_price'])}")
    if o.get("trail_price") is not None:
        parts.append(f"trail {fmt.price(o['trail_price'])}")
    if o.get("trail_percent") is not None:
        parts.append(f"trail {fmt.percent(o['trail_percent'], signed=False)}")
    if o.get("stop_level") is not None and o["type"] == "trailing_stop":
        parts.append(f"stop now {fmt.price(o['stop_level'])}")
    return ", ".join(parts) or "at the market"


def is_part(o):
    """Is ``o`` a part of a bracket, OCO or OTO order (papertrader/trading/contingent.py)?"""
    return (o.get("order_class") or "simple") in fmt.CLASSES


def parent_name(o, known=None):
    """How a page names the order an exit hangs from: as it names any order ('Buy 10 AAPL') when ``known`` (orders by
    uuid) has it, else by what it is to the exit ('its entry'; an OCO's stop-loss hangs from its take-profit)."""
    known = known or {}
    parent = known.get(o.get("parent_uuid")) or known.get(("id", o.get("parent_id")))
    if parent is not None:
        return order_summary(parent)
    return "its take-profit" if o.get("order_class") == "oco" else "its entry"


def order_role(o, known=None, link=True):
    """The part ``o`` plays in a bracket, OCO or OTO order, in words ('Bracket entry', 'Take-profit of Buy 10 AAPL',
    with a link to that order); '' for a simple order.  ``known``: orders by uuid, to name an exit's first part."""
    if not is_part(o):
        return ""
    kind, leg, parent = o["order_class"], o.get("leg"), o.get("parent_uuid")
    if parent is None:
        return "OCO take-profit" if kind == "oco" else f"{fmt.CLASSES[kind]} entry"
    name = parent_name(o, known)
    target = h("a", {"href": f"/orders/{parent}"}, name) if link else name
    if kind == "oco":
        return join("OCO stop-loss, with ", target)
    return join(f"{fmt.LEGS.get(leg, 'Exit')} of ", target)


def held_text(o, known=None, link=True):
    """What a held exit waits for: 'Held until Buy 10 AAPL fills' (its entry, linked)."""
    name = parent_name(o, known)
    target = h("a", {"href": f"/orders/{o['parent_uuid']}"}, name) if link and o.get("parent_uuid") else name
    return join("Held until ", target, " fills")


def role_line(o, known=None, link=True):
    """The line under an order's name in a table: its part in a bracket, OCO or OTO order ('' for a simple one)."""
    role = order_role(o, known, link)
    return h("span", {"class": "role"}, role) if role else ""


def status_badge(o):
    """An order's status as a badge (after its name: with a space between, or a screen reader runs them together:
    'AAPLopen')."""
    return h("span", {"class": f"badge {o['status']}"}, fmt.STATUS.get(o["status"], o["status"]))


def exits_placed(order):
    """What a placed bracket, OCO or OTO order's message adds of its exits (``legs``): '' for a simple order."""
    legs = order.get("legs") or []
    if not is_part(order) or not legs:
        return ""
    said = " and ".join(f"{fmt.LEGS.get(leg.get('leg'), 'exit').lower()} ({order_prices(leg)})" for leg in legs)
    if order["order_class"] == "oco":
        return f" An OCO order, with its {said}: whichever fills first cancels the other."
    return f" {'A bracket' if order['order_class'] == 'bracket' else 'An OTO'} order: its {said}, held until it fills."


def exits_canceled(order):
    """What canceling a part of a bracket, OCO or OTO order did to its other parts, for the message that says so."""
    if not is_part(order):
        return ""
    if order.get("leg") is None:
        if not order.get("filled_quantity"):
            return " Its exits are canceled with it."
        return f" Its exits open for the {fmt.quantity(order['filled_quantity'])} shares it filled."
    if order["order_class"] in ("bracket", "oco"):
        return " The other exit is canceled with it."
    return ""


def price_cell(o):
    """The prices of an order as its table shows them (the type is in its own column)."""
    if o["type"] == "limit":
        return fmt.price(o["limit_price"])
    if o["type"] == "stop":
        return fmt.price(o["stop_price"])
    if o["type"] == "market":
        return "market"
    return order_prices(o)


def filled_cell(o):
    """'0 / 10', '4 / 10 @ $187.25'."""
    text = fmt.quantity(o["filled_quantity"])
    if o.get("quantity") is not None:
        text += f" / {fmt.quantity(o['quantity'])}"
    if o.get("average_price"):
        text += f" @ {fmt.exact_price(o['average_price'])}"
    return text


def tif_text(o):
    """An order's time in force in words ('Good till canceled'), the same in every table of orders."""
    return fmt.TIFS.get(o["time_in_force"], o["time_in_force"])


OPEN_HEADERS = ["Order", "Type", ("Price", "num"), ("Filled", "num"), "Time in force", "Placed", ""]


def known_orders(*lists):
    """Orders by uuid, and by ("id", id) (a game player's page has no uuids), to name the order an exit hangs from."""
    known = {}
    for o in (o for orders in lists for o in orders):
        if o.get("uuid"):
            known[o["uuid"]] = o
        if o.get("id") is not None:
            known[("id", o["id"])] = o
    return known


def replaceable(o):
    """Whether ``o`` may be replaced: not the entry of a bracket or OTO order (an exit's prices may move)."""
    return not is_part(o) or o.get("leg") is not None


def described(o):
    """An order told apart from the others in a list, for a screen reader's list of buttons: what, at what price,
    when placed ('Buy 10 AAPL (limit $187.00), placed 2026-09-01 10:30 EDT')."""
    return f"{order_summary(o)} ({order_prices(o)}), placed {fmt.when(o['created'])}"


def open_order_actions(o, csrf, back, known=None):
    """An open order's buttons: Replace (not for the entry of a bracket or OTO order, which is not replaced; an
    exit's prices may be) and Cancel; a held exit has no Cancel (it goes with its entry): it says what it waits
    for."""
    u = o["uuid"]
    replace = h("a", {"class": "btn small", "href": f"/orders/{u}/replace",
                      "aria-label": f"Replace: {described(o)}"}, "Replace") if replaceable(o) else ""
    if o["status"] == "held":
        return join(replace, h("span", {"class": "held-note"}, held_text(o, known), ": cancel that order to cancel it"))
    return join(replace, post_form(f"/orders/{u}/cancel", csrf,
                                   h("input", {"type": "hidden", "name": "back", "value": back}),
                                   button("Cancel", "btn small danger",
                                          **{"aria-label": f"Cancel: {described(o)}"}),
                                   cls="inline"))


def open_order_rows(orders, csrf, back, known=None):
    """``known``: more orders by uuid than ``orders`` (the closed ones), to name the order an exit hangs from."""
    known = {**(known or {}), **known_orders(orders)}
    rows = []
    for o in orders:
        u = o["uuid"]
        rows.append(h("tr", {"data-order": u},
                      h("th", {"scope": "row", "data-label": "Order"},
                        h("a", {"href": f"/orders/{u}"}, order_summary(o)), " ", status_badge(o), role_line(o, known)),
                      cell(fmt.TYPES.get(o["type"], o["type"]), "Type"),
                      num(price_cell(o), header="Price"),
                      num(filled_cell(o), header="Filled"),
                      cell(tif_text(o), "Time in force"),
                      cell(fmt.when(o["created"]), "Placed"),
                      h("td", {"class": "actions"}, open_order_actions(o, csrf, back, known))))
    return join(*rows)


def open_orders_table(orders, csrf, section="open-orders", back="/orders", known=None):
    return table(OPEN_HEADERS, open_order_rows(orders, csrf, back, known), section=section, caption="Open orders",
                 empty=EMPTY["open-orders"], cls="data stack-on-phone")


#: Listed newest placed first, as the open ones: when each was placed, and when it ended; its time in force in the
#: open orders' words (an IOC or FOK order's, a Day order's expiry, is why many ended as they did).
CLOSED_HEADERS = ["Order", "Type", ("Price", "num"), ("Filled", "num"), ("Commission", "num"), "Time in force",
                  "Status", "Placed", "Ended"]


def closed_order_rows(orders, known=None):
    known = {**(known or {}), **known_orders(orders)}
    rows = []
    for o in orders:
        u = o["uuid"]
        reason = o.get("reason")
        rows.append(h("tr", {"data-order": u},
                      h("th", {"scope": "row", "data-label": "Order"},
                        h("a", {"href": f"/orders/{u}"}, order_summary(o)), role_line(o, known)),
                      cell(fmt.TYPES.get(o["type"], o["type"]), "Type"),
                      num(price_cell(o), header="Price"),
                      cell(filled_cell(o), "Filled", cls="num filled"),
                      num(fmt.money(o.get("commission")), header="Commission"),
                      cell(tif_text(o), "Time in force"),
                      cell(join(h("span", {"class": f"badge {o['status']}"}, fmt.STATUS.get(o["status"], o["status"])),
                                h("span", {"class": "reason"}, fmt.said(reason)) if reason else ""), "Status"),
                      when_cell(o["created"], "Placed"),
                      when_cell(o.get("updated"), "Ended")))
    return join(*rows)


def closed_orders_table(orders, known=None):
    return table(CLOSED_HEADERS, closed_order_rows(orders, known), section="closed-orders", caption="Closed orders",
                 empty=EMPTY["closed-orders"], cls="data stack-on-phone orders")


def orders_page(chrome, open_orders, closed, next_before):
    more = ""
    if next_before:
        more = h("p", h("a", {"class": "btn small", "href": f"/orders?before={next_before}"}, "Older orders"))
    cancel_all = post_form("/orders/cancel-all", chrome.csrf, button("Cancel all", "btn small danger"), cls="inline",
                           confirm="Cancel every open order?") if open_orders else ""
    main = join(
        h("h1", "Orders"),
        h("section", {"class": "card", "aria-labelledby": "open-title"},
          h("div", {"class": "card-head"}, h("h2", {"id": "open-title"}, "Open"), cancel_all),
          open_orders_table(open_orders, chrome.csrf, known=known_orders(closed))),
        h("section", {"class": "card", "aria-labelledby": "closed-title"},
          h("h2", {"id": "closed-title"}, "Closed"), closed_orders_table(closed, known_orders(open_orders)), more))
    return document(chrome, "Orders", main, page="orders")


GROUP_HEADERS = ["Part", "Order", "Type", ("Price", "num"), ("Filled", "num"), "Status"]


def group_rows(first, current):
    """The parts of a bracket, OCO or OTO order (``first``: its first part, with its ``legs``), the one shown
    (``current``, a uuid) marked."""
    rows = []
    for o in [first, *(first.get("legs") or [])]:
        u = o["uuid"]
        role = "Entry" if o.get("leg") is None else fmt.LEGS.get(o["leg"], "Exit")
        name = h("strong", order_summary(o), " (this order)") if u == current else \
            h("a", {"href": f"/orders/{u}"}, order_summary(o))
        rows.append(h("tr", {"data-order": u, "aria-current": "true" if u == current else None},
                      h("th", {"scope": "row", "data-label": "Part"}, role),
                      cell(name, "Order"),
                      cell(fmt.TYPES.get(o["type"], o["type"]), "Type"),
                      num(price_cell(o), header="Price"),
                      num(filled_cell(o), header="Filled"),
                      cell(status_badge(o), "Status")))
    return join(*rows)


def order_page(chrome, o, group=None):
    """An order's page; a part of a bracket, OCO or OTO order also lists every part (``group``: its first part, as
    GetOrder answers, with its ``legs``; an exit's page is given it, a first part is its own)."""
    u = o["uuid"]
    if is_part(o) and group is None and o.get("parent_uuid") is None:
        group = o
    known = known_orders([group]) if group is not None else None
    status = join(status_badge(o), " ", fmt.said(o.get("reason")) or "")
    if o["status"] == "held":
        status = join(status_badge(o), " ", held_text(o, known),
                      ": it opens then for the shares the entry filled. Cancel the entry to cancel it.")
    facts = [("Status", status)]
    if is_part(o):
        facts += [("Order class", fmt.CLASS_WORDS[o["order_class"]].capitalize()), ("Part", order_role(o, known))]
    facts += [("Type", fmt.TYPES.get(o["type"], o["type"])), ("Price", order_prices(o)),
              ("Time in force", tif_text(o)),
              ("Filled", fmt.quantity(o["filled_quantity"]) + (f" @ {fmt.exact_price(o['average_price'])}"
                                                               if o.get("average_price") else "")),
              ("Commission", fmt.money(o.get("commission"))), ("Placed", fmt.when(o["created"])),
              ("Updated", fmt.when(o.get("updated"))),
              ("Expires", fmt.when(o.get("expires")) if o.get("expires") else "—"),
              ("Client order id", h("code", o["client_order_id"]))]
    if o.get("replaces_uuid"):
        facts.append(("Replaces", h("a", {"href": f"/orders/{o['replaces_uuid']}"}, "the earlier order")))
    if o.get("replaced_by_uuid"):
        facts.append(("Replaced by", h("a", {"href": f"/orders/{o['replaced_by_uuid']}"}, "the new order")))
    fills = [h("tr", cell(fmt.when(f["time"]), "Time"), num(fmt.quantity(f["quantity"]), header="Shares"),
               num(fmt.exact_price(f["price"]), header="Price"), num(fmt.money(f["commission"]), header="Commission"),
               num(fmt.money(f["amount"], signed=True), header="Amount"),
               cell(fmt.fills(f.get("model"), short=True), "Priced by"))
             for f in o.get("fills", [])]
    actions = ""
    if o["status"] in ("new", "partially_filled", "held"):
        what = "Cancel order"
        if is_part(o) and o.get("leg") is None:
            what = "Cancel order and its exits" if not o["filled_quantity"] else "Cancel the rest"
        actions = h("div", {"class": "row-actions"},
                    h("a", {"class": "btn", "href": f"/orders/{u}/replace"}, "Replace") if replaceable(o) else "",
                    "" if o["status"] == "held" else
                    post_form(f"/orders/{u}/cancel", chrome.csrf,
                              h("input", {"type": "hidden", "name": "back", "value": f"/orders/{u}"}),
                              button(what, "btn danger"), cls="inline"))
    parts = ""
    if group is not None:
        kind = group["order_class"]
        parts = h("section", {"class": "card", "aria-labelledby": "parts-title"},
                  h("h2", {"id": "parts-title"}, f"The {'bracket' if kind == 'bracket' else fmt.CLASSES[kind]} order"),
                  h("p", {"class": "muted"}, group_note(kind)),
                  table(GROUP_HEADERS, group_rows(group, u), caption="Its parts", cls="data stack-on-phone"))
    main = join(
        h("p", {"class": "crumbs"}, h("a", {"href": "/orders"}, "Orders"), " / ", o["symbol"]),
        h("section", {"class": "card"}, h("h1", order_summary(o)),
          h("dl", {"class": "facts"}, *[h("div", h("dt", k), h("dd", v)) for k, v in facts]), actions),
        parts,
        h("section", {"class": "card", "aria-labelledby": "fills-title"}, h("h2", {"id": "fills-title"}, "Fills"),
          table(["Time", ("Shares", "num"), ("Price", "num"), ("Commission", "num"), ("Amount", "num"), "Priced by"],
                join(*fills), caption="Fills", empty="No fills.", cls="data stack-on-phone")))
    return document(chrome, order_summary(o), main, page="order", data={"data-order": u})


def group_note(kind):
    """How the parts of a bracket, OCO or OTO order go together (papertrader/trading/contingent.py), in short."""
    if kind == "oco":
        return ("Two exits of shares held: whichever fills first cancels the other, and what one fills is taken from"
                " the other. Canceling one cancels both.")
    return ("The exits are held until the entry fills, then open for the shares it filled, from the next market"
            " update; canceling the entry before it fills cancels them." +
            (" Whichever exit fills first cancels the other." if kind == "bracket" else ""))


def preview_box(portfolio):
    """The box a preview's answer fills (app.js ``showPreview``): the buying power, what the order keeps, what is
    left, and a note.  Not a live region itself (its buying power moves with every update): one sentence, said
    once a preview has settled, is."""
    bp = fmt.money(portfolio["buying_power"]) if portfolio else "—"
    return h("div", {"class": "preview", "id": "preview"},
             h("dl", {"class": "facts tight"},
               h("div", h("dt", "Buying power"), h("dd", live("buying_power", bp))),
               h("div", h("dt", {"id": "preview-cost-label"}, "Reserved (up to)"),
                 h("dd", {"id": "preview-cost"}, "—")),
               h("div", h("dt", "Buying power after"), h("dd", {"id": "preview-after"}, "—"))),
             h("p", {"class": "preview-note", "id": "preview-note"}, ""),
             h("p", {"class": "sr-only", "id": "preview-said", "aria-live": "polite", "aria-atomic": "true"}, ""))


def replace_page(chrome, o, form=None, error=None, quote=None, portfolio=None, newest=None):
    """``quote``: the worker's newest of the order's symbol (kept live on the page: a new limit is set against the
    market as it is); ``portfolio``: the order's (its buying power: the page previews what the new order keeps of
    it; None: no preview); ``newest``: of an order replaced, the order in its place now (the last of the orders
    that replaced it, one after the other; None: not known)."""
    form = form or {}
    u = o["uuid"]
    if o["status"] not in ("new", "partially_filled", "held"):  # replaced meanwhile (Back after a replace), filled...
        newer = (newest or {}).get("uuid") or o.get("replaced_by_uuid")
        now = ""
        if newest is not None:
            # What became of it: offered to replace only while it can be (it may have filled since).
            can = newest["status"] in ("new", "partially_filled", "held") and replaceable(newest)
            now = h("p", f"The order in its place now, {order_summary(newest)} ({order_prices(newest)}), is"
                         f" {fmt.STATUS.get(newest['status'], newest['status'])}" +
                    ("." if can else ": it cannot be replaced."))
        else:
            can = newer is not None
        main = join(h("p", {"class": "crumbs"}, h("a", {"href": "/orders"}, "Orders"), " / ",
                      h("a", {"href": f"/orders/{u}"}, o["symbol"]), " / replace"),
                    h("section", {"class": "card narrow"}, h("h1", f"Replace: {order_summary(o)}"),
                      h("p", f"This order is {fmt.STATUS.get(o['status'], o['status'])}: there is nothing left of"
                             " it to replace."), now,
                      h("p", h("a", {"class": "btn primary", "href": f"/orders/{newer}/replace"}, "Replace that order")
                        if newer and can else
                        h("a", {"class": "btn", "href": f"/orders/{newer}"}, "See that order") if newer else
                        h("a", {"class": "btn", "href": f"/orders/{u}"}, "Back to the order"))))
        return document(chrome, "Replace order", main, page="replace")
    if not replaceable(o):  # an entry (the master refuses): the page says what to do instead
        main = join(h("p", {"class": "crumbs"}, h("a", {"href": "/orders"}, "Orders"), " / ",
                      h("a", {"href": f"/orders/{u}"}, o["symbol"]), " / replace"),
                    h("section", {"class": "card narrow"}, h("h1", f"Replace: {order_summary(o)}"),
                      h("p", f"This order is the entry of {fmt.CLASS_WORDS[o['order_class']]}, which is not"
                             " replaced: cancel it (its exits go with it) and place a new one. Its exits' prices"
                             " can be replaced."),
                      h("p", h("a", {"class": "btn", "href": f"/orders/{u}"}, "Back to the order"))))
        return document(chrome, "Replace order", main, page="replace")
    exit_ = is_part(o)  # an exit: its prices only (its shares and time in force are its entry's)
    remaining = (o["quantity"] - o["filled_quantity"]) if o.get("quantity") is not None else None
    fields = [] if exit_ else [
        _decimal_input("Shares", "qty", form.get("qty", fmt.number_text(remaining) if remaining else ""),
                       hint="What the new order asks for (default: what the old one had left).")]
    if o["type"] in ("limit", "stop_limit"):
        fields.append(_decimal_input("Limit price ($)", "limit_price",
                                     form.get("limit_price", fmt.number_text(o.get("limit_price")))))
    if o["type"] in ("stop", "stop_limit"):
        fields.append(_decimal_input("Stop price ($)", "stop_price",
                                     form.get("stop_price", fmt.number_text(o.get("stop_price")))))
    if o["type"] == "trailing_stop":
        by = "price" if o.get("trail_price") is not None else "percent"
        fields.append(_select("Trail by", "trail_by", [("percent", "Percent"), ("price", "Dollars")],
                              form.get("trail_by", by)))
        fields.append(_decimal_input("Trail", "trail", form.get(
            "trail", fmt.number_text(o.get("trail_price") if by == "price" else o.get("trail_percent")))))
    if not exit_:
        fields.append(_select("Time in force", "time_in_force", TIF_CHOICES,
                              form.get("time_in_force", o["time_in_force"])))
    body = post_form(f"/orders/{u}/replace", chrome.csrf, *fields,
                     preview_box(portfolio) if portfolio is not None else "",
                     button("Replace order", "btn primary"), cls="stack replace-form", label="Replace the order")
    v = quote_value(o["symbol"], quote)
    market = h("dl", {"class": "facts tight spaced", "aria-label": f"{o['symbol']} now"},
               *[h("div", h("dt", label), h("dd", v(key))) for label, key in
                 (("Last", "price"), ("Change", "change"), ("Bid", "bid"), ("Ask", "ask"), ("As of", "time"))])
    main = join(h("p", {"class": "crumbs"}, h("a", {"href": "/orders"}, "Orders"), " / ",
                  h("a", {"href": f"/orders/{u}"}, o["symbol"]), " / replace"),
                h("section", {"class": "card narrow"}, h("h1", f"Replace: {order_summary(o)}"),
                  h("p", {"class": "muted"}, f"{fmt.TYPES.get(o['type'], o['type'])} order: {order_prices(o)}. The"
                                             " old order ends as replaced and a new one takes its place (what"
                                             " already filled stays filled)." + (
                                                 " An exit keeps its shares and time in force (its entry's) and its"
                                                 " place in its order: move its price." if exit_ else "")),
                  market, error_box(error, ORDER_FIELDS), body))
    return document(chrome, "Replace order", main, page="replace", symbol=o["symbol"])


# --- history --------------------------------------------------------------------------------------------

ACTIVITY_HEADERS = ["Time", "Activity", ("Shares", "num"), ("Price", "num"), ("Commission", "num"), ("Amount", "num"),
                    "Details"]
KINDS = {"fill": "Fill", "dividend": "Dividend", "split": "Split"}


def activity_rows(activities):
    rows = []
    for a in activities:
        what = KINDS.get(a["kind"], a["kind"])
        if a["kind"] == "fill":
            what = f"{'Bought' if a.get('side') == 'buy' else 'Sold'} {a['symbol']}"
        else:
            what = f"{what} {a['symbol']}"
        details = fmt.activity_details(a["kind"], a.get("details")) or ""
        if a.get("order_uuid"):
            details = h("a", {"href": f"/orders/{a['order_uuid']}"}, "View the order")
        rows.append(h("tr", cell(fmt.when(a["time"]), "Time"),
                      h("th", {"scope": "row", "data-label": "Activity"}, what),
                      num(fmt.quantity(a["quantity"]), header="Shares"),
                      num(fmt.rate(a["price"]) if a["kind"] == "dividend" else "—" if a["kind"] == "split" else
                          fmt.exact_price(a["price"]), header="Price"),  # a dividend's per share; a split has none
                      num(fmt.money(a["commission"]) if a["kind"] == "fill" else "—", header="Commission"),
                      num(fmt.money(a["amount"], signed=True), header="Amount"),
                      cell(details, "Details")))
    return join(*rows)


def history_page(chrome, activities, next_token, first_page):
    more = ""
    if next_token:
        more = h("p", h("a", {"class": "btn small", "href": f"/history?after={next_token}"}, "Older"))
    main = h("section", {"class": "card"}, h("h1", "History"),
             h("p", {"class": "muted"}, "Every fill, dividend and split of your account, newest first. A buy costs"
                                        " shares × price plus its commission; a sale brings shares × price less it."),
             table(ACTIVITY_HEADERS, activity_rows(activities), section="activities" if first_page else None,
                   caption="Transactions", empty=EMPTY["activities"], cls="data stack-on-phone"),
             more, "" if first_page else h("p", h("a", {"href": "/history"}, "Newest")))
    return document(chrome, "History", main, page="history", data={"data-first": "yes" if first_page else "no"})


# --- account --------------------------------------------------------------------------------------------


def account_page(chrome, profile, sessions, keys, new_key=None, errors=None, issuers=None, key_form="",
                 default_portfolio=None):
    """``issuers``: {issuer URL: provider name}, to name the ways of signing in; ``key_form``: the new-key
    form's id (the same form sent twice makes one key); ``default_portfolio``: the account's default portfolio's
    name, the one a new key trades unless another is chosen."""
    errors = errors or {}
    ways = [way if way == "password" else (issuers or {}).get(way, way) for way in profile.get("sign_in") or []]
    has_password = "password" in (profile.get("sign_in") or ["password"])
    session_rows = []
    for s in sessions:
        end = "This session" if s["current"] else post_form(
            f"/account/sessions/{s['id']}/end", chrome.csrf,
            button("End", "btn small danger", **{"aria-label": f"End the session of {s.get('device') or 'a client'}"
                                                                f" signed in {fmt.when(s['created'])} from"
                                                                f" {s['client_ip']}"}), cls="inline")
        session_rows.append(h("tr", cell(s.get("device") or "not said", "Device"),
                              cell(fmt.when(s["created"]), "Signed in"),
                              cell(fmt.when(s["last_used"]), "Last used"),
                              cell(s["client_ip"], "Address"), cell(s["worker"], "Worker"),
                              cell(fmt.when(s["expires"]), "Expires"), h("td", {"class": "actions"}, end)))
    key_rows = [h("tr", h("th", {"scope": "row", "data-label": "Key id"}, h("code", k["key_id"])),
                  cell(k["name"], "Name"), cell(k.get("portfolio") or "—", "Portfolio"),
                  cell(fmt.when(k["created"]), "Created"),
                  cell(fmt.when(k["last_used"]) if k.get("last_used") else "never", "Last used"),
                  h("td", {"class": "actions"},
                    post_form(f"/account/api-keys/{k['key_id']}/revoke", chrome.csrf,
                              button("Revoke", "btn small danger", **{"aria-label": f"Revoke key {k['name']}"}),
                              cls="inline", confirm=f"Revoke the key {k['name']}? Programs using it stop working.")))
                for k in keys]
    shown = ""
    if new_key:
        shown = h("div", {"class": "flash success secret", "role": "status", "id": "new-key", "tabindex": "-1"},
                  h("p", h("strong", "Your new API key. Copy the secret now: it is shown this once.")),
                  h("dl", {"class": "facts tight"},
                    h("div", h("dt", "Key id"), h("dd", h("code", {"id": "new-key-id"}, new_key["key_id"]))),
                    h("div", h("dt", "Secret"), h("dd", h("code", {"id": "new-key-secret"}, new_key["secret"]))),
                    h("div", h("dt", "Trades"), h("dd", {"id": "new-key-portfolio"},
                                                    f"portfolio {new_key.get('portfolio') or '—'}"))),
                  h("p", {"class": "muted"}, "Send them as the APCA-API-KEY-ID and APCA-API-SECRET-KEY headers"
                                             " (alpaca-py: TradingClient(key_id, secret, url_override=...))."))
    # Password managers (and Chromium's accessibility checks) want the account's name in a password form.
    who = h("input", {"type": "text", "name": "account", "autocomplete": "username", "value": profile["username"],
                      "hidden": True, "readonly": True, "tabindex": "-1", "aria-hidden": "true"})
    if has_password:
        password_form = post_form(
            "/account/password", chrome.csrf, who,
            field_input("Current password", "old_password", kind="password", autocomplete="current-password"),
            field_input("New password", "new_password", kind="password", autocomplete="new-password", minlength="8",
                        hint="At least 8 characters. Your other sessions end."),
            button("Change password", "btn"), cls="stack", label="Change password")
    else:
        password_form = post_form(
            "/account/set-password", chrome.csrf, who,
            h("p", {"class": "muted"}, "You sign in with your provider. Add a password to sign in with it too."),
            field_input("New password", "new_password", kind="password", autocomplete="new-password", minlength="8"),
            button("Add password", "btn"), cls="stack", label="Add a password")
    delete_fields = [field_input("Password", "password", kind="password", autocomplete="current-password")] \
        if has_password else [h("p", {"class": "muted"}, "Accounts without a password are deleted from the command"
                                                          " line: papertrader delete-account --provider NAME.")]
    delete_form = post_form("/account/delete", chrome.csrf, who, *delete_fields,
                            button("Delete my account", "btn danger") if has_password else "",
                            cls="stack", label="Delete the account",
                            confirm="Delete your account for good? Your open orders are canceled and your personal"
                                    " data removed.")
    public = bool(profile.get("public_portfolio"))
    main = join(
        h("h1", "Account"),
        h("section", {"class": "card", "aria-labelledby": "profile-title"}, h("h2", {"id": "profile-title"}, "Profile"),
          h("dl", {"class": "facts"}, h("div", h("dt", "Username"), h("dd", profile["username"])),
            h("div", h("dt", "Email"), h("dd", profile.get("email") or "—")),
            h("div", h("dt", "Joined"), h("dd", fmt.day(profile.get("joined")))),
            h("div", h("dt", "Signs in with"), h("dd", ", ".join(ways) or "—")),
            h("div", h("dt", "Positions visible to others"), h("dd", "yes" if public else "no"))),
          post_form("/account/profile", chrome.csrf,
                    h("input", {"type": "hidden", "name": "public", "value": "no" if public else "yes"}),
                    button("Hide my positions from others" if public else "Let others see my positions", "btn small"),
                    cls="inline")),
        h("section", {"class": "card", "aria-labelledby": "password-title"},
          h("h2", {"id": "password-title"}, "Password"), error_box(errors.get("password"), PASSWORD_FIELDS),
          password_form),
        h("section", {"class": "card", "aria-labelledby": "sessions-title"},
          h("div", {"class": "card-head"}, h("h2", {"id": "sessions-title"}, "Sessions"),
            post_form("/account/signout-everywhere", chrome.csrf, button("Sign out everywhere", "btn small danger"),
                      cls="inline", confirm="End every session of your account, this one included?")),
          error_box(errors.get("sessions")),
          table(["Device", "Signed in", "Last used", "Address", "Worker", "Expires", ""], join(*session_rows),
                caption="Sessions", empty="No sessions.", cls="data stack-on-phone")),
        h("section", {"class": "card", "aria-labelledby": "keys-title"}, h("h2", {"id": "keys-title"}, "API keys"),
          h("p", {"class": "muted"}, "For programs using the Alpaca-compatible HTTP API. A key trades the portfolio"
                                     " chosen when it is made (its orders, positions and account are that"
                                     " portfolio's), whichever one these pages show later."),
          shown, error_box(errors.get("keys")),
          table(["Key id", "Name", "Portfolio", "Created", "Last used", ""], join(*key_rows), caption="API keys",
                empty="No API keys.", cls="data stack-on-phone"),
          post_form("/account/api-keys", chrome.csrf, h("input", {"type": "hidden", "name": "form_id",
                                                                  "value": key_form}),
                    field_input("Name of a new key", "name", "", required=False, maxlength="64",
                                placeholder="my-strategy"),
                    _select("Portfolio it trades", "key_portfolio",
                            [(name, name + (" (default)" if name == default_portfolio else ""))
                             for name in chrome.portfolios], default_portfolio)
                    if len(chrome.portfolios) > 1 else "",
                    button("Create key", "btn"), cls="stack inline-form", label="Create an API key")),
        h("section", {"class": "card danger-zone", "aria-labelledby": "delete-title"},
          h("h2", {"id": "delete-title"}, "Delete account"),
          h("p", {"class": "muted"}, "Removes your name, email, password, sessions and keys; open orders are"
                                     " canceled; the ledger keeps its rows under an anonymous id."),
          error_box(errors.get("delete"), ((("password",), "f-password"),)), delete_form))
    return document(chrome, "Account", main, page="account")


# --- portfolios -----------------------------------------------------------------------------------------


def game_link(name):
    return "/games/" + quote(name, safe="")


def portfolios_page(chrome, portfolios, form=None, error=None, margin=False):
    """``margin``: the server offers margin accounts (``margin_accounts``): the form can make one."""
    form = form or {}
    rows = []
    for p in portfolios:
        shown = p["name"] == chrome.portfolio
        show = "Shown" if shown else post_form(  # (shown on the dashboard)
            "/portfolios/use", chrome.csrf, h("input", {"type": "hidden", "name": "name", "value": p["name"]}),
            h("input", {"type": "hidden", "name": "back", "value": "/"}),
            button("Show", "btn small", **{"aria-label": f"Show {p['name']}"}), cls="inline")
        manage = h("a", {"class": "btn small", "href": manage_link(p["name"]),
                         "aria-label": f"Manage {p['name']}"}, "Manage…")
        rows.append(h("tr", cell(h("strong", p["name"]) if shown else p["name"], "Name"), cell(kind_of(p), "Kind"),
                      num(fmt.money(p["cash"]), header="Cash"),
                      num(fmt.money(p["starting_cash"]), header="Started with"),
                      cell("Default" if p["default"] else "", "Default"), cell(show, "Shown"),
                      cell(manage, "Manage")))
    create = post_form(
        "/portfolios", chrome.csrf,
        field_input("Name", "name", form.get("name", ""), maxlength="64", hint="1 to 64 characters."),
        field_input("Cash", "cash", form.get("cash", ""), required=False, inputmode="decimal", maxlength="20",
                    hint="Empty: the server's starting cash."),
        check_input("Margin account", "margin", form.get("margin"),
                    hint="It may borrow (its cash goes below zero) and sell short, within the server's margin"
                         " rules; chosen once, when it is made. Without it: a cash account, which spends only"
                         " its cash and sells only shares it holds.") if margin else "",
        button("Create portfolio", "btn primary"), cls="stack inline-form", label="Create a portfolio")
    main = h("section", {"class": "card"}, h("h1", "Portfolios"),
             h("p", {"class": "muted"}, "The pages show and trade the portfolio chosen here or in the bar above."),
             table(["Name", "Kind", ("Cash", "num"), ("Started with", "num"), "Default", "Shown", ("Manage", "sr")],
                   rows, caption="Your portfolios", cls="data stack-on-phone"),
             h("h2", "New portfolio"), error_box(error, PORTFOLIO_FIELDS), create)
    return document(chrome, "Portfolios", main, page="portfolios")


def kind_of(portfolio):
    return portfolio["kind"] + (" (game)" if portfolio.get("game_id") is not None else "")


def manage_link(name):
    return "/portfolios/manage?" + urlencode({"name": name})


#: The switches of a portfolio's trading settings (its configuration that acts on orders): (name, label, hint).
SWITCHES = (("no_shorting", "Long only — no short sales",
             "Selling shares the portfolio does not hold (a short sale) is refused."),
            ("suspend_trade", "Suspend trading — no new orders",
             "New orders and changes to open orders are refused; canceling still works, and a bracket order's"
             " exits and a margin call's sales still trade."),
            ("fractional_trading", "Fractional shares — allow fractions and dollar amounts",
             "Off: whole shares only; an order for a fraction of a share or for a dollar amount is refused."))

#: What the flash message says of a switch turned off (False) or on (True).
SWITCHED = {"no_shorting": {True: "long only (short sales are refused)", False: "short sales allowed"},
            "suspend_trade": {True: "trading suspended (new orders are refused; canceling still works)",
                              False: "trading resumed (new orders are taken)"},
            "fractional_trading": {True: "fractional shares and dollar amounts allowed",
                                   False: "whole shares only (no fractions, no dollar amounts)"}}


def settings_link(name):
    """The portfolio's trading settings (on its manage page)."""
    return manage_link(name) + "#settings"


def switch_input(label, name, checked, hint):
    """A checkbox with its label, and what it does under them."""
    ident = f"f-{name}"
    return h("div", {"class": "field"},
             h("div", {"class": "check"},
               h("input", {"type": "checkbox", "id": ident, "name": name, "value": "yes", "checked": bool(checked),
                           "aria-describedby": f"{ident}-hint"}),
               h("label", {"for": ident}, label)),
             h("p", {"class": "hint", "id": f"{ident}-hint"}, hint))


def settings_form(chrome, p, configuration, form=None):
    """The portfolio's trading settings: a form of its switches (``form``: as a refused one was sent).  A cash
    portfolio never sells short: it has no long-only switch, and says so."""
    form = form or {}
    margin = p["kind"] == "margin"
    switches = []
    for name, label, hint in SWITCHES:
        if name == "no_shorting" and not margin:
            switches.append(h("p", {"class": "muted", "id": "no-shorting-cash"},
                              "Long only: always, in a cash portfolio — only a margin portfolio can sell short."))
            continue
        on = form[name] if isinstance(form.get(name), bool) else configuration.get(name)
        switches.append(switch_input(label, name, on, hint))
        # What the page showed: only the switches the user changed are sent (a change made meanwhile elsewhere,
        # on the command line or through the API, to another switch stays).
        switches.append(h("input", {"type": "hidden", "name": f"shown_{name}",
                                    "value": "yes" if configuration.get(name) else "no"}))
    return post_form("/portfolios/settings", chrome.csrf,
                     h("input", {"type": "hidden", "name": "name", "value": p["name"]}), *switches,
                     button("Save trading settings", "btn primary"), cls="stack", label="Trading settings")


def settings_summary(configuration, margin):
    """The settings in a few words: 'trading suspended · whole shares only'; '' when they are the defaults."""
    said = []
    if configuration.get("suspend_trade"):
        said.append("trading suspended")
    if configuration.get("no_shorting") and margin:
        said.append("long only")
    if configuration.get("fractional_trading") is False:
        said.append("whole shares only")
    return " · ".join(said)


def suspended_notice(name, where="page"):
    """Trading is suspended in the portfolio ``name``: said plainly, with the way to its settings."""
    return h("div", {"class": "flash info", "id": f"suspended-{where}"},
             "Trading is suspended in this portfolio", f" ({name})" if name else "",
             ": new orders are refused; canceling still works. ",
             h("a", {"href": settings_link(name)}, "Change it in its settings") if name else "", ".")


def manage_page(chrome, p, form=None, errors=None, configuration=None, said=None):
    """One portfolio: rename it, make it the default, change its trading settings, reset it, close it.  ``said``:
    the flash message of its settings saved, shown above them rather than at the page's top."""
    form, errors = form or {}, errors or {}
    hidden = h("input", {"type": "hidden", "name": "name", "value": p["name"]})
    facts = h("dl", {"class": "facts"},
              *[h("div", h("dt", k), h("dd", v)) for k, v in
                (("Kind", kind_of(p)), ("Cash", fmt.money(p["cash"])), ("Started with", fmt.money(p["starting_cash"])),
                 ("Default", "yes" if p["default"] else "no"))] +
              ([h("div", h("dt", "Trading"), h("dd", settings_summary(configuration, p["kind"] == "margin")))]
               if configuration and settings_summary(configuration, p["kind"] == "margin") else []))
    rename = post_form("/portfolios/rename", chrome.csrf, hidden,
                       field_input("New name", "new_name", form.get("new_name", p["name"]), maxlength="64",
                                   hint="1 to 64 characters. Its orders, history and API keys stay."),
                       button("Rename", "btn primary"), cls="stack inline-form", label="Rename the portfolio")
    if p["default"]:
        default = h("p", {"class": "muted"}, "This is your default portfolio: what the command line and the HTTP"
                                             " API trade when they name no portfolio.")
    else:
        default = h("div", h("p", {"class": "muted"}, "The default portfolio is what the command line and the HTTP"
                                                      " API trade when they name no portfolio."),
                    post_form("/portfolios/default", chrome.csrf, hidden, button("Make it the default", "btn"),
                              cls="inline", label="Make it the default"))
    reset = h("p", h("a", {"class": "btn danger", "href": "/portfolios/reset?" + urlencode({"name": p["name"]})},
                       "Reset…"), " Cancel its open orders and start again with its starting cash.")
    if p["default"]:
        close = h("p", {"class": "muted"}, "The default portfolio cannot be closed: make another one the default"
                                           " first.")
    else:
        close = h("div", h("p", "A portfolio can be closed once it has no open orders and no positions; its API"
                                " keys end with it. Its history is kept."),
                  post_form("/portfolios/close", chrome.csrf, hidden,
                            h("input", {"type": "hidden", "name": "confirm", "value": "yes"}),
                            button(f"Close {p['name']}", "btn danger"), cls="inline", label="Close the portfolio",
                            confirm=f"Close the portfolio {p['name']}?"))
    main = h("section", {"class": "card manage"}, h("h1", f"Portfolio {p['name']}"), facts,
             h("h2", "Name"), error_box(errors.get("rename"), ((("name",), "f-new_name"),)), rename,
             h("h2", "Default"), error_box(errors.get("default")), default,
             join(h("h2", {"id": "settings"}, "Trading settings"),
                  h("p", {"class": "muted"}, "What this portfolio's orders may do, from the website, the command line"
                                             " and the HTTP API alike."),
                  message(said), error_box(errors.get("settings")), settings_form(chrome, p, configuration, form))
             if configuration is not None else "",
             h("h2", "Start again"), reset,
             h("h2", "Close"), error_box(errors.get("close")), close,
             h("p", {"class": "back"}, h("a", {"href": "/portfolios"}, "← Your portfolios")))
    return document(chrome, f"Portfolio {p['name']}", main, page="portfolios")


def reset_page(chrome, portfolio):
    form = post_form(
        "/portfolios/reset", chrome.csrf, h("input", {"type": "hidden", "name": "name", "value": portfolio["name"]}),
        h("input", {"type": "hidden", "name": "confirm", "value": "yes"}),
        button(f"Reset {portfolio['name']}", "btn danger"),
        h("a", {"class": "btn", "href": "/portfolios"}, "Keep it"),
        cls="stack inline-form", label="Confirm the reset")
    main = h("section", {"class": "card"}, h("h1", f"Reset {portfolio['name']}?"),
             h("p", "Its open orders are canceled, its positions and history are archived, and it starts again with ",
               fmt.money(portfolio["starting_cash"]), " in cash. Its name, kind and API keys stay."), form)
    return document(chrome, "Reset a portfolio", main, page="portfolios")


# --- games ----------------------------------------------------------------------------------------------


def game_end(game):
    """When a game ends, as its creator gave it: a day (the game runs through it: its end is the next midnight in
    the market's zone, UTC's for a game made before) or a time; and, once its creator ended it early, when that
    was."""
    end = game["end"]
    last = fmt.last_day(end)
    planned = f"{last} (last day)" if last is not None else fmt.when(end)
    ended = game.get("ended_at")
    if ended is not None and ended < game["end"]:
        return f"ended {fmt.when(ended)}, early (planned: {planned})"
    return planned


def joinable(game):
    """May the visitor ask to join ``game`` (they do not play in it, and it has not ended)?"""
    return not game["playing"] and game["status"] != "ended"


def join_link(name, code=None):
    """The games page with its join form filled in (a GET: joining is the form's POST), its Join button focused,
    which brings the form in sight.  (Not /games/join?...: a game may be named 'join'.  No #join: browsers do
    not autofocus a page whose address has a fragment.)"""
    return "/games?" + urlencode(dict(join=name, **({"code": code} if code else {})))


def join_button(chrome, game, label=None):
    """Join a public game at once; a private one's join form asks for its invite code (filled in by its link)."""
    name = game["name"]
    if game["private"]:
        return h("a", {"class": "btn small", "href": join_link(name), "aria-label": f"Join {name}…"}, "Join…")
    return post_form("/games/join", chrome.csrf, h("input", {"type": "hidden", "name": "name", "value": name}),
                     button(label or "Join", "btn small primary", **{"aria-label": f"Join {name}"}), cls="inline")


def game_rows(chrome, games):
    rows = []
    for g in games:
        role = "Creator" if g["is_creator"] else ""
        if g["playing"]:
            role = (role + ", player") if role else "Player"
        rows.append(h("tr", cell(h("a", {"href": game_link(g["name"])}, g["name"]), "Game"),
                      cell(g["status"], "Status"), cell(fmt.when_or_day(g["start"]), "Starts"),
                      cell(game_end(g), "Ends"),
                      num(fmt.money(g["starting_cash"]), header="Starting cash"),
                      num(str(g["players"]), header="Players"),
                      cell("private" if g["private"] else "public", "Visibility"), cell(role, "You"),
                      h("td", {"class": "actions"}, join_button(chrome, g) if joinable(g) else "")))
    return rows


def check_input(label, name, checked, hint=None):
    """A checkbox with its label; a hint goes under them (beside them, in the checkbox's row, it squeezed the box
    and the label into a narrow column)."""
    ident = f"f-{name}"
    box = h("div", {"class": "check"},
            h("input", {"type": "checkbox", "id": ident, "name": name, "value": "yes", "checked": bool(checked),
                        "aria-describedby": f"{ident}-hint" if hint else None}),
            h("label", {"for": ident}, label))
    if not hint:
        return box
    return h("div", {"class": "check-with-hint"}, box, h("p", {"class": "hint", "id": f"{ident}-hint"}, hint))


def create_game_form(chrome, form, margin=False):
    """A new game: its name, days and starting cash; its other rules folded away.  ``margin``: the server offers
    margin accounts (``margin_accounts``): a game's players may have them (and sell short)."""
    more = h("details", {"class": "more-rules", "open": any(form.get(k) for k in GAME_RULE_FIELDS)},
             h("summary", "More rules"),
             field_input("Assets", "assets", form.get("assets", ""), required=False, maxlength="4000",
                         autocapitalize="characters", spellcheck="false",
                         hint="The only symbols that may be traded, comma-separated. Empty: every asset."),
             field_input("Largest position (%)", "max_position", form.get("max_position", ""), required=False,
                         inputmode="decimal", maxlength="8",
                         hint="The most one position may be worth, in percent of the portfolio, once an order that"
                              " adds to it fills. Empty: no limit."),
             field_input("Commission", "commission", form.get("commission", ""), required=False, maxlength="64",
                         spellcheck="false",
                         hint="What players pay a trade: zero (none), per_order:1.00 ($1.00 per order),"
                              " per_share:0.005:1.00:10 ($0.005 per share, min $1.00, max $10.00) or percent:0.1"
                              " (0.1% of the trade). Empty: the server's."),
             _select("Fills", "fill_model", [("", "The server's"), ("bar", fmt.FILL_NAMES["bar"]),
                                            ("ideal", fmt.FILL_NAMES["ideal"])], form.get("fill_model", "")),
             *((check_input("Margin accounts: players may borrow", "margin", form.get("margin")),
                check_input("Short selling allowed", "allow_short", form.get("allow_short"),
                            hint="Players' portfolios are then margin accounts.")) if margin else ()))
    return post_form(
        "/games", chrome.csrf,
        field_input("Name", "name", form.get("name", ""), maxlength="40", ident="g-name",
                    hint="3 to 40 letters, digits, spaces, '_', '.', '-'."),
        field_input("First day", "start", form.get("start", ""), kind="date",
                    hint="Trading opens at its midnight in the market's time zone, on its clock."),
        field_input("Last day", "end", form.get("end", ""), kind="date", hint="The game runs through that day."),
        field_input("Starting cash", "cash", form.get("cash", ""), inputmode="decimal", maxlength="20",
                    hint="Each player's, e.g. 100000."),
        check_input("Private: players join with an invite code", "private", form.get("private")),
        check_input("Players see each other's portfolios", "show_portfolios", form.get("show_portfolios"),
                    hint="Their positions, open orders and trades. You, the creator, always see them."),
        more, button("Create the game", "btn primary"), cls="stack", label="Create a game")


#: The create form's fields that are folded away under "More rules".
GAME_RULE_FIELDS = ("assets", "max_position", "commission", "fill_model", "margin", "allow_short")


def games_page(chrome, games, error=None, form=None, create_error=None, create_form=None, invited=False,
               margin=False):
    """``invited``: the page was opened by a link to join a game (``form`` holds its name, and its code): the
    join form is in sight with its button focused.  ``margin``: the server offers margin accounts."""
    form = form or {}
    join = post_form(
        "/games/join", chrome.csrf,
        field_input("Game", "name", form.get("name", ""), maxlength="64",
                    hint="A public game's name as listed above, or the name of the private game you were invited to."),
        field_input("Invite code", "code", form.get("code", ""), required=False, maxlength="128", autocomplete="off",
                    hint="Only for a private game."),
        button("Join", "btn primary", autofocus=bool(invited)), cls="stack inline-form", label="Join a game")
    headers = ["Game", "Status", "Starts", "Ends", ("Starting cash", "num"), ("Players", "num"), "Visibility", "You",
               ""]
    main = h("section", {"class": "card"}, h("h1", "Games"),
             h("p", {"class": "muted"}, "Public games, yours, and the ones you play in. Joining makes you a portfolio"
                                        " named like the game."),
             table(headers, game_rows(chrome, games), caption="Games", empty="No games yet.",
                   cls="data stack-on-phone"),
             h("h2", {"id": "join"}, "Join a game"), error_box(error, JOIN_FIELDS), join,
             h("h2", {"id": "create"}, "Create a game"),
             h("p", {"class": "muted"}, "You manage it (invite codes, players, ending it early); join it to play."),
             error_box(create_error, GAME_FIELDS), create_game_form(chrome, create_form or {}, margin))
    return document(chrome, "Games", main, page="games")


def removed_players(game):
    """The players its creator removed (only its creator is told of them), each a link to their portfolio."""
    if not game.get("removed"):
        return ""
    return h("section", {"aria-labelledby": "removed-title"}, h("h2", {"id": "removed-title"}, "Removed players"),
             h("ul", {"class": "plain"}, *[h("li", h("a", {"href": player_link(game["name"], r["username"])},
                                                     r["username"]), f" — removed {fmt.when(r['removed'])}")
                                           for r in game["removed"]]))


def manage_game(chrome, game, board, invite_code=None, error=None, origin=""):
    """What a game's creator can do to it: a new invite code (shown once, with a link to share that opens the join
    form with it filled in), remove a player, end it now."""
    if not game["is_creator"] or game["status"] == "ended":
        return ""
    link = game_link(game["name"])
    parts = [h("h2", "Manage the game"), error_box(error)]
    if invite_code:
        share = origin + join_link(game["name"], invite_code)
        parts.append(h("div", {"class": "flash success", "role": "status"}, "Invite code: ",
                       h("code", {"id": "invite-code"}, invite_code),
                       ". Shown this once; players join with it on the Games page. A new code replaces it.",
                       h("div", {"class": "field share"},
                         h("label", {"for": "invite-link"}, "Or share this link: it opens the join form with the"
                                                            " code filled in"),
                         h("input", {"id": "invite-link", "type": "text", "readonly": True, "value": share,
                                     "autocomplete": "off", "spellcheck": "false"}))))
    if game["private"]:
        parts.append(post_form(link + "/invite", chrome.csrf, button("New invite code", "btn"), cls="inline",
                               label="A new invite code",
                               confirm="A new invite code: the current one stops working. Go on?"))
    # (even before anyone plays: a page left open sees the players join, live, and may remove one)
    parts.append(post_form(
        link + "/remove", chrome.csrf,
        field_input("Player", "username", "", maxlength="24", autocapitalize="none", spellcheck="false",
                    hint="Their username. Their open orders in the game are canceled, they leave the"
                         " leaderboard, and their portfolio takes no more orders."),
        button("Remove the player", "btn danger"), cls="stack inline-form", label="Remove a player",
        confirm="Remove this player from the game? They cannot join it again."))
    parts.append(post_form(link + "/end", chrome.csrf, button("End the game now", "btn danger"), cls="inline",
                           label="End the game now",
                           confirm=f"End {game['name']} now? " + _ending(game)))
    return h("div", {"class": "manage"}, *parts)


def _ending(game):
    """What ending ``game`` now does, as its creator is asked (as `papertrader game end` asks)."""
    if game.get("status") == "upcoming":
        return "It has not started: it ends without any trading."
    if not game.get("players") and game.get("board_updated") is None:
        return "Nobody plays in it: it ends with no ranking."
    if game.get("board_updated") is None:
        return "Trading stops; no market update has ranked it yet: the next one makes its final ranking."
    return "Trading stops and the ranking becomes final."


def game_page(chrome, game, board, invite_code=None, error=None, origin="", server=None):
    """``server``: the server's trading rules (papertrader/trading/pretrade.py Rules), which a game that sets no
    commission or fill model of its own plays by (as this worker is configured: give it the master's config)."""
    def servers(words):
        return f"{words} (the server's)" if server is not None else "the server's"

    rules = [("Status", game["status"]), ("Starts", fmt.when_or_day(game["start"])), ("Ends", game_end(game)),
             ("Starting cash", fmt.money(game["starting_cash"])), ("Players", str(game["players"])),
             ("Created by", game["creator"]), ("Visibility", "private" if game["private"] else "public"),
             ("Assets", ", ".join(game["assets"]) if game["assets"] else "every asset"),
             ("Margin", "allowed" if game["margin"] else "no"),
             ("Short selling", "allowed" if game["allow_short"] else "no"),
             ("Commission", fmt.commission(game["commission"]) if game.get("commission") else
              servers(server and fmt.commission(server.commission_model))),
             ("Fills", fmt.fills(game["fill_model"]) if game.get("fill_model") else
              servers(server and fmt.fills(server.fill_model.name))),
             ("Largest position",
              fmt.percent(game["max_position"], signed=False) if game.get("max_position") is not None else "no limit"),
             ("Portfolios", "every player sees every player's" if game.get("show_portfolios") else
              "only its creator sees the players'")]
    # (a long value, the fill model's words, takes a row of its own: squeezed into a cell it ran down the page)
    # Its status and players move while the page is open (the live connection sets them, as a reload shows them).
    live = {"Status": "game.status", "Players": "game.players"}
    facts = h("dl", {"class": "facts"}, *[h("div", {"class": "wide" if len(value) > 28 else None},
                                            h("dt", label), h("dd", {"data-live": live.get(label)}, value))
                                          for label, value in rules])
    main = h("section", {"class": "card"}, h("h1", game["name"]), facts,
             # Sent again by the live connection when it changes (the visitor joins from another tab or the command
             # line, the game ends), and only then: a code being typed in its join form is kept. (Said when sent.)
             h("div", {"data-section": "game-mine", "aria-live": "polite"}, game_mine(chrome, game)),
             h("h2", "Leaderboard"),
             # Sent again whole by the live connection when the standings change (an update, a player joins).
             h("div", {"data-section": "leaderboard"}, leaderboard(chrome.username, game, board)),
             h("p", {"class": "muted"}, "Download the standings for a spreadsheet: ",
               h("a", {"href": game_link(game["name"]) + "/leaderboard.csv", "download": True}, "by return (CSV)"),
               ", ", h("a", {"href": game_link(game["name"]) + "/leaderboard.csv?by=sharpe", "download": True},
                       "by Sharpe ratio (CSV)"), "."),
             removed_players(game),
             # (emptied by the live connection when the game ends: nothing there is possible any more)
             h("div", {"data-section": "game-manage"}, manage_game(chrome, game, board, invite_code, error, origin)),
             h("p", h("a", {"href": "/games"}, "All games")))
    return document(chrome, game["name"], main, page="game", data={"data-game": game["name"]})


def mine_state(game):
    """The visitor's part in ``game`` (a ShowGame answer), as its page shows it: "play" (their portfolio in it),
    "join" (a Join form), or "none"."""
    return "play" if game.get("portfolio") else "join" if joinable(game) else "none"


def game_mine(chrome, game):
    """The visitor's own part on a game's page: a Join form, or their portfolio in it with its buttons (its
    ``data-mine``, the state shown, the page tells its live connection)."""
    mine = ""
    if joinable(game):
        # Join here: a public game at once, a private one with its invite code.
        # Its creator joins their own private game without a code.
        private = game["private"] and not game.get("is_creator")
        code = field_input("Invite code", "code", "", required=False, maxlength="128",
                           autocomplete="off", hint="The code its creator gave you.") if private else ""
        mine = post_form("/games/join", chrome.csrf, h("input", {"type": "hidden", "name": "name",
                                                                 "value": game["name"]}),
                         code, button(f"Join {game['name']}" + (" as a player" if game.get("is_creator") else ""),
                                      "btn primary"),
                         cls="stack inline-form" if private else "inline", label=f"Join {game['name']}")
    if game.get("portfolio"):
        # Shown and traded in this browser, or the default everywhere (a new sign-in, the command line, the
        # HTTP API): a student who plays only the game makes it their default.
        named = h("input", {"type": "hidden", "name": "name", "value": game["portfolio"]})
        mine = h("p", "Your portfolio in this game: ", h("strong", game["portfolio"]), " ",
                 post_form("/portfolios/use", chrome.csrf, named,
                           h("input", {"type": "hidden", "name": "back", "value": "/"}),
                           button("Show and trade it", "btn small"), cls="inline"), " ",
                 post_form("/portfolios/default", chrome.csrf, named,
                           button("Make it my default", "btn small",
                                  title="What every sign-in shows, and what the command line and the HTTP API"
                                        " trade when they name no portfolio"), cls="inline",
                           label="Make it my default portfolio"))
    return h("div", {"data-mine": mine_state(game)}, mine)


def game_values(game):
    """A game's facts that move while its page is open (the ``data-live`` keys of ``game_page``)."""
    return {"game.status": [game["status"], None], "game.players": [str(game["players"]), None]}


def leaderboard(username, game, board):
    """A game's standings as ``username`` sees them (a ShowGame and a GameLeaderboard answer): when they were
    ranked, the table (a player's name links to their portfolio where the visitor may see it), who joined since."""
    sees = may_see_portfolios(game["is_creator"], game["playing"], game.get("show_portfolios"))
    rows = [h("tr", num(str(s["rank"]), header="Rank"),
              cell(h("a", {"href": player_link(game["name"], s["username"])}, s["username"])
                   if sees or s["username"].casefold() == (username or "").casefold() else s["username"],
                   "Player"),
              num(fmt.money(s["equity"]), header="Equity"),
              num(fmt.percent(s["return_percent"]), sign=fmt.sign(s["return_percent"]), header="Return"),
              # (as the command line's leaderboard: none before 20 daily returns, or with no ups and downs)
              num(str(s["sharpe"]) if s.get("sharpe") is not None else "n/a", header="Sharpe"))
            for s in board["standings"]]
    # A game not started yet is ranked by the first market update after its start (the next one ranks nobody).
    ranked_at = (f"the first market update after the game starts ({fmt.when_or_day(board['starts'])})"
                 if board.get("starts") else "the next market update")
    empty, waiting = f"No standings yet: they come with {ranked_at}.", f"Joined, ranked at {ranked_at}: "
    if board["final"] and not board.get("updated"):
        # Over before any update ranked it: the first update after its end ranks its players, once (the master's
        # games update), and that is its final ranking; nobody to rank, it has none.
        if board.get("unranked") or board.get("players"):
            updated = ("The game has ended. No market update ranked it while it ran: the next one makes its final"
                       " ranking.")
            empty, waiting = "No ranking yet.", "Joined, ranked in the final ranking at the next market update: "
        else:
            updated, empty = "The game has ended.", "Nobody played in it: it has no ranking."
    elif board["final"]:
        # (who joined after the last update before its end is in no ranking: the final one is that update's)
        updated = f"Final ranking, as of {fmt.when(board['updated'])}."
        waiting = "Joined after the last market update before the end, so not ranked: "
    else:
        updated = f"As of {fmt.when(board['updated'])}." if board.get("updated") else "Not ranked yet."
    if any(s.get("sharpe") is None for s in board["standings"]):
        updated += f" Sharpe n/a: {NO_SHARPE}."
    return join(h("p", {"class": "muted"}, updated),
                table(["Rank", "Player", ("Equity", "num"), ("Return", "num"), ("Sharpe", "num")], rows,
                      caption="Leaderboard", empty=empty, cls="data leaderboard"),
                h("p", {"class": "muted"}, waiting,
                  ", ".join(board["unranked"]) + ("…" if len(board["unranked"]) >= 500 else "."))
                if board.get("unranked") else "")


def player_link(game_name, username):
    """The page of a player's portfolio in a game."""
    return game_link(game_name) + "/players/" + quote(username, safe="")


PLAYER_POSITION_HEADERS = ["Symbol", ("Shares", "num"), ("Avg price", "num"), ("Last", "num"),
                           ("Market value", "num"), ("Unrealized P&L", "num")]
PLAYER_ORDER_HEADERS = ["Order", "Type", ("Price", "num"), ("Filled", "num"), "Time in force", "Placed"]


def game_player_page(chrome, p, before=None):
    """A player's portfolio in a game (a GamePortfolio answer), as its creator, or a fellow player where the
    game shows portfolios, sees it: its figures, positions, open orders and trades (newest first), and nothing
    to act on.  Nothing on it is live: the live connection values the visitor's own portfolio."""
    values = summary_values(p)
    figures = h("dl", {"class": "stats", "aria-label": "Portfolio summary"},
                *[h("div", {"class": "stat"}, h("dt", label),
                    h("dd", h("span", {"class": "value", "data-sign": values[key][1]}, values[key][0]),
                      h("span", {"class": "note"}, values[key + "_note"][0]) if key + "_note" in values else ""))
                  for label, key in (("Equity", "equity"), ("Cash", "cash"), ("Today's change", "change_today"),
                                     ("Total P&L", "total_pl"))])
    positions = [h("tr", h("th", {"scope": "row", "data-label": "Symbol"},
                           h("a", {"href": f"/asset/{pos['symbol']}", "class": "sym"}, pos["symbol"])),
                   num(fmt.quantity(pos["quantity"]), header="Shares"),
                   num(fmt.price(pos["average_price"]), header="Avg price"),
                   num(fmt.price(pos.get("price")), header="Last"),
                   num(fmt.money(pos["market_value"]), header="Market value"),
                   num(_pl_text(pos), sign=fmt.sign(pos["unrealized_pl"]), header="Unrealized P&L"))
                 for pos in p["positions"]]
    orders = [h("tr", h("th", {"scope": "row", "data-label": "Order"}, order_summary(o), " ", status_badge(o),
                        role_line(o, known_orders(p["orders"]), link=False)),
                cell(fmt.TYPES.get(o["type"], o["type"]), "Type"), num(price_cell(o), header="Price"),
                num(filled_cell(o), header="Filled"),
                cell(tif_text(o), "Time in force"),
                cell(fmt.when(o["created"]), "Placed"))
              for o in p["orders"]]
    link = player_link(p["game"], p["username"])
    pages = []
    if p.get("next_before"):
        pages.append(h("a", {"class": "btn small", "href": f"{link}?before={p['next_before']}"}, "Older trades"))
    if before is not None:
        pages.append(h("a", {"href": link}, "Newest"))
    removed = h("p", {"class": "muted"}, f"Removed from the game {fmt.when(p['removed'])}: the portfolio takes no"
                                         " more orders.") if p.get("removed") else ""
    if p.get("final_equity") is not None:
        removed = h("p", {"class": "flash info"}, "The game is over: final rank ", h("strong", str(p["final_rank"])),
                    ", final equity ", h("strong", fmt.money(p["final_equity"])),
                    f" (as of {fmt.when(p['final_as_of'])})" if p.get("final_as_of") else "",
                    ". The figures below are at the market's prices now.")
    main = join(
        h("p", {"class": "crumbs"}, h("a", {"href": "/games"}, "Games"), " / ",
          h("a", {"href": game_link(p["game"])}, p["game"]), " / ", p["username"]),
        h("section", {"class": "card"}, h("h1", f"{p['username']} in {p['game']}"), removed, figures),
        h("section", {"class": "card", "aria-labelledby": "player-positions-title"},
          h("h2", {"id": "player-positions-title"}, "Positions"),
          table(PLAYER_POSITION_HEADERS, positions, caption="Positions", empty="No positions.",
                cls="data stack-on-phone")),
        h("section", {"class": "card", "aria-labelledby": "player-orders-title"},
          h("h2", {"id": "player-orders-title"}, "Open orders"),
          table(PLAYER_ORDER_HEADERS, orders, caption="Open orders", empty=EMPTY["open-orders"],
                cls="data stack-on-phone")),
        h("section", {"class": "card", "aria-labelledby": "player-trades-title"},
          h("h2", {"id": "player-trades-title"}, "Trades"),
          h("p", {"class": "muted"}, "Every fill, dividend and split of the portfolio, newest first."),
          table(ACTIVITY_HEADERS, activity_rows(list(reversed(p["transactions"]))), caption="Trades",
                empty=EMPTY["activities"], cls="data stack-on-phone"),
          h("p", *pages) if pages else ""))
    return document(chrome, f"{p['username']} in {p['game']}", main, page="game")
