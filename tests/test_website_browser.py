"""The website in a real headless Chromium against a running cluster (master + worker over TLS, the
worker's HTTP listener on loopback): what a person does, and what they see.

Two tests, one cluster each (Chromium costs seconds to start): the trading journey, and the ways a
session ends or never starts (a wrong password, throttling, a session ended from the command line,
signing in with an OpenID Connect provider).  Each page is saved as a screenshot at desktop and phone
widths under test-artifacts/screenshots/.  The market is moved by the tests (``d.tick()``: one update
and one market step), never by waiting.  SQLite only: the pages read through the same commands as
the command-line client, whose database behaviour the other tests cover on both databases.
"""

from dataclasses import replace
from decimal import Decimal

import pytest
import pytest_twisted
from twisted.internet import reactor

from papertrader import commands
from papertrader.master.db import Database
from papertrader.worker.web import formatting as fmt
from papertrader.worker.web import views
from tests.browser import PHONE, Browser
from tests.conftest import start_cluster
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, TestProvider

pytestmark = pytest.mark.timeout(240)

PASSWORD = "correct horse battery"


async def website(tmp_path, settings, clock, **more):
    d = await start_cluster(tmp_path, replace(settings, workers=1, **more), Database.default_url(str(tmp_path)),
                            clock, http_port=0)
    worker = d.cluster.workers[0]
    d.worker = worker
    d.url = f"http://127.0.0.1:{worker.http.port.getHost().port}"
    return d


def price_of(d, symbol):
    return d.worker.quotes.get(symbol)["price"]


async def sign_in(b, username, password=PASSWORD):
    await b.open("/signin")
    await b.fill({"#f-username": username, "#f-password": password})
    await b.click("form[action='/signin'] button[type=submit]")


async def cli_ok(d, *argv, **options):
    """Run the command line as ``d.cli`` does; it must succeed."""
    status, _, err = await d.cli(*argv, **options)
    assert status == 0, err


async def portfolio_options(b):
    """The navigation's "Portfolio shown" menu: [value, selected] of each option."""
    return await b.script("return [...document.querySelectorAll('#f-shown-portfolio option')]"
                          ".map((o) => [o.value, o.selected])")


async def show_portfolio(b, name):
    """Choose ``name`` in the navigation's "Portfolio shown" menu (on the dashboard: the page made again)."""
    await b.script(f"document.getElementById('f-shown-portfolio').value = '{name}'")
    await b.click(".portfolio-picker button")
    await b.page("dashboard")


async def register(b, username):
    """Make an account on the register page (signed in at once: the dashboard)."""
    await b.open("/register")
    await b.fill({"#f-username": username, "#f-email": f"{username}@example.com", "#f-password": PASSWORD})
    await b.click("form[action='/register'] button[type=submit]")
    await b.page("dashboard")


async def at_width(b, width, script):
    """``script``'s answer with the page laid out on a phone ``width`` px wide (then back to the desktop)."""
    def run():
        b.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", dict(width=width, height=700,
                                                                           deviceScaleFactor=1, mobile=True))
        try:
            b.driver.execute_async_script(
                "const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(done));")
            return b.driver.execute_script(script)
        finally:
            b.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    return await b.run(run, what=f"the page at {width} px")


#: What a phone shows of the header's market line: its text, whether it is in sight, and the page's width.
PHONE_HEADER = r"""
const line = document.querySelector('header .market'), box = line.getBoundingClientRect();
return {text: line.innerText.replace(/\s+/g, ' ').trim(), shown: box.width > 0 && box.height > 0,
        left: box.left, right: box.right, page: document.documentElement.scrollWidth};
"""


async def phone(b, on=True):
    """Lay the pages out on a 390 px phone (until ``phone(b, False)``), through the next page loads too."""
    def run():
        if on:
            b.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", dict(width=390, height=844,
                                                                               deviceScaleFactor=1, mobile=True))
        else:
            b.driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    await b.run(run, what="the phone's size")


#: The element that has the focus, and whether it is in sight.
FOCUSED = """
const e = document.activeElement, box = e.getBoundingClientRect();
return {id: e.id, seen: box.top >= 0 && box.bottom <= innerHeight && box.height > 0, title: document.title};
"""


def csp_violations(entries):
    return [e["message"] for e in entries if "Content Security Policy" in e["message"] or
            "Content-Security-Policy" in e["message"]]


@pytest_twisted.ensureDeferred
async def test_trading_in_a_browser(tmp_path, settings, clock):
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        # Register: signed in at once.
        await b.open("/")
        await b.page("signin")  # not signed in: the sign-in page
        await b.screenshots("signin")
        await b.click("a[href='/register']")
        await b.page("register")
        await b.screenshots("register")
        await b.fill({"#f-username": "alice", "#f-email": "alice@example.com", "#f-password": PASSWORD})
        await b.click("form[action='/register'] button[type=submit]")
        await b.page("dashboard")
        await b.wait_text(".flash", "Welcome, alice")
        await b.live()
        assert "$100,000.00" in await b.text("[data-live='equity']")
        assert "$100,000.00" in await b.text("[data-live='buying_power']")
        # On a phone the header still says who is signed in, whether the market is open and its time: a line
        # of its own, in sight and not wider than the screen, at 390 and at 320 px.
        clock = await b.text("[data-live='clock']")
        state = await b.text("[data-live='market']")
        for width in (390, 320):
            line = await at_width(b, width, PHONE_HEADER)
            assert line["shown"] and line["text"] == f"alice · {state} · {clock}", (width, line)
            assert 0 <= line["left"] and line["right"] <= width and line["page"] <= width, (width, line)
        session = {c["name"]: c for c in await b.cookies()}["__Host-pt_session"]
        assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Strict"
        assert session["path"] == "/"

        # The asset page: a limit buy far under the market stays open.
        await b.click("nav a[href='/assets']")
        await b.page("assets")
        await b.screenshots("assets")
        # Its prices move with the market, without a reload (its assets' and its watchlists').
        await b.live()
        await d.tick()
        await b.wait_text("td[data-live='quote.AAPL.price']", fmt.price(price_of(d, "AAPL")))
        await b.click("a.sym[href='/asset/AAPL']")
        await b.page("asset")
        await b.live()
        assert await b.attribute("#price-chart", "data-candle-count") not in (None, "0")
        limit = (price_of(d, "AAPL") / 2).quantize(Decimal("0.01"))
        # Typed as people write prices: the browser sends it (no pattern of the field stops it), the master reads it.
        await b.fill({"#t-type": "limit", "#t-qty": "10", "#t-limit_price": f"${limit:,}"})
        cost = await b.wait(lambda dr: dr.find_element("id", "preview-cost").text.startswith("$") and
                            dr.find_element("id", "preview-cost").text, "the order preview")
        assert cost == fmt.money(limit * 10)
        assert await b.text("#preview-after") == fmt.money(Decimal("100000.00") - limit * 10)
        assert await b.text("#ticket-portfolio") == "Portfolio: default"  # where the order goes, named
        await b.screenshots("asset-ticket")
        await b.click("#place-order")
        await b.page("asset")
        await b.wait_text(".flash", f"Buy 10 AAPL in portfolio default (limit {fmt.price(limit)}, Day): open.")
        await b.wait_text("[data-section='symbol-orders']", "Buy 10 AAPL")
        # A refused order: the page of the ticket again (a GET: POST/redirect/GET), with why and what was typed;
        # a reload shows the ticket afresh and sends nothing again (no "Confirm form resubmission").  On a phone
        # the reason, far down the page, is in sight and has the focus (a screen reader says it), and the
        # page's title says there is an error.
        await phone(b)
        await b.click("label[for='t-side-sell']")
        await b.fill({"#t-type": "market", "#t-qty": "3"})
        await b.click("#place-order")
        await b.page("asset")
        await b.wait_text("#form-error", "short selling is not allowed")
        focused = await b.script(FOCUSED)
        assert focused == {"id": "form-error", "seen": True, "title": "Error: AAPL · PaperTrader"}, focused
        # (not enough shares: the amount is marked, described by the reason)
        assert await b.attribute("#t-qty", "aria-invalid") == "true"
        assert (await b.attribute("#t-qty", "aria-describedby")).startswith("form-error")
        # One that names a field marks it invalid, described by the reason.
        await b.fill({"#t-side-buy": True, "#t-type": "limit", "#t-qty": "1", "#t-limit_price": ""})
        await b.click("#place-order")
        await b.wait_text("#form-error", "needs limit price")
        assert await b.attribute("#t-limit_price", "aria-invalid") == "true"
        assert await b.attribute("#t-limit_price", "aria-describedby") == "form-error t-limit_price-hint"
        assert await b.attribute("#t-qty", "aria-invalid") is None
        await phone(b, False)
        await b.click("label[for='t-side-sell']")
        await b.fill({"#t-type": "market", "#t-qty": "3"})
        await b.click("#place-order")
        await b.page("asset")
        await b.wait_text("#form-error", "short selling is not allowed")
        assert await b.attribute("#t-qty", "value") == "3" and await b.attribute("#t-side-sell", "checked")
        assert await b.script("return performance.getEntriesByType('navigation')[0].type") == "navigate"
        await b.script("location.reload()")
        await b.wait(lambda dr: dr.find_element("tag name", "body").get_attribute("data-page") == "asset" and
                     not dr.find_elements("id", "form-error"), "the ticket afresh")
        assert await b.script("return document.title") == "AAPL · PaperTrader"
        assert await b.script("return performance.getEntriesByType('navigation')[0].type") == "reload"
        assert await b.attribute("#t-qty", "value") in ("", None)
        # A dollar amount is a Day order: GTC and the others are shown disabled once Dollars is chosen (the choice
        # was silently put back to Day), and offered again with Shares.
        await b.fill({"#t-type": "market", "#t-time_in_force": "gtc"})
        await b.click("label[for='t-by-dollars']")
        enabled = "return [...document.querySelectorAll('#t-time_in_force option')].filter(o => !o.disabled)" \
                  ".map(o => o.value)"
        assert (await b.script(enabled), await b.attribute("#t-time_in_force", "value")) == (["day"], "day")
        await b.click("label[for='t-by-shares']")
        assert "gtc" in await b.script(enabled)
        # Exits: a take-profit and a stop-loss make a buy a bracket order, which the preview says; with them the
        # ticket offers Day or GTC only, and it offers none for an order that takes none (a trailing stop).
        await b.click("details.exits > summary")
        up = (price_of(d, "AAPL") * Decimal("1.5")).quantize(Decimal("0.01"))
        down = (price_of(d, "AAPL") / 2).quantize(Decimal("0.01"))
        await b.fill({"#t-type": "market", "#t-qty": "2", "#t-take_profit": str(up), "#t-stop_loss": str(down)})
        await b.wait_text("#preview-note", f"A bracket order: a take-profit at {fmt.price(up)} and a stop-loss at"
                                           f" {fmt.price(down)}, held until this order fills")
        assert await b.script("return document.querySelector('#t-time_in_force option[value=ioc]').disabled")
        await b.fill({"#t-type": "trailing_stop"})
        assert await b.script("return document.querySelector('details.exits').hidden")

        # See it open on the orders page, then cancel it.
        await b.click("nav a[href='/orders']")
        await b.page("orders")
        await b.live()
        row = await b.wait_text("[data-section='open-orders'] tr", "Buy 10 AAPL")
        assert "open" in row and fmt.price(limit) in row
        await b.screenshots("orders")
        # Replace it with a lower limit: the old one ends as replaced, the new one is open.
        await b.click("[data-section='open-orders'] a[aria-label^='Replace: Buy 10 AAPL']")
        await b.page("replace")
        lower = limit - 1
        await b.fill({"#t-limit_price": str(lower)})
        # Its preview: what the new order keeps of buying power once the old one's is freed.
        await b.wait_text("#preview-cost", fmt.money(lower * 10))
        assert await b.text("#preview-after") == fmt.money(Decimal("100000.00") - lower * 10)
        await b.screenshots("replace")
        await b.click("form[action$='/replace'] button[type=submit]")
        await b.page("orders")
        await b.wait_text(".flash", f"Replaced. New order: Buy 10 AAPL (limit {fmt.price(lower)})")
        await b.wait_text("[data-section='open-orders'] tr", fmt.price(lower))
        assert "replaced" in await b.wait_text("[data-section='closed-orders'] tr", "Buy 10 AAPL")
        await b.click("[data-section='open-orders'] button[aria-label^='Cancel: Buy 10 AAPL']")
        await b.page("orders")
        await b.wait_text(".flash", "Canceled: Buy 10 AAPL")
        await b.wait_text("[data-section='open-orders']", "No open orders.")
        assert "canceled" in await b.wait_text("[data-section='closed-orders'] tr", "Buy 10 AAPL")

        # The keyboard stays on the button it was on when the table comes again (another order ended): the same
        # order's Cancel, found by where it posts, never another row's; if its own order ends, the table's caption.
        token = {"token": session["value"]}
        low, lower = [await d.worker.gateway.forward(commands.PlaceOrder, dict(
            token, client_order_id=f"focus-{n}", side="buy", symbol="AAPL", quantity="1", type="limit",
            limit_price=str(n), time_in_force="gtc"), "127.0.0.1") for n in (2, 1)]
        await b.open("/orders")
        await b.page("orders")
        await b.live()
        await b.script("document.querySelector(`form[action='/orders/${arguments[0]}/cancel'] button`).focus()",
                       lower["uuid"])
        focused = "const f = document.activeElement.closest('form'); return f ? f.getAttribute('action') : " \
                  "document.activeElement.tagName;"
        await d.worker.gateway.forward(commands.CancelOrder, dict(token, order_uuid=low["uuid"]), "127.0.0.1")
        await b.wait(lambda dr: low["uuid"] not in dr.find_element(
            "css selector", "[data-section='open-orders']").get_attribute("innerHTML"), "the table without it")
        assert await b.script(focused) == f"/orders/{lower['uuid']}/cancel"
        await d.worker.gateway.forward(commands.CancelOrder, dict(token, order_uuid=lower["uuid"]), "127.0.0.1")
        await b.wait_text("[data-section='open-orders']", "No open orders.")
        assert await b.script(focused) == "CAPTION"

        # Buy at the market: it fills at the next update, pushed to the page (no reload).
        await b.open("/asset/AAPL")
        await b.page("asset")
        await b.live()
        await b.fill({"#t-type": "market", "#t-qty": "5"})
        await b.click("#place-order")
        await b.wait_text(".flash", "Buy 5 AAPL in portfolio default (at the market, Day): open.")
        await b.live()
        await d.tick()
        # The banner that said "open" says its news (it contradicted it until the page was left); in sight, it
        # alone: a toast beside it said it twice.
        fill = await b.wait_text(".flash", "Filled: Buy 5 AAPL")
        assert await b.script("return document.querySelectorAll('#toasts .toast').length") == 0
        # An order's news without a banner in sight (one placed by the command line, canceled there) is a toast;
        # on a desktop it does not cover the ticket's Place button (under the pointer that just placed the order).
        await b.script("document.getElementById('place-order').scrollIntoView({block: 'end'});")
        elsewhere = await d.worker.gateway.forward(commands.PlaceOrder, dict(
            token, client_order_id="elsewhere", side="buy", symbol="AAPL", quantity="1", type="limit",
            limit_price="1", time_in_force="gtc"), "127.0.0.1")
        await d.worker.gateway.forward(commands.CancelOrder, dict(token, order_uuid=elsewhere["uuid"]), "127.0.0.1")
        await b.wait_text("#toasts", "Canceled: Buy 1 AAPL")
        covers = await b.script(
            "document.getElementById('place-order').scrollIntoView({block: 'end'});"
            " const t = document.querySelector('#toasts .toast:last-child').getBoundingClientRect();"
            " const p = document.getElementById('place-order').getBoundingClientRect();"
            " return [innerWidth, !(t.right < p.left || t.left > p.right || t.bottom < p.top || t.top > p.bottom)];")
        assert covers == [1280, False], covers
        # It may cover what is under it: it can be dismissed (and stays while the pointer or keyboard is on it).
        toasts = await b.script("return document.querySelectorAll('#toasts .toast').length")
        await b.click("#toasts .toast:last-child button[aria-label='Dismiss']")
        assert await b.script("return document.querySelectorAll('#toasts .toast').length") == toasts - 1
        await b.wait_text("[data-section='asset-position']", "5")
        await b.wait_text("[data-section='symbol-orders']", "No open orders.")
        # Its "Close position", in the part the update made again, asks first; declined, nothing is sold.
        await b.script("window.asked = []; window.confirm = (m) => { window.asked.push(m); return false; }")
        await b.click("[data-section='asset-position'] form[action='/asset/AAPL/close'] button")
        asked = await b.script("return window.asked")
        assert len(asked) == 1 and asked[0].startswith("Sell all 5 AAPL at the market?"), asked
        price = price_of(d, "AAPL")
        assert f"5 at {fmt.price(price)}" in fill
        # The chart took the update: its newest candle closes at the new price.
        await b.wait(lambda dr: dr.find_element("id", "price-chart").get_attribute("data-last-close") ==
                     fmt.number_text(price), "the chart's newest candle")
        assert await b.text(f"[data-live='quote.AAPL.price']") == fmt.price(price)
        await b.screenshots("asset")

        # The dashboard: the position, valued live as prices move.
        await b.click("nav a[href='/']")
        await b.page("dashboard")
        await b.live()
        row = await b.wait_text("[data-section='positions'] tr", "AAPL")
        assert "5" in row
        # On a phone a table is a list of cards: its header row is out of sight but not out of the accessibility
        # tree (display: none took it out), and the column of buttons is named.
        head = await at_width(b, 390, """
            const head = document.querySelector('table.stack-on-phone thead'), box = head.getBoundingClientRect();
            return {display: getComputedStyle(head).display, small: box.width <= 1 && box.height <= 1,
                    names: [...head.querySelectorAll('th')].map((th) => th.textContent),
                    page: document.documentElement.scrollWidth};""")
        assert head["display"] != "none" and head["small"] and head["page"] <= 390, head
        assert head["names"] == ["Symbol", "Shares", "Avg price", "Last", "Market value", "Unrealized P&L", "Today",
                                 "Actions"], head
        points = int(await b.attribute("#equity-chart", "data-point-count"))
        await d.tick()
        price = price_of(d, "AAPL")
        await b.wait_text("[data-live='pos.AAPL.price']", fmt.price(price))
        portfolio = await d.worker.gateway.forward(commands.Portfolio, {"token": session["value"]}, "127.0.0.1")
        # What the page shows is what the master says the account is worth.
        await b.wait_text("[data-live='equity']", fmt.money(portfolio["equity"]))
        [position] = portfolio["positions"]
        assert await b.text("[data-live='pos.AAPL.market_value']") == fmt.money(position["market_value"])
        await b.wait(lambda dr: dr.find_element("id", "equity-chart").get_attribute("data-last-value") ==
                     fmt.number_text(portfolio["equity"]), "the equity chart's newest value")
        assert int(await b.attribute("#equity-chart", "data-point-count")) >= points
        await b.screenshots("dashboard")
        # The position's Sell: the ticket filled in with the 5 shares held (the focus on them, to check or change),
        # the sale previewed before anything is sent.
        await b.click("[data-section='positions'] a[aria-label='Sell 5 AAPL']")
        await b.page("asset")
        assert await b.attribute("#t-qty", "value") == "5" and await b.attribute("#t-side-sell", "checked")
        await b.wait_text("#preview-cost-label", "Estimated proceeds")
        await b.wait_text("#preview-note", "You hold 5 AAPL.")
        assert await b.script("return document.activeElement.id") == "t-qty"
        await b.open("/")
        await b.page("dashboard")
        await b.live()
        # Live prices paused (remembered in the browser): updates move no price on the page (the header's clock
        # still moves); resumed, the page shows the newest figures.
        # Its words say what it does, and nothing says the opposite: a toggle's aria-pressed with words that change
        # was said "Resume live prices, toggle button, pressed" (APG: a toggle's label does not change).
        await b.click("#pause-live")
        assert (await b.attribute("#pause-live", "aria-pressed"), await b.text("#pause-live")) == (
            None, "Resume live prices")
        shown, before = await b.text("[data-live='pos.AAPL.price']"), await b.text("[data-live='clock']")
        for _ in range(20):  # until the market's minute, which the header shows, has moved on
            await d.tick()
            if fmt.when(d.worker.quotes.market["time"]) != before:
                break
        await b.wait_text("[data-live='clock']", fmt.when(d.worker.quotes.market["time"]))
        assert fmt.price(price_of(d, "AAPL")) != shown  # (the price moved meanwhile)
        assert await b.text("[data-live='pos.AAPL.price']") == shown
        await b.open("/")
        await b.page("dashboard")
        assert await b.text("#pause-live") == "Resume live prices"  # another page: still paused
        await b.click("#pause-live")
        await b.page("dashboard")
        await b.wait_text("[data-live='pos.AAPL.price']", fmt.price(price_of(d, "AAPL")))
        assert (await b.attribute("#pause-live", "aria-pressed"), await b.text("#pause-live")) == (
            None, "Pause live prices")

        # The history, the order with its fill, the account.
        await b.click("nav a[href='/history']")
        await b.page("history")
        assert "Bought AAPL" in await b.text("[data-section='activities']")
        await b.screenshots("history")
        await b.open("/orders")
        await b.click("[data-section='closed-orders'] a[href^='/orders/']")
        await b.page("order")
        await b.wait_text("main", "Fills")
        await b.screenshots("order")
        await b.click("nav a[href='/account']")
        await b.page("account")
        await b.fill({"#f-name": "my-strategy"})
        await phone(b)
        await b.click("form[action='/account/api-keys'] button[type=submit]")
        await b.page("account")
        key_id = await b.text("#new-key-id")
        # Shown once, far down the page on a phone: in sight, with the focus.
        focused = await b.script(FOCUSED)
        assert focused == {"id": "new-key", "seen": True, "title": "Account · PaperTrader"}, focused
        await phone(b, False)
        assert key_id.startswith("PK") and len(await b.text("#new-key-secret")) > 20
        assert key_id in await b.text("section[aria-labelledby=keys-title] table")
        await b.screenshots("account")

        # A second portfolio, made on the portfolios page and shown from there; the games page.
        await b.click("nav a[href='/portfolios']")
        await b.page("portfolios")
        await b.fill({"#f-name": "Growth", "#f-cash": "5000"})
        await b.click("form[action='/portfolios'] button[type=submit]")
        await b.page("portfolios")
        await b.wait_text(".flash", "Portfolio Growth created")
        await b.screenshots("portfolios")
        await b.click("table form[action='/portfolios/use'] button")
        await b.page("dashboard")
        await b.wait_text(".flash", "Showing and trading portfolio Growth")
        assert await b.text("[data-section='positions']") == views.EMPTY["positions"]
        # Managed from its own page: renamed, and the pages go on showing it.
        await b.click("nav a[href='/portfolios']")
        await b.page("portfolios")
        await b.click("a[aria-label='Manage Growth']")
        await b.page("portfolios")
        await b.screenshots("portfolio-manage")
        await b.fill({"#f-new_name": "Value"})
        await b.click("form[action='/portfolios/rename'] button[type=submit]")
        await b.page("portfolios")
        await b.wait_text(".flash", "Portfolio Growth is now called Value.")
        assert await b.attribute("#f-shown-portfolio option[selected]", "value") == "Value"
        await b.open("/asset/AAPL")
        await b.page("asset")
        assert await b.text("#ticket-portfolio") == "Portfolio: Value (change)"
        await b.click("nav a[href='/games']")
        await b.page("games")
        # A private game, made here: its page shows its invite code, once, and what its creator may do.
        await b.fill({"#g-name": "Club Cup", "#f-start": "2026-09-01", "#f-end": "2026-12-31", "#f-cash": "10000",
                      "#f-private": True})
        await b.screenshots("games")
        await b.click("form[action='/games'] button[type=submit]")
        await b.page("game")
        assert len(await b.text("#invite-code")) >= 8
        await b.wait_text("main", "End the game now")
        await b.screenshots("game-manage")
        # Its page is live: a player joining shows on it (the page's script sends which game it shows).
        await b.live()
        code = await b.text("#invite-code")
        await cli_ok(d, "register", "carl", "carl@example.com", "--password-stdin",
                     stdin=PASSWORD + "\n", user="carl")
        await cli_ok(d, "login", "carl", "--password-stdin", stdin=PASSWORD + "\n", user="carl")
        await cli_ok(d, "game", "join", "Club Cup", "--code", code, user="carl")
        await b.wait_text("[data-section='leaderboard']", "Joined, ranked at the next market update: carl.")

        # No violation of the Content-Security-Policy on any page (no inline script or style).
        assert csp_violations(await b.console()) == []

        # Sign out: back to the sign-in page, the cookie gone, the session ended on the master.
        await b.click("form[action='/signout'] button")
        await b.page("signin")
        await b.wait_text(".flash", "You are signed out.")
        assert "__Host-pt_session" not in {c["name"] for c in await b.cookies()}
        await b.open("/orders")
        await b.page("signin")
        # Signing in there leads to the page that was asked for, not the dashboard.
        await b.fill({"#f-username": "alice", "#f-password": PASSWORD})
        await b.click("form[action='/signin'] button[type=submit]")
        await b.page("orders")
    finally:
        await b.close()
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_sessions_that_end_or_never_start(tmp_path, settings, clock):
    provider = TestProvider()
    issuer = await provider.start(reactor)
    d = await website(tmp_path, settings, clock, login_free_attempts=2, oidc_name="test", oidc_issuer=issuer,
                      oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET)
    b = await Browser.start(d.url)
    try:
        await cli_ok(d, "register", "bob", "bob@example.com", "--password-stdin", stdin=PASSWORD + "\n",
                     user="bob")

        # A wrong password says so, and keeps the username; then the throttle speaks.
        await sign_in(b, "bob", "not my password")
        await b.page("signin")
        await b.wait_text("#form-error", "Wrong username or password.")
        assert await b.attribute("#f-username", "value") == "bob"
        await b.screenshots("signin-wrong-password")
        await sign_in(b, "bob", "still not it")
        await b.wait_text("#form-error", "Wrong username or password.")
        await sign_in(b, "bob", PASSWORD)
        error = await b.wait_text("#form-error", "Too many")
        assert "try again in" in error
        await d.tick()  # the throttle's delay passes (the master's clock)
        await d.tick()

        # Signed in; then the session ends elsewhere: the page goes back to sign-in by itself.
        await sign_in(b, "bob", PASSWORD)
        await b.page("dashboard")
        await b.open("/orders")
        await b.page("orders")
        await b.live()
        await cli_ok(d, "login", "bob", "--password-stdin", stdin=PASSWORD + "\n", user="bob")
        await cli_ok(d, "logout", "--all", user="bob")
        await b.page("signin")
        await b.wait_text(".flash", "Your session ended: you were signed out")  # why it is there, in words
        await b.screenshots("signin-session-ended")
        # (signing in again leads back to the page it was on)
        assert await b.script("return location.search") == "?session=ended&next=%2Forders"
        await b.open("/")
        await b.page("signin")  # the cookie's session is over for every page too

        # Sign in with the provider: a new identity chooses a username, then is signed in.
        await b.click("form[action='/auth/test/start'] button")
        await b.page("provider")
        await b.screenshots("provider-new-account")
        await b.fill({"#f-username": "grace"})
        await b.click("form[action='/auth/finish'] input[value=create] ~ button")
        await b.page("dashboard")
        await b.live()
        assert (await b.text(".who .user")) == "grace"
        await b.click("form[action='/signout'] button")
        await b.page("signin")
        # The second time, the identity has an account: straight to the dashboard.
        await b.click("form[action='/auth/test/start'] button")
        await b.page("dashboard")
        assert (await b.text(".who .user")) == "grace"
        # Sign out everywhere from the account page.
        await b.click("nav a[href='/account']")
        await b.page("account")
        await b.screenshots("account-provider")
        await b.script("window.confirm = () => true")  # the browser's own "are you sure?" dialog
        await b.click("form[action='/account/signout-everywhere'] button")
        await b.page("signin")
        await b.wait_text(".flash", "Signed out everywhere")
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()
        await provider.port.stopListening()


#: A chart's days as it says them (under the crosshair: its timeFormatter's; on the time axis, a day's mark: its
#: tickMarkFormatter's; without a formatter of its own the library says the UTC date), and the rows of the table
#: under it, oldest first.
CHART_DAYS = r"""
const box = document.getElementById(arguments[0]), chart = box.chart, options = chart.options();
const utc = (time) => new Date(time * 1000);
const crosshair = options.localization.timeFormatter || ((time) => utc(time).toISOString().slice(0, 10));
const tick = options.timeScale.tickMarkFormatter;
const mark = (time) => (tick && tick(time, 2, 'en-US')) || String(utc(time).getUTCDate());
const data = chart.panes()[0].getSeries()[0].data();
const rows = [...box.closest('section').querySelectorAll('details.chart-data tbody th[scope=row]')]
  .map((th) => th.textContent.trim()).reverse();
return {days: data.map((p) => crosshair(p.time)), marks: data.map((p) => mark(p.time)), rows};
"""


@pytest.mark.parametrize("calendar", ["XASX", "XNYS"])
@pytest_twisted.ensureDeferred
async def test_daily_charts_say_the_market_days_their_tables_say(tmp_path, settings, clock, calendar):
    """A daily candle, and a daily equity curve's point, is stamped at its session's open: Sydney's (XASX) opens at
    10:00 AEDT, 23:00 UTC the evening before.  The chart library labels days in UTC, so the daily charts' axis and
    crosshair said each day a day early, unlike the table under them.  They say the market's days (times.day), as
    the tables do; New York's (XNYS) stay as they were."""
    from datetime import date, timedelta

    days = [day for day in (date(2024, 1, 29) + timedelta(days=n) for n in range(12)) if day.weekday() < 5]
    prices = tmp_path / "BHP.csv"
    prices.write_text("date,open,high,low,close,volume\n" + "".join(
        f"{day.isoformat()},45.00,46.00,44.50,45.50,100000\n" for day in days))
    days = [day.isoformat() for day in days]
    d = await website(tmp_path, settings, clock, provider="replay", assets=(), calendar=calendar,
                      replay_files=str(prices), replay_start=days[0])
    b = await Browser.start(d.url)
    try:
        await register(b, "ava")
        for _ in range(3):
            await d.tick()

        await b.open("/asset/BHP?interval=1d")
        await b.page("asset")
        count = int(await b.wait(lambda dr: dr.find_element("id", "price-chart").get_attribute("data-candle-count"),
                                 "the price chart"))
        assert 4 <= count < len(days), count  # (some played, not all)
        chart = await b.script(CHART_DAYS, "price-chart")
        assert chart["rows"] == days[:count], chart  # (the replay's days, from its first: the table's dates)
        assert chart["days"] == chart["rows"], chart  # (Sydney's were a day early: 2024-01-28, ...)
        assert chart["marks"] == [str(int(day[8:])) for day in chart["rows"]], chart
        # Room right of the newest candle for its mark, centred under it, to be read whole (at the edge, a new
        # year's "2010" read "201").
        room = ("const ts = document.getElementById('price-chart').chart.timeScale();"
                " return ts.width() - ts.logicalToCoordinate(arguments[0] - 1);")
        assert await b.script(room, count) >= 24
        # The next day's candle comes live: the chart says its day too, with the same room after it.
        await b.live()
        await d.tick()
        await b.wait(lambda dr: dr.find_element("id", "price-chart").get_attribute("data-candle-count") ==
                     str(count + 1), "the next day's candle")
        assert (await b.script(CHART_DAYS, "price-chart"))["days"] == days[:count + 1]
        await b.wait(lambda dr: dr.execute_script(room, count + 1) >= 24, "room right of the newest candle")

        # The dashboard's equity curve: from the cash it started with (shown the day before its first), then the
        # days it lived through.
        await b.open("/?range=ALL")
        await b.page("dashboard")
        await b.wait(lambda dr: dr.find_element("id", "equity-chart").get_attribute("data-point-count"),
                     "the equity chart")
        chart = await b.script(CHART_DAYS, "equity-chart")
        lived = chart["rows"][1:]
        assert chart["rows"][0] == "Starting cash" and lived == days[count - 3:count + 1], chart  # (four updates)
        before = (date.fromisoformat(lived[0]) - timedelta(days=1)).isoformat()
        assert chart["days"] == [before] + lived, chart
        assert chart["marks"] == [str(int(day[8:])) for day in chart["days"]], chart
        # Left open, the page takes each day's point live (ava has no position: one price paces them), and the
        # whole curve stays in sight: each new point pushed the first off the chart's left edge.
        await b.live()
        points = len(chart["rows"])
        for more in (1, 2):  # (each point before the next update: two at once make one, the newer)
            await d.tick()
            await b.wait(lambda dr: dr.find_element("id", "equity-chart").get_attribute("data-point-count") ==
                         str(points + more), f"{more} more days' points")
        # (the library applies a change of its time scale at its next frame: waited for, up to the page wait)
        visible = ("const r = document.getElementById('equity-chart').chart.timeScale().getVisibleLogicalRange();"
                   " return [r.from, r.to];")
        await b.wait(lambda dr: (lambda r: r[0] <= 0 and r[1] >= points + 1)(dr.execute_script(visible)),
                     f"the whole curve in sight, its {points + 2} points")
        # A narrower window (a phone turned): the whole curve is fitted in again (the library kept the points'
        # spacing, and the first ones were out of sight, for good: the curve cannot be scrolled).
        await b.run(b.driver.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride",
                    dict(width=PHONE[0], height=PHONE[1], deviceScaleFactor=1, mobile=True), what="a phone's size")
        await b.wait(lambda dr: dr.find_element("id", "equity-chart").size["width"] < PHONE[0], "the narrower chart")
        await b.wait(lambda dr: (lambda r: r[0] <= 0 and r[1] >= points + 1)(dr.execute_script(visible)),
                     f"the whole curve in sight on a phone, its {points + 2} points")
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


def dollars(text):
    return Decimal(text.replace("$", "").replace(",", ""))


@pytest_twisted.ensureDeferred
async def test_the_tickets_preview_follows_the_buying_power_and_the_price(tmp_path, settings, clock):
    """The ticket's preview (buying power, what the order reserves, what is left) is asked again when what it counts
    from moves live: an order placed elsewhere (the buying power), a market update (the price).  It was computed
    once, as typed, while the buying power beside it moved on: $97,429.22 less $315.10 said $91,733.66 left."""
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        await register(b, "bea")
        token = {c["name"]: c for c in await b.cookies()}["__Host-pt_session"]["value"]
        await b.open("/asset/AAPL")
        await b.page("asset")
        await b.live()
        await b.fill({"#t-type": "market", "#t-qty": "10"})
        cost = dollars(await b.wait(lambda dr: dr.find_element("id", "preview-cost").text.startswith("$") and
                                    dr.find_element("id", "preview-cost").text, "the order preview"))
        await b.wait_text("#preview-after", fmt.money(Decimal("100000.00") - cost))

        # Another client reserves buying power: the preview counts from what is left.
        limit = (price_of(d, "AAPL") / 2).quantize(Decimal("0.01"))
        await d.worker.gateway.forward(commands.PlaceOrder, dict(
            token=token, client_order_id="elsewhere", side="buy", symbol="AAPL", quantity="10", type="limit",
            limit_price=str(limit), time_in_force="gtc"), "127.0.0.1")
        power = Decimal("100000.00") - limit * 10
        await b.wait_text("#preview [data-live='buying_power']", fmt.money(power))
        await b.wait_text("#preview-after", fmt.money(power - cost))

        # The market moves: the order's cost is counted at the new price, and the figures still add up.
        before = price_of(d, "AAPL")
        await d.tick()
        assert price_of(d, "AAPL") != before
        await b.wait(lambda dr: dollars(dr.find_element("id", "preview-cost").text) != cost, "the cost at the new price")

        def added_up(dr):
            figures = [dollars(dr.find_element("css selector", css).text)
                       for css in ("#preview [data-live='buying_power']", "#preview-cost", "#preview-after")]
            return figures[0] - figures[1] == figures[2] and figures

        power, cost, after = await b.wait(added_up, "the preview's figures to add up")
        assert cost == (price_of(d, "AAPL") * 10 * Decimal("1.05")).quantize(Decimal("0.01")), (cost, price_of(d, "AAPL"))
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_price_chart_loaded_narrow_fills_its_width_once_widened(tmp_path, settings, clock):
    """A chart loaded on a phone (or a narrow window) and then widened kept its candles' spacing: they were bunched
    in the left third, the rest of the chart empty.  It is fitted again, as the dashboard's curve is."""
    from datetime import date, timedelta

    days = [day for day in (date(2024, 1, 2) + timedelta(days=n) for n in range(60)) if day.weekday() < 5]
    prices = tmp_path / "ACME.csv"
    prices.write_text("date,open,high,low,close,volume\n" + "".join(
        f"{day.isoformat()},{40 + n % 7}.00,{48 + n % 3}.00,{35 + n % 3}.50,{40 + n % 5}.50,100000\n"
        for n, day in enumerate(days)))
    d = await website(tmp_path, settings, clock, provider="replay", assets=(), replay_files=str(prices),
                      replay_start=days[0].isoformat())
    for _ in range(30):  # (a session per update)
        await d.tick()
    b = await Browser.start(d.url)
    try:
        await register(b, "cal")
        await phone(b)
        await b.open("/asset/ACME")
        await b.page("asset")
        count = int(await b.wait(lambda dr: dr.find_element("id", "price-chart").get_attribute("data-candle-count"),
                                 "the price chart"))
        assert count >= 20, count
        narrow = await b.script("return document.getElementById('price-chart').clientWidth")
        await phone(b, False)
        await b.wait(lambda dr: dr.execute_script("return document.getElementById('price-chart').clientWidth") >
                     2 * narrow, "the wider chart")
        # The newest candle near the right edge, not in the left third.
        newest = ("const c = document.getElementById('price-chart').chart, ts = c.timeScale();"
                  " return [ts.logicalToCoordinate(arguments[0] - 1), ts.width()];")
        await b.wait(lambda dr: (lambda x, w: x > 0.8 * w)(*dr.execute_script(newest, count)),
                     "the newest candle at the right of the widened chart")
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


#: Where the focus is: the focused element's id, whether it is in sight, its text, and whether it is in the
#: watchlists' card.
FOCUSED_WHERE = """
const e = document.activeElement, box = e.getBoundingClientRect();
return {id: e.id, seen: box.top >= 0 && box.bottom <= innerHeight && box.height > 0,
        text: e.textContent, in_watchlists: !!e.closest('#watchlists')};
"""


@pytest_twisted.ensureDeferred
async def test_what_a_watchlist_change_did_is_said_where_the_lists_are(tmp_path, settings, clock):
    """A watchlist made, added to, refused or emptied sent the page back to /assets#watchlists: the browser's jump
    to the lists took the focus from the message (a screen reader heard nothing, not even a refusal), and a success
    was said at the top of the page, out of sight.  Each is now said in the watchlists' card, in sight, focused."""
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        await register(b, "wes")
        await b.open("/assets")
        await b.page("assets")
        await b.fill({"#w-name": "Tech", "#w-symbols": "AAPL, NOPE"})
        await b.click("form[action='/watchlists'] button[type=submit]")
        await b.wait_text("#form-error", "Unknown symbol 'NOPE'")
        focused = await b.script(FOCUSED_WHERE)
        assert (focused["id"], focused["seen"], focused["in_watchlists"]) == ("form-error", True, True), focused
        assert await b.attribute("#w-symbols", "aria-invalid") == "true"

        await b.fill({"#w-symbols": "AAPL, MSFT"})
        await b.click("form[action='/watchlists'] button[type=submit]")
        await b.wait_text("#flash", "Watchlist Tech created with AAPL, MSFT.")
        focused = await b.script(FOCUSED_WHERE)
        assert focused == {"id": "flash", "seen": True, "text": "Watchlist Tech created with AAPL, MSFT.",
                           "in_watchlists": True}, focused

        await b.click("button[aria-label='Remove AAPL from Tech']")
        await b.wait_text("#flash", "AAPL removed from your watchlist Tech.")
        focused = await b.script(FOCUSED_WHERE)
        assert focused == {"id": "flash", "seen": True, "text": "AAPL removed from your watchlist Tech.",
                           "in_watchlists": True}, focused
        assert await b.text("#watchlists table") and "AAPL" not in await b.text("#watchlists table")
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_an_invite_link_opens_the_join_form_with_its_button_focused(tmp_path, settings, clock):
    """A game's invite link ended in #join: Chromium does not autofocus a page whose address has a fragment, so the
    join form came with nothing focused (Enter did nothing; a screen reader started at the page's top).  The link
    now opens the form with its Join button focused and in sight."""
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        await register(b, "gil")
        await b.open("/games")
        await b.page("games")
        await b.fill({"#g-name": "Link Cup", "#f-start": "2026-09-01", "#f-end": "2026-12-31", "#f-cash": "10000",
                      "#f-private": True})
        await b.click("form[action='/games'] button[type=submit]")
        await b.page("game")
        link = await b.attribute("#invite-link", "value")
        code = await b.text("#invite-code")
        await b.run(b.driver.get, link, what="the invite link")
        await b.page("games")
        assert await b.attribute("#f-code", "value") == code
        focused = await b.script(FOCUSED_WHERE)
        assert (focused["text"], focused["seen"]) == ("Join", True), focused
        assert await b.script("return document.activeElement.closest('form').getAttribute('action')") == \
            "/games/join"
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_what_saving_a_portfolios_trading_settings_did_is_said_beside_them(tmp_path, settings, clock):
    """Saving a portfolio's trading settings sent the page back to its #settings: the browser's jump there took the
    focus from the message (a screen reader heard nothing), which was at the page's top, out of sight.  It is now
    said above the settings, in sight, focused."""
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        await register(b, "sue")
        await b.open("/portfolios/manage?name=default")
        await b.page("portfolios")
        await b.fill({"#f-suspend_trade": True})
        await b.click("form[action='/portfolios/settings'] button[type=submit]")
        said = ("Trading settings of default saved: trading suspended (new orders are refused; canceling still"
                " works).")
        await b.wait_text("#flash", said)
        focused = await b.script(FOCUSED_WHERE)
        assert (focused["id"], focused["seen"], focused["text"]) == ("flash", True, said), focused
        # (beside the settings: the form follows the message)
        assert await b.script("return document.getElementById('flash').compareDocumentPosition("
                              "document.querySelector(\"form[action='/portfolios/settings']\"))"
                              " & Node.DOCUMENT_POSITION_FOLLOWING") != 0
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_games_page_follows_its_visitor_joining_from_the_command_line(tmp_path, settings, clock):
    """A game's page left open kept its "Join" button after its visitor joined from the command line, and the
    navigation's "Portfolio shown" lacked the game's portfolio until a reload: the page's script now tells its
    live connection what it shows, which sends the visitor's part (and the navigation's menu) again once it
    changes."""
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        await register(b, "hal")
        await cli_ok(d, "register", "tom", "tom@example.com", "--password-stdin",
                     stdin=PASSWORD + "\n", user="tom")
        await cli_ok(d, "login", "tom", "--password-stdin", stdin=PASSWORD + "\n", user="tom")
        await cli_ok(d, "game", "create", "Open Cup", "--start", "2026-09-01", "--end", "2026-12-31",
                     "--cash", "10000", user="tom")
        await b.open("/games/Open%20Cup")
        await b.page("game")
        await b.wait_text("[data-section='game-mine']", "Join Open Cup")
        assert await b.script("return document.getElementById('f-shown-portfolio')") is None
        await b.live()
        await cli_ok(d, "login", "hal", "--password-stdin", stdin=PASSWORD + "\n", user="hal")
        await cli_ok(d, "game", "join", "Open Cup", user="hal")
        await b.wait_text("[data-section='game-mine']", "Your portfolio in this game: Open Cup")
        assert "Join" not in await b.text("[data-section='game-mine']")
        options = await portfolio_options(b)
        assert options == [["default", True], ["Open Cup", False]], options
        # What it shows is what a reload shows.
        await b.click("[data-section='game-mine'] form[action='/portfolios/use'] button")
        await b.page("dashboard")
        assert await b.attribute("#f-shown-portfolio option[selected]", "value") == "Open Cup"
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_a_dashboard_left_open_offers_the_game_portfolio_its_user_joined_elsewhere(tmp_path, settings, clock):
    """Joining a game in another tab (here: the command line) left an open dashboard's "Portfolio shown" menu
    without the game's portfolio until a reload; the menu now follows, as a reload makes it, and switches to it."""
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        await register(b, "hal")
        await cli_ok(d, "login", "hal", "--password-stdin", stdin=PASSWORD + "\n", user="hal")
        await cli_ok(d, "game", "create", "Open Cup", "--start", "2026-09-01", "--end", "2026-12-31",
                     "--cash", "10000", user="hal")
        await b.open("/")
        await b.page("dashboard")
        await b.live()
        assert await b.script("return document.getElementById('f-shown-portfolio')") is None  # one portfolio
        await cli_ok(d, "game", "join", "Open Cup", user="hal")
        await b.wait(lambda driver: driver.find_elements("css selector", "#f-shown-portfolio option[value='Open Cup']"),
                     "the game's portfolio in the menu")
        options = await portfolio_options(b)
        assert options == [["default", True], ["Open Cup", False]], options
        await show_portfolio(b, "Open Cup")
        assert await b.attribute("#f-shown-portfolio option[selected]", "value") == "Open Cup"
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()


@pytest_twisted.ensureDeferred
async def test_an_open_page_follows_its_portfolio_renamed_then_closed_from_the_command_line(tmp_path, settings, clock):
    """A dashboard left open on a portfolio kept its "Portfolio shown" menu naming the portfolio as it was when the
    page was made: renamed from the command line, the menu named the old name; closed, the page went on showing it.
    The menu now follows the rename (the page goes on showing it), and a close makes the page again: the default
    portfolio, saying why."""
    d = await website(tmp_path, settings, clock, fill_model="ideal")
    b = await Browser.start(d.url)
    try:
        await register(b, "kim")
        await cli_ok(d, "login", "kim", "--password-stdin", stdin=PASSWORD + "\n", user="kim")
        await cli_ok(d, "portfolio", "create", "Growth", user="kim")
        await b.open("/")
        await b.page("dashboard")
        await show_portfolio(b, "Growth")
        await b.live()
        assert await b.attribute("#f-shown-portfolio option[selected]", "value") == "Growth"

        await cli_ok(d, "portfolio", "rename", "Growth", "Long term", user="kim")
        await b.wait(lambda driver: driver.find_elements("css selector",
                                                         "#f-shown-portfolio option[value='Long term'][selected]"),
                     "the renamed portfolio shown in the menu")
        assert await b.script("return document.querySelector(\"#f-shown-portfolio option[value='Growth']\")") is None

        await cli_ok(d, "portfolio", "close", "Long term", user="kim")
        await b.wait_text("#flash", "Your portfolio Long term was closed elsewhere: showing your default portfolio.")
        await b.page("dashboard")
        assert await b.script("return document.getElementById('f-shown-portfolio')") is None  # (one portfolio left)
        assert csp_violations(await b.console()) == []
    finally:
        await b.close()
        await d.cluster.stopService()
