"""The website's guards and its answers over plain HTTP (treq) and WebSocket (autobahn), against a running
cluster; and the pure parts (formatting, escaping, valuing positions) without one.

What a browser does is in test_website_browser.py; here, what an attacker or a careless client does:
requests without the CSRF token or from another site, a WebSocket from another origin or without a
session, paths that are not files, and text that must come back escaped.
"""

import contextlib
import html as html_module
import hashlib
import json
import re
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import quote, urlencode

import pytest
import pytest_twisted
import treq
from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint

from papertrader import commands, times
from papertrader.client import cli
from papertrader.errors import GameRuleViolation, InvalidInput, PaperTraderError
from papertrader.money import round_money
from papertrader.master.db import Database
from papertrader.trading.valuation import new_day, revalue
from papertrader.worker.web import formatting as fmt
from papertrader.worker.web import live
from papertrader.worker.web import views
from papertrader.worker.web.markup import Markup, h
from papertrader.worker.web.security import CSP
from tests.conftest import bounded, start_cluster

PASSWORD = "correct horse battery"
#: What Debian's Chromium says it is.
CHROME_ON_LINUX = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0"
                   " Safari/537.36")


class Site:
    """A browser without JavaScript: cookies kept by name, the Origin a browser sends."""

    def __init__(self, url):
        self.url = url
        self.cookies = {}

    def _remember(self, response):
        for header in response.headers.getRawHeaders(b"set-cookie", []):
            name, _, rest = header.decode("latin-1").partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in rest:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def _headers(self, origin=True, extra=None):
        headers = {b"Cookie": [("; ".join(f"{k}={v}" for k, v in self.cookies.items())).encode()],
                   b"User-Agent": [CHROME_ON_LINUX.encode()]}
        if origin:
            headers[b"Origin"] = [self.url.encode()]
        headers.update(extra or {})
        return headers

    async def get(self, path, **kwargs):
        response = await treq.get(self.url + path, headers=self._headers(origin=False), allow_redirects=False,
                                  **kwargs)
        self._remember(response)
        body = await response.text("utf-8")
        return response, body

    async def post(self, path, fields, origin=True, headers=None):
        """POST a form; ``origin``: this site's (True), none (False), or another one (its URL)."""
        sent = self._headers(origin is True, headers)
        sent[b"Content-Type"] = [b"application/x-www-form-urlencoded"]
        if isinstance(origin, str):
            sent[b"Origin"] = [origin.encode()]
        response = await treq.post(self.url + path, data=urlencode(fields).encode(), allow_redirects=False,
                                   headers=sent)
        self._remember(response)
        return response, await response.text("utf-8")

    async def refused(self, path, fields, where):
        """POST a form the site refuses: POST/redirect/GET, as a success: the answer sends the browser (303) to
        ``where``, the form's page, which says why (the body of that GET: a Back or a reload sends no POST)."""
        response, _ = await self.post(path, fields)
        assert (response.code, header(response, b"location")) == (303, where)
        response, body = await self.get(where)
        assert response.code == 200
        return body

    @staticmethod
    def csrf(body):
        return re.search(r'name="csrf" value="([0-9a-f]{64})"', body).group(1)


def header(response, name):
    return (response.headers.getRawHeaders(name) or [b""])[0].decode("latin-1")


class Collecting(WebSocketClientProtocol):
    def onOpen(self):
        self.factory.opened.callback(self)

    def onMessage(self, payload, isBinary):
        self.factory.messages.put(json.loads(payload))

    def onClose(self, wasClean, code, reason):
        if not self.factory.opened.called:
            self.factory.opened.errback(ConnectionError(f"refused: {code} {reason}"))
        self.factory.closed.callback(code)


async def websocket(site, origin, cookies=True):
    port = int(site.url.rsplit(":", 1)[1])
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in site.cookies.items())} if cookies else {}
    factory = WebSocketClientFactory(f"ws://127.0.0.1:{port}/live", origin=origin, headers=headers)
    factory.protocol = Collecting
    factory.opened, factory.closed, factory.messages = defer.Deferred(), defer.Deferred(), defer.DeferredQueue()
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)
    return factory


async def next_message(factory, kind):
    while True:
        message = await bounded(factory.messages.get(), f"a {kind!r} message")
        if message["t"] == kind:
            return message


async def signed_in(url, username):
    """Another browser (a Site of its own) signed in as ``username``."""
    browser = Site(url)
    _, body = await browser.get("/signin")
    response, _ = await browser.post("/signin", dict(username=username, password=PASSWORD, csrf=browser.csrf(body)))
    assert response.code == 303, f"{username} could not sign in"
    return browser


async def next_section(factory, section):
    """The next "html" message that sends the page's ``data-section=section`` (a page also gets others)."""
    while True:
        message = await next_message(factory, "html")
        if section in message["v"]:
            return message


async def tia_and_ivo_with_a_game(site, worker):
    """Tia signed up in ``site`` has made the game Club Cup, which Ivo, signed up in a browser of his own, has not
    joined: (Tia's CSRF token, the game's form, Ivo's browser, Ivo's command caller)."""
    csrf, _ = await signed_up(site, worker, "tia")
    game = dict(name="Club Cup", start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf)
    assert (await site.post("/games", game))[0].code == 303
    ivo_site = Site(site.url)
    _, ivo = await signed_up(ivo_site, worker, "ivo")
    return csrf, game, ivo_site, ivo


async def use_portfolio(site, name):
    """Show and trade ``name`` in this browser, as its navigation's menu does (from the dashboard)."""
    _, body = await site.get("/")
    assert (await site.post("/portfolios/use", dict(name=name, csrf=site.csrf(body))))[0].code == 303


async def opened_page(site, page):
    """A live connection of the website (``websocket``) that has asked for ``page`` (its JSON: {"page": ...}) and
    been told it is ready."""
    connection = await websocket(site, site.url)
    await bounded(connection.opened, "the connection")
    connection.opened.result.sendMessage(json.dumps(page).encode())
    await next_message(connection, "ready")
    return connection


@pytest_twisted.ensureDeferred
async def test_guards_of_the_website(tmp_path, settings, clock):
    database = Database.default_url(str(tmp_path))
    async with website(tmp_path, settings, database, clock, fill_model="ideal") as (d, worker, site):
        # Every page says: scripts and styles from this site only, no framing, no sniffing, no caching.
        response, body = await site.get("/signin")
        assert response.code == 200
        assert "Forgot your password? This server sends no email: ask the person who runs it" in body
        assert header(response, b"content-security-policy") == CSP
        assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP and "style-src 'self'" in CSP
        assert (header(response, b"x-frame-options"), header(response, b"x-content-type-options"),
                header(response, b"cache-control")) == ("DENY", "nosniff", "no-store")
        assert "<script>" not in body and " style=" not in body and "<style" not in body
        pre = [c for c in response.headers.getRawHeaders(b"set-cookie") if c.startswith(b"__Host-pt_pre=")][0]
        assert all(flag in pre for flag in (b"HttpOnly", b"Secure", b"SameSite=strict", b"Path=/"))
        csrf = site.csrf(body)

        # A state-changing request without its CSRF token, or sent from another site, is refused.
        account = dict(username="mallory", email="mallory@example.com", password=PASSWORD)
        response, body = await site.post("/register", account)
        assert response.code == 403 and "reload the page" in body
        response, body = await site.post("/register", dict(account, csrf=csrf), origin="https://evil.example")
        assert response.code == 403 and "another site" in body
        response, body = await site.post("/register", dict(account, csrf="0" * 64))
        assert response.code == 403
        assert await d.master.db.query("SELECT id FROM accounts WHERE username = 'mallory'") == []
        # Another site's name made to point at this loopback port (DNS rebinding) gets nothing from it: not a
        # page, not a pre-session cookie, not the API; only loopback names are answered.
        port = site.url.rsplit(":", 1)[1]
        for path in ("/signin", "/v2/clock"):
            response = await treq.get(site.url + path, headers={b"Host": [f"evil.example:{port}".encode()]})
            assert response.code == 421 and response.headers.getRawHeaders(b"set-cookie") is None
            assert (await response.json())["code"] == 42110000
        response = await treq.post(site.url + "/register", data=urlencode(dict(account, csrf=csrf)).encode(),
                                   headers={b"Host": [f"evil.example:{port}".encode()],
                                            b"Origin": [f"http://evil.example:{port}".encode()],
                                            b"Content-Type": [b"application/x-www-form-urlencoded"]})
        assert response.code == 421
        assert await d.master.db.query("SELECT id FROM accounts WHERE username = 'mallory'") == []
        for host in (f"localhost:{port}", "localhost", f"127.0.0.1:{port}", f"[::1]:{port}", f"LOCALHOST.:{port}"):
            response = await treq.get(site.url + "/signin", headers={b"Host": [host.encode()]})
            assert response.code == 200, host
            await response.content()

        # The real thing: register, signed in at once (the dashboard welcomes the new user); signed out, sign in
        # again; the session arrives in a cookie and nowhere else.
        response, _ = await site.post("/register", dict(account, username="carol", email="carol@example.com",
                                                        csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/")
        _, body = await site.get("/")
        assert "Welcome, carol: your account starts with $100,000.00 of paper money." in body
        response, _ = await site.post("/signout", dict(csrf=site.csrf(body)))
        assert (response.code, header(response, b"location")) == (303, "/signin")
        assert "__Host-pt_session" not in site.cookies
        _, body = await site.get("/signin")
        csrf = site.csrf(body)
        body = await site.refused("/signin", dict(username="carol", password="wrong one!", csrf=csrf), "/signin")
        assert "Wrong username or password." in body and 'value="carol"' in body and "wrong one!" not in body
        _, body = await site.get("/signin")
        assert "Wrong username or password." not in body  # said once: a reload shows the form afresh
        response, body = await site.post("/signin", dict(username="carol", password=PASSWORD, csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/")
        session = [c for c in response.headers.getRawHeaders(b"set-cookie") if c.startswith(b"__Host-pt_session=")][0]
        assert all(flag in session for flag in (b"HttpOnly", b"Secure", b"SameSite=strict", b"Path=/"))
        token = site.cookies["__Host-pt_session"]
        assert len(token) >= 40 and token not in body
        response, body = await site.get("/")
        assert response.code == 200 and token not in body
        csrf = site.csrf(body)
        assert csrf == hashlib.sha256(b"papertrader csrf\0" + token.encode()).hexdigest()
        assert all(token not in href for href in re.findall(r'(?:href|action|src)="([^"]*)"', body))

        # Orders: refused without the token (none is made), placed with it.
        order = dict(side="buy", type="market", amount_by="shares", qty="3", time_in_force="day",
                     client_order_id="web-1")
        response, _ = await site.post("/asset/AAPL/order", order)
        assert response.code == 403
        response, _ = await site.post("/asset/AAPL/order", dict(order, csrf=csrf), origin=False,
                                      headers={b"Sec-Fetch-Site": [b"cross-site"]})
        assert response.code == 403
        # With its token but without an Origin: refused, in the same words, unless its Referer is a page of
        # this site (a browser that sends no Origin sends that: Referrer-Policy same-origin).
        for referer in (None, "https://evil.example/asset/AAPL", site.url + ".evil.example/asset/AAPL"):
            response, body = await site.post("/asset/AAPL/order", dict(order, csrf=csrf), origin=False,
                                             headers={b"Referer": [referer.encode()]} if referer else None)
            assert response.code == 403 and "This request came from another site and was refused." in body, referer
        orders = await worker.gateway.forward(commands.Orders, dict(token=token, limit=10), "127.0.0.1")
        assert orders["orders"] == []
        response, _ = await site.post("/asset/AAPL/order", dict(order, csrf=csrf), origin=False,
                                      headers={b"Referer": [(site.url + "/asset/AAPL").encode()]})
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        response, _ = await site.post("/asset/AAPL/order", dict(order, csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        response, _ = await site.post("/asset/AAPL/order", dict(order, csrf=csrf))  # sent twice: one order
        orders = await worker.gateway.forward(commands.Orders, dict(token=token, limit=10), "127.0.0.1")
        assert [o["client_order_id"] for o in orders["orders"]] == ["web-1"]
        await d.tick()

        # The equity curve counts the fill made at the market's current time, as the portfolio does; a month's
        # curve of a portfolio that first traded today starts then (not a month of days it did not trade), from
        # its starting cash: its change is the total P&L.
        response, body = await site.get("/?range=1M")
        points = json.loads(re.search(r'data-points="([^"]*)"', body).group(1).replace("&quot;", '"'))
        portfolio = await worker.gateway.forward(commands.Portfolio, dict(token=token), "127.0.0.1")
        assert Decimal(points[-1][1]) == portfolio["equity"]
        # The chart's data, for those who cannot see it: a table, newest first.
        data = body[body.find('<details class="chart-data"><summary>The equity as a table</summary>'):]
        newest = re.search(r'<tbody><tr><th scope="row" data-label="Time">([^<]+)</th>'
                           r'<td class="num" data-label="Equity">([^<]+)</td>', data)
        assert newest.group(2) == fmt.money(portfolio["equity"]), newest
        # Its oldest row, the curve's base, says what it is (the chart places it a day before the first point,
        # a date it is not of): the starting cash.
        oldest = re.findall(r'<tr><th scope="row" data-label="Time">([^<]+)</th>'
                            r'<td class="num" data-label="Equity">([^<]+)</td>', data.split("</details>")[0])[-1]
        assert oldest == ("Starting cash", fmt.money(settings.starting_cash)), oldest
        _, page = await site.get("/asset/AAPL?interval=1m")
        data = page[page.find('<summary>The candles as a table</summary>'):]
        last = worker.quotes.get("AAPL")
        assert f'data-label="Close">{fmt.price(last["price"])}</td>' in data.split("</tr>")[1]
        note = re.sub(r"<[^>]+>", "", re.search(r'<p class="chart-note">(.*?)</p>', body).group(1))
        first = (await worker.gateway.forward(commands.Activities, dict(token=token, direction="asc", page_size=1),
                                              "127.0.0.1"))["activities"][0]
        total = portfolio["equity"] - portfolio["starting_cash"] if "starting_cash" in portfolio else \
            portfolio["equity"] - settings.starting_cash
        assert note == f"Month: {fmt.money(total, signed=True)} since it started (its first trade:" \
                       f" {fmt.day(first['time'])})", note
        # All of it, while the market's time is still that of the first fill (a replay's between updates): the
        # same (it was refused: 'the start must come before the end').
        response, body = await site.get("/?range=ALL")
        note = re.sub(r"<[^>]+>", "", re.search(r'<p class="chart-note">(.*?)</p>', body).group(1))
        assert response.code == 200 and note.startswith(f"All: {fmt.money(total, signed=True)} since it started"), note

        # Text a user chose comes back escaped.  The new-key form sent twice (a reload of the page that showed
        # the secret) makes one key, and says so.
        response, body = await site.get("/account")
        form_id = re.search(r'name="form_id" value="([^"]+)"', body).group(1)
        key = dict(name="<script>alert(1)</script>", csrf=csrf, form_id=form_id)
        response, body = await site.post("/account/api-keys", key)
        assert response.code == 200 and 'id="new-key-secret"' in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body and "<script>alert" not in body
        response, _ = await site.post("/account/api-keys", key)
        assert (response.code, header(response, b"location")) == (303, "/account")
        response, body = await site.get("/account")
        made = (await worker.gateway.forward(commands.ApiKeys, dict(token=token), "127.0.0.1"))["keys"]
        assert len(made) == 1 and f"This form was sent already: it made the key {made[0]['key_id']}" in body
        assert 'id="new-key-secret"' not in body
        # Sent twice at once (a double click): one key, one secret shown, the other answer says so.
        response, body = await site.get("/account")
        key["form_id"] = re.search(r'name="form_id" value="([^"]+)"', body).group(1)
        answers = await defer.gatherResults([defer.ensureDeferred(site.post("/account/api-keys", key))
                                             for _ in range(2)])
        assert sorted(r.code for r, _ in answers) == [200, 303]
        assert len((await worker.gateway.forward(commands.ApiKeys, dict(token=token), "127.0.0.1"))["keys"]) == 2

        # The account page's forms: a wrong current password is said so; keys revoked; sessions ended.
        body = await site.refused("/account/password", dict(old_password="not it at all", csrf=csrf,
                                                            new_password="a brand new passphrase"), "/account")
        assert "The current password is wrong." in body and "not it at all" not in body
        assert "__Host-pt_flash" not in site.cookies  # (no password was kept in it either)
        # A new password leaves the API keys working, and says so (revoke those you did not make).
        for old, new in ((PASSWORD, "a brand new passphrase"), ("a brand new passphrase", PASSWORD)):
            response, _ = await site.post("/account/password", dict(old_password=old, new_password=new, csrf=csrf))
            assert (response.code, header(response, b"location")) == (303, "/account")
            _, body = await site.get("/account")
            assert flash_text(body) == ("Password changed. 0 other sessions ended. Your 2 API keys still work: revoke"
                                        " any you did not make under API keys on your account page.")
        status, out, _ = await d.cli("login", "carol", "--password-stdin", stdin=PASSWORD + "\n", user="carol")
        assert status == 0
        sessions = (await worker.gateway.forward(commands.Sessions, dict(token=token), "127.0.0.1"))["sessions"]
        other = next(s for s in sessions if not s["current"])
        # Told apart by what signed in: this browser, the command line.
        assert {s["device"] for s in sessions} == {"Chrome on Linux", cli.DEVICE}
        _, body = await site.get("/account")
        assert '<td data-label="Device">Chrome on Linux</td>' in body and f'>{cli.DEVICE}</td>' in body
        assert f'aria-label="End the session of {cli.DEVICE} signed in {fmt.when(other["created"])} from' \
               ' 127.0.0.1"' in body
        response, _ = await site.post(f"/account/sessions/{other['id']}/end", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/account")
        status, out, _ = await d.cli("whoami", user="carol")
        assert json.loads(out)["error"] == "not_logged_in"  # the command line's session was that one
        keys = (await worker.gateway.forward(commands.ApiKeys, dict(token=token), "127.0.0.1"))["keys"]
        for made in keys:
            response, _ = await site.post(f"/account/api-keys/{made['key_id']}/revoke", dict(csrf=csrf))
            assert response.code == 303
        assert (await worker.gateway.forward(commands.ApiKeys, dict(token=token), "127.0.0.1"))["keys"] == []

        # The live connection: from another origin it is refused; without a session it says so.
        with pytest.raises(ConnectionError):
            refused = await websocket(site, "https://evil.example")
            await bounded(refused.opened, "the refusal")
        anonymous = await websocket(site, site.url, cookies=False)
        await bounded(anonymous.opened, "the connection")
        assert (await next_message(anonymous, "signed_out"))["t"] == "signed_out"
        assert await bounded(anonymous.closed, "the close") == 4001
        live = await websocket(site, site.url)
        await bounded(live.opened, "the connection")
        live_protocol = live.opened.result
        live_protocol.sendMessage(json.dumps({"page": "asset", "symbol": "AAPL", "interval": "1m"}).encode())
        await next_message(live, "ready")
        assert len(worker.clients) == 1  # the page counts in the worker's load
        await d.tick()
        update = await next_message(live, "set")
        assert update["v"]["quote.AAPL.price"][0] == fmt.price(worker.quotes.get("AAPL")["price"])
        candle = await next_message(live, "candle")
        assert candle["c"][4] == fmt.number_text(worker.quotes.get("AAPL")["price"])
        # The Trade page's list of prices (its assets and watchlists) is live too: the symbols its body names.
        _, page = await site.get("/assets")
        listed = re.search(r'data-symbols="([^"]*)"', page).group(1).split()
        assert {"AAPL", "MSFT", "TSLA"} <= set(listed)
        trade = await websocket(site, site.url)
        await bounded(trade.opened, "the connection")
        trade_protocol = trade.opened.result
        trade_protocol.sendMessage(json.dumps({"page": "assets", "symbols": listed}).encode())
        await next_message(trade, "ready")
        await d.tick()
        update = await next_message(trade, "set")
        for symbol in ("AAPL", "MSFT", "TSLA"):
            assert update["v"][f"quote.{symbol}.price"][0] == fmt.price(worker.quotes.get(symbol)["price"])
            assert f'data-live="quote.{symbol}.change"' in page
        trade_protocol.sendClose()
        # Signing out ends it.
        response, _ = await site.post("/signout", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/signin")
        await next_message(live, "signed_out")
        assert await bounded(live.closed, "the close") == 4001
        assert "__Host-pt_session" not in site.cookies
        response, _ = await site.get("/orders?status=closed")
        assert (response.code, header(response, b"location")) == (303, "/signin?next=%2Forders%3Fstatus%3Dclosed")
        _, body = await site.get("/signin?next=%2Forders%3Fstatus%3Dclosed")
        assert "You are signed out." in body and "Your session ended" not in body  # signed out here: no more
        # Signing in leads to the page asked for (a wrong password first: the form keeps where it leads), never
        # to another site.
        assert '<input type="hidden" name="next" value="/orders?status=closed">' in body
        body = await site.refused("/signin", dict(username="carol", password="wrong one!", csrf=site.csrf(body),
                                                  next="/orders?status=closed"), "/signin")
        assert '<input type="hidden" name="next" value="/orders?status=closed">' in body
        response, _ = await site.post("/signin", dict(username="carol", password=PASSWORD, csrf=site.csrf(body),
                                                      next="/orders?status=closed"))
        assert (response.code, header(response, b"location")) == (303, "/orders?status=closed")
        for elsewhere in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            await site.post("/signout", dict(csrf=site.csrf((await site.get("/account"))[1])))
            _, body = await site.get("/signin?" + urlencode({"next": elsewhere}))
            assert 'name="password"' in body and 'name="next"' not in body, elsewhere
            response, _ = await site.post("/signin", dict(username="carol", password=PASSWORD, csrf=site.csrf(body),
                                                          next=elsewhere))
            assert (response.code, header(response, b"location")) == (303, "/"), elsewhere
        token = site.cookies["__Host-pt_session"]
        await site.post("/signout", dict(csrf=site.csrf((await site.get("/account"))[1])))
        # A page whose session ended elsewhere is sent to the sign-in page, which says so in plain words (the
        # same for every reason), once; a visitor who was never signed in is not told anything.
        site.cookies["__Host-pt_session"] = token
        response, _ = await site.get("/orders")
        assert (response.code, header(response, b"location")) == (303, "/signin?next=%2Forders")
        assert "__Host-pt_session" not in site.cookies
        _, body = await site.get("/signin")
        assert views.SESSION_ENDED in body and "Your session ended: you were signed out" in body
        _, body = await site.get("/signin")
        assert "Your session ended" not in body
        _, body = await site.get("/signin?session=ended")  # where the page's script sends it (live: signed out)
        assert views.SESSION_ENDED in body
        _, body = await Site(site.url).get("/signin")
        assert "Your session ended" not in body
        # "Sign out everywhere" says so in the tab that asked, even if another tab of the browser, sent to the
        # sign-in page by its ended session, got there first.
        _, body = await site.get("/signin")
        await site.post("/signin", dict(username="carol", password=PASSWORD, csrf=site.csrf(body)))
        _, body = await site.get("/account")
        response, _ = await site.post("/account/signout-everywhere", dict(csrf=site.csrf(body)))
        assert (response.code, header(response, b"location")) == (303, "/signin")
        _, other_tab = await site.get("/signin?session=ended")
        assert views.SESSION_ENDED in other_tab and "Signed out everywhere" not in other_tab
        _, body = await site.get("/signin")
        assert "Signed out everywhere: 1 session ended." in body

        # Files: only those shipped; the chart library with its licence; compressed when asked.
        response, body = await site.get("/static/app.js")
        assert response.code == 200 and header(response, b"content-type").startswith("text/javascript")
        from twisted.web.client import Agent
        from twisted.web.http_headers import Headers

        library = "/static/vendor/lightweight-charts.standalone.production.js"
        response = await Agent(reactor).request(b"GET", (site.url + library).encode(),
                                                Headers({b"Accept-Encoding": [b"gzip"]}))
        zipped = await treq.content(response)
        assert header(response, b"content-encoding") == "gzip" and len(zipped) < 100_000
        response, body = await site.get("/static/vendor/LICENSE")
        assert response.code == 200 and "Apache License" in body
        for path in ("/static/", "/static/vendor", "/static/../setup.cfg", "/static/%2e%2e/site.py"):
            response, _ = await site.get(path)
            assert response.code == 404, path
        response, body = await site.get("/no/such/page")
        assert response.code == 404 and header(response, b"content-security-policy") == CSP
        # The REST API keeps its paths (and its JSON).
        response, body = await site.get("/v2/account")
        assert response.code == 401 and json.loads(body)["code"] == 40110000
        # Alpaca's data APIs not served here (news, crypto, options, ticks) answer the API's JSON 404, not a page,
        # saying what is not served (alpaca-py's get_stock_trades said "endpoint not found": a wrong URL?).
        for path, what in (("/v1beta1/news", "news"), ("/v1beta3/crypto/us/latest/bars", "crypto"),
                           ("/v1beta1/options/bars", "options"), ("/v2/stocks/trades?symbols=AAPL", "historical trades"),
                           ("/v2/stocks/AAPL/quotes", "historical quotes")):
            response, body = await site.get(path)
            assert response.code == 404 and json.loads(body)["code"] == 40410000, path
            assert json.loads(body)["message"].startswith(f"endpoint not served by PaperTrader: {what}"), body
        response, body = await site.get("/v2/no-such-thing")
        assert response.code == 404 and json.loads(body) == {"code": 40410000, "message": "endpoint not found"}


def test_money_is_shown_with_its_currency_and_its_sign():
    assert fmt.money(Decimal("1234.5")) == "$1,234.50"
    assert fmt.money(Decimal("-0.015")) == "-$0.02"  # half to even: -0.015 -> -0.02
    assert fmt.money(Decimal("3.10"), signed=True) == "+$3.10"
    assert fmt.money(Decimal("0"), signed=True) == "$0.00"
    assert fmt.price(Decimal("0.12345")) == "$0.1234" and fmt.price(Decimal("187.2")) == "$187.20"
    # Prices as brokers show them: cents from $1 up (half to even), up to 4 decimals below.
    assert [fmt.price(Decimal(p)) for p in ("187.2551", "1187.255", "0.5", "0.99996", "-3.4567")] == [
        "$187.26", "$1,187.26", "$0.50", "$1.00", "-$3.46"]
    assert fmt.quantity(Decimal("1000.500000")) == "1,000.5"
    assert fmt.percent(Decimal("-1.234")) == "-1.23%" and fmt.percent(Decimal("2")) == "+2.00%"
    assert fmt.number_text(Decimal("187.2500")) == "187.25"


def test_markup_escapes_everything_but_markup():
    assert h("td", {"title": '"><b>'}, "<i>&") == '<td title="&quot;&gt;&lt;b&gt;">&lt;i&gt;&amp;</td>'
    assert h("p", h("b", "x")) == "<p><b>x</b></p>" and isinstance(h("br"), Markup)
    assert h("input", {"required": True, "hidden": False, "value": None}) == "<input required>"


def test_positions_are_valued_at_new_prices_as_the_master_values_them():
    T0 = datetime(2024, 3, 4, 14, 30, tzinfo=timezone.utc)
    # AAPL held since yesterday (3.333333 x 299.00 = 996.67 at the start of the day); MSFT bought today for 10.00.
    portfolio = dict(cash=Decimal("1000.00"), equity=Decimal("2000.00"), buying_power=Decimal("900.00"),
                     realized_pl=Decimal("5.00"), unrealized_pl=Decimal("0.00"), change_today=Decimal("0.00"),
                     last_equity=Decimal("2006.67"), day_start=T0,
                     positions=[dict(symbol="AAPL", quantity=Decimal("3.333333"), cost=Decimal("1000.00"),
                                     average_price=Decimal("300.00"), market_value=Decimal("1000.00"),
                                     unrealized_pl=Decimal("0.00"), previous_close=Decimal("299.00"),
                                     day_base=Decimal("996.67"), change_today=Decimal("3.33")),
                                dict(symbol="MSFT", quantity=Decimal("1"), cost=Decimal("10.00"),
                                     average_price=Decimal("10.00"), market_value=Decimal("10.00"),
                                     unrealized_pl=Decimal("0.00"), day_base=Decimal("10.00"),
                                     change_today=Decimal("0.00"))])
    quotes = {"AAPL": {"price": Decimal("310.0050"), "session_open": T0}}
    assert not new_day(portfolio, quotes)
    valued = revalue(portfolio, quotes)
    aapl, msft = valued["positions"]
    assert aapl["market_value"] == Decimal("1033.35")  # 3.333333 x 310.005 = 1033.348..., to the cent
    assert aapl["unrealized_pl"] == Decimal("33.35") and aapl["unrealized_percent"] == Decimal("3.34")
    assert aapl["change_today"] == Decimal("36.68")  # 1033.35 - 996.67
    assert msft == portfolio["positions"][1]  # no newer price: as it was
    assert valued["equity"] == Decimal("1000.00") + Decimal("1033.35") + Decimal("10.00")
    assert valued["change_today"] == valued["equity"] - Decimal("2006.67") == Decimal("36.68")
    # A price of a later session begins a new day: the page asks the master for the day's figures.
    assert new_day(portfolio, {"AAPL": {"price": Decimal("311"), "session_open": T0 + timedelta(days=1)}})
    assert (valued["cash"], valued["buying_power"], valued["realized_pl"]) == (Decimal("1000.00"), Decimal("900.00"),
                                                                             Decimal("5.00"))
    assert portfolio["positions"][0]["market_value"] == Decimal("1000.00")  # the answer is not changed


def test_provider_sign_in_returns_only_to_loopback_or_listed_websites():
    from papertrader.config import ConfigError, load_settings
    from papertrader.errors import ProviderLoginFailed
    from papertrader.master.oidc import _check_redirect

    site = "https://trade.example.com:2060/auth/callback"
    settings = load_settings(None, {"oidc_redirect_uris": f"{site}, https://eu.example.com/auth/callback"})
    assert settings.oidc_redirect_uris == (site, "https://eu.example.com/auth/callback")
    _check_redirect(site, settings.oidc_redirect_uris)
    _check_redirect("http://127.0.0.1:2060/auth/callback")  # the quick start's website, and the CLI's listener
    for refused in (site, "https://evil.example/auth/callback", "http://trade.example.com:2060/auth/callback"):
        with pytest.raises(ProviderLoginFailed):
            _check_redirect(refused, () if refused == site else settings.oidc_redirect_uris)
    for bad in ("http://trade.example.com/auth/callback", "https://trade.example.com/elsewhere",
                "https://trade.example.com/auth/callback?next=x"):
        with pytest.raises(ConfigError):
            load_settings(None, {"oidc_redirect_uris": bad})


def test_the_ticket_previews_what_the_master_will_reserve():
    from papertrader.config import Settings
    from papertrader.worker.web import preview

    rules = preview.rules(Settings(commission_model="per_order", commission=Decimal("1.00")))
    quote = {"price": Decimal("100.00")}
    portfolio = dict(buying_power=Decimal("2000.00"), positions=[dict(symbol="AAPL", quantity=Decimal("3"))])
    form = dict(side="buy", type="market", amount_by="shares", qty="10", time_in_force="day")
    shown = preview.preview(form, "AAPL", quote, portfolio, rules)
    # 10 x 100 x 1.05 (the market buffer) + 1.00 commission, as pretrade.reservation counts it
    assert (shown["cost"], shown["after"], shown["ok"]) == ("$1,051.00", "$949.00", True)
    shown = preview.preview(dict(form, type="limit", limit_price="250.00"), "AAPL", quote, portfolio, rules)
    assert (shown["cost"], shown["after"], shown["ok"]) == ("$2,501.00", "-$501.00", False)
    assert shown["note"] == "Not enough buying power for this order."
    shown = preview.preview(dict(form, type="stop", time_in_force="ioc", stop_price="90"), "AAPL", quote,
                            portfolio, rules)
    assert shown["note"].startswith("A stop order takes time in force day, gtc")
    shown = preview.preview(dict(form, side="sell", qty="5"), "AAPL", quote, portfolio, rules)
    assert not shown["ok"] and "short selling is not allowed in a cash portfolio" in shown["note"]
    # A margin portfolio: a short sale keeps its value of buying power (at the last price plus the buffer, as
    # pretrade.short_reservation, with the commission); a sale of more than is held may not turn the position short; a cover needs
    # no buying power; long only refuses a short sale.
    on_margin = dict(portfolio, kind="margin", positions=[dict(symbol="AAPL", quantity=Decimal("-4"))])
    shown = preview.preview(dict(form, side="sell", qty="5"), "MSFT", quote, on_margin, rules)
    assert (shown["ok"], shown["cost"], shown["after"]) == (True, "$526.00", "$1,474.00")  # and its commission
    assert shown["note"] == ("A short sale: you sell MSFT you borrow. Until it fills it keeps $526.00 of your margin"
                             " buying power (5 shares at $100.00 plus 5% for price moves, and its commission); once"
                             " filled, the value of the shares short counts against it until you buy them back."), \
        shown["note"]  # (it said the sale kept "its value", $500.00, beside $526.00)
    limit = dict(form, side="sell", qty="5", type="limit", limit_price="101.00")
    shown = preview.preview(limit, "MSFT", quote, on_margin, rules)
    assert shown["cost"] == "$506.00" and "(5 shares at $101.00, and its commission)" in shown["note"], shown
    shown = preview.preview(dict(form, side="sell", qty="2.5"), "MSFT", quote, on_margin, rules)
    assert not shown["ok"] and "A short sale is a whole number of shares" in shown["note"]
    long_only = dict(on_margin, no_shorting=True)
    shown = preview.preview(dict(form, side="sell", qty="5"), "MSFT", quote, long_only, rules)
    assert not shown["ok"] and "Long only" in shown["note"]
    shown = preview.preview(dict(form, qty="3"), "AAPL", quote, on_margin, rules)
    assert shown["ok"] and "a cover needs no buying power" in shown["note"]
    assert not preview.preview(dict(form, qty="5"), "AAPL", quote, on_margin, rules)["ok"]
    long = dict(on_margin, positions=[dict(symbol="AAPL", quantity=Decimal("3"))])
    shown = preview.preview(dict(form, side="sell", qty="5"), "AAPL", quote, long, rules)
    assert not shown["ok"] and "may not turn a long position short" in shown["note"]
    # A limit on the far side of the last price ($100) fills at once, at about that price: said, and a sale's
    # proceeds counted at that price, not its lower limit.
    shown = preview.preview(dict(form, type="limit", qty="2", limit_price="120"), "AAPL", quote, portfolio, rules)
    assert shown["ok"] and shown["note"].endswith("Your limit is at or above the last price, $100.00: it will likely"
                                                  " fill at once, at about that price (a limit buy pays its limit or"
                                                  " less).")
    # A trailing stop sale brings what its starting stop does (the last price less the trail), if the price falls
    # from here: not the last price.
    for trail in (dict(trail_by="price", trail="2.50"), dict(trail_by="percent", trail="5")):
        shown = preview.preview(dict(form, side="sell", type="trailing_stop", qty="2", **trail), "AAPL", quote,
                                portfolio, rules)
        assert shown["ok"] and shown["cost"] == ("$195.00" if trail["trail_by"] == "price" else "$190.00")
    shown = preview.preview(dict(form, side="sell", type="limit", qty="2", limit_price="80"), "AAPL", quote,
                            portfolio, rules)
    assert shown["ok"] and shown["cost"] == "$200.00" and shown["note"].endswith(
        "Your limit is at or below the last price, $100.00: it will likely fill at once, at about that price (a"
        " limit sale gets its limit or more).")
    shown = preview.preview(dict(form, side="sell", type="limit", qty="2", limit_price="130"), "AAPL", quote,
                            portfolio, rules)
    assert shown["cost"] == "$260.00" and "at once" not in shown["note"]
    # Fields the order type does not use are ignored (the page hid them).
    assert preview.order_arguments(dict(form, limit_price="5", stop_price="6", trail="1")) == dict(
        side="buy", type="market", time_in_force="day", quantity="10")
    assert preview.preview(dict(form, qty=""), "AAPL", quote, portfolio, rules)["note"] == ""
    # A game's portfolio pays the game's commission: $5 here, where the deployment's is $1.
    shown = preview.preview(form, "AAPL", quote, dict(portfolio, commission_model="per_order:5.00"), rules)
    assert (shown["cost"], shown["after"]) == ("$1,055.00", "$945.00")
    # Numbers as people type them: a dollar sign, thousands separators.
    assert preview.preview(dict(form, qty="1,000", type="limit", limit_price="$1.50"), "AAPL", quote, portfolio,
                           rules)["cost"] == "$1,501.00"
    assert [fmt.typed_number(t) for t in ("$5,000", "5,000.50", " $ 100 ", "1,00", "5.000,50", "-5", "1e3")] == [
        "5000", "5000.50", "100", "1,00", "5.000,50", "-5", "1e3"]  # (the last four: refused, as typed, after)
    # But '$100' in the shares box is dollars meant: refused (it bought 100 shares), saying to choose Dollars.
    shown = preview.preview(dict(form, qty="$100"), "AAPL", quote, portfolio, rules)
    assert not shown["ok"] and shown["note"] == ("The amount is in shares, not dollars: to buy or sell a dollar"
                                                 " amount, choose Dollars.")
    with pytest.raises(InvalidInput, match="in shares, not dollars"):
        preview.order_arguments(dict(form, qty=" $ 100"))
    # An amount in dollars out of bounds is said in money, not as the core's plain numbers.
    for amount in ("0.50", "1000000000.01", "5.001"):
        shown = preview.preview(dict(form, amount_by="dollars", notional=amount), "AAPL", quote, portfolio, rules)
        assert shown["note"] == "The amount must be from $1.00 to $1,000,000,000.00, in dollars and cents.", amount
    shown = preview.preview(dict(form, amount_by="dollars", notional="1.00"), "AAPL", quote, portfolio, rules)
    assert shown["ok"] and shown["note"] == "A notional order reserves its amount."
    # Exits: a buy with one is an OTO order, with both a bracket order; on a sale of shares held, an OCO order (a
    # limit sell, whose limit is the take-profit); hidden (by dollars, a trailing stop), ignored.
    exits = dict(form, take_profit="120", stop_loss="90")
    assert preview.order_arguments(dict(exits, stop_loss=""))["order_class"] == "oto"
    assert preview.order_arguments(exits) == dict(side="buy", type="market", time_in_force="day", quantity="10",
                                                  order_class="bracket", take_profit="120", stop_loss="90")
    assert "order_class" not in preview.order_arguments(dict(exits, amount_by="dollars", notional="5"))
    assert "order_class" not in preview.order_arguments(dict(exits, type="trailing_stop", trail="1"))
    sale = dict(exits, side="sell", qty="3", type="limit", take_profit="", limit_price="120")
    assert preview.order_arguments(sale, Decimal("3"))["order_class"] == "oco"
    shown = preview.preview(sale, "AAPL", quote, portfolio, rules)
    assert shown["ok"] and shown["note"] == ("An OCO order: a take-profit at $120.00 and a stop-loss at $90.00;"
                                             " whichever fills first cancels the other. Its exits are day orders"
                                             " too: they expire at the close unfilled (choose GTC to keep them)."
                                             " You hold 3 AAPL."), shown
    shown = preview.preview(dict(sale, time_in_force="gtc"), "AAPL", quote, portfolio, rules)
    assert shown["note"] == ("An OCO order: a take-profit at $120.00 and a stop-loss at $90.00; whichever fills"
                             " first cancels the other. You hold 3 AAPL.")
    assert (shown["cost"], shown["label"]) == ("$360.00", "Estimated proceeds")  # at least its limit
    shown = preview.preview(dict(sale, type="market"), "AAPL", quote, portfolio, rules)
    assert not shown["ok"] and shown["note"].startswith("Exits on a sale of shares you hold make an OCO order")
    shown = preview.preview(dict(exits, stop_loss="100.00"), "AAPL", quote, portfolio, rules)
    assert shown["note"] == "The stop-loss ($100.00) must be at least a cent below the last price ($100.00)."
    shown = preview.preview(dict(exits, qty="1", stop_loss=""), "AAPL", quote, portfolio, rules)
    assert shown["ok"] and shown["note"].startswith("An OTO order: a take-profit at $120.00, held until this order"
                                                    " fills, then open to sell what it bought. Its exit is a day"
                                                    " order too: it expires at the close unfilled"), shown
    # A stop the price has already reached would trigger at once: the master refuses it (a side mixed up), and
    # the ticket says so before it is sent (a sell stop at $120 with the price at $100).
    stop_sale = dict(form, side="sell", qty="3", type="stop", stop_price="120")
    shown = preview.preview(stop_sale, "AAPL", quote, portfolio, rules)
    assert not shown["ok"] and shown["note"].startswith("A sell stop's stop price") and "limit order" in shown["note"]
    assert "must be below the last price" in shown["note"], shown
    shown = preview.preview(dict(stop_sale, stop_price="95"), "AAPL", quote, portfolio, rules)
    assert (shown["cost"], shown["note"]) == ("$285.00", "You hold 3 AAPL.")  # sells once the price falls to $95
    # Shares an open sale already keeps are not free to sell again (the master's qty_available).
    kept = dict(portfolio, positions=[dict(symbol="AAPL", quantity=Decimal("3"), available=Decimal("1"))])
    shown = preview.preview(dict(stop_sale, stop_price="95", qty="2"), "AAPL", quote, kept, rules)
    assert not shown["ok"] and shown["note"] == ("You hold 3 AAPL, 2 of them kept by your open orders: 1 free to sell"
                                                 " (cancel or change those orders first).")
    shown = preview.preview(dict(stop_sale, stop_price="95", qty="1"), "AAPL", quote, kept, rules)
    assert shown["ok"] and shown["note"] == "You hold 3 AAPL, 2 of them kept by your open orders."
    shown = preview.preview(dict(form, type="stop", stop_price="90", time_in_force="gtc"), "AAPL", quote, portfolio,
                            rules)
    assert not shown["ok"] and shown["note"].startswith("A buy stop's stop price"), shown
    # A buy stop on the right side is reserved at its stop (plus the buffer), and says so.
    shown = preview.preview(dict(form, qty="1", type="stop", stop_price="110", time_in_force="gtc"), "AAPL", quote,
                            portfolio, rules)
    assert shown["ok"] and shown["note"].startswith("Reserved at its stop price $110.00 plus 5% for price moves"), \
        shown
    # Amounts as people write them are read, and the ticket's fields let them be sent (no pattern stops them).
    assert preview.preview(dict(form, qty="1,000"), "AAPL", quote, portfolio, rules)["cost"] == \
        preview.preview(dict(form, qty="1000"), "AAPL", quote, portfolio, rules)["cost"]


@contextlib.asynccontextmanager
async def website(tmp_path, settings, database_url, clock, **changes):
    """A cluster of one worker serving the website on a free port (``changes`` to its settings): (the deployment,
    its worker, a Site speaking to it); stopped afterwards."""
    d = await start_cluster(tmp_path, replace(settings, workers=1, **changes), database_url, clock, http_port=0)
    worker = d.cluster.workers[0]
    try:
        yield d, worker, Site(f"http://127.0.0.1:{worker.http.port.getHost().port}")
    finally:
        await d.cluster.stopService()


async def person(worker, name):
    """``name`` registered and logged in through ``worker``'s gateway (no browser): a function passing a command on
    with their token."""
    await worker.gateway.forward(commands.Register, dict(username=name, email=f"{name}@example.com",
                                                         password=PASSWORD), "127.0.0.1")
    token = (await worker.gateway.forward(commands.Login, dict(username=name, password=PASSWORD, remember=False),
                                          "127.0.0.1"))["token"]
    return lambda command, **a: worker.gateway.forward(command, dict(a, token=token), "127.0.0.1")


async def signed_up(site, worker, username):
    """``username`` registered and signed in on ``site``: (its pages' CSRF token, a function passing a command on
    to the master with the session, as the worker's gateway does)."""
    _, body = await site.get("/signin")
    csrf = site.csrf(body)
    account = dict(username=username, email=f"{username}@example.com", password=PASSWORD, csrf=csrf)
    assert (await site.post("/register", account))[0].code == 303  # and signed in
    token = site.cookies["__Host-pt_session"]
    _, body = await site.get("/")

    def forward(command, **arguments):
        return worker.gateway.forward(command, dict(arguments, token=token), "127.0.0.1")

    return site.csrf(body), forward


def flash_text(body):
    """The words of the page's flash message (None: none)."""
    found = re.search(r'<div class="flash [a-z]+"[^>]*id="flash"[^>]*>(.*?)</div>', body, re.S)
    return re.sub(r"<[^>]+>", "", found.group(1)).strip() if found else None


@pytest_twisted.ensureDeferred
async def test_a_position_is_closed_from_its_page_and_every_one_from_the_dashboard(tmp_path, settings, clock,
                                                                                  database_url):
    """Closing a position took a sell ticket with its quantity typed in; a broker's site closes one (or all, its
    open orders canceled first) in one step, asking first."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, call = await signed_up(site, worker, "carol")
        _, body = await site.get("/")  # (a new account: its flat line is its starting cash, and says so)
        assert "No trades yet: your equity is the cash you started with" in body
        for symbol, quantity in (("AAPL", "3"), ("MSFT", "2"), ("TSLA", "1")):
            await call(commands.PlaceOrder, client_order_id=f"buy-{symbol}", side="buy", symbol=symbol,
                       quantity=quantity)
        await d.tick()

        _, body = await site.get("/asset/AAPL")
        assert 'action="/asset/AAPL/close"' in body and 'data-confirm="Sell all 3 AAPL at the market?' in body
        response, _ = await site.post("/asset/AAPL/close", {})
        assert response.code == 403  # (without its CSRF token: nothing sold)
        response, _ = await site.post("/asset/AAPL/close", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/asset/AAPL")
        assert flash_text(body) == "Sell 3 AAPL in portfolio default (at the market, Day): open.", flash_text(body)
        await d.tick()
        portfolio = await call(commands.Portfolio)
        assert [p["symbol"] for p in portfolio["positions"]] == ["MSFT", "TSLA"]
        _, body = await site.get("/asset/AAPL")
        assert "/asset/AAPL/close" not in body and "You hold no AAPL." in body
        response, _ = await site.post("/asset/AAPL/close", dict(csrf=csrf))  # (sent again: nothing to close)
        _, body = await site.get("/asset/AAPL")
        assert flash_text(body) == "You hold no AAPL: nothing to close."

        # A stop-loss holds the TSLA share: closing cancels it first (a buy order of TSLA stays), and says so.
        await call(commands.PlaceOrder, client_order_id="tsla-stop", side="sell", symbol="TSLA", quantity="1",
                   type="stop", stop_price="1.00", time_in_force="gtc")
        await call(commands.PlaceOrder, client_order_id="tsla-low", side="buy", symbol="TSLA", quantity="1",
                   type="limit", limit_price="1.00", time_in_force="gtc")
        _, body = await site.get("/asset/TSLA")
        assert 'data-confirm="Sell all 1 TSLA at the market? Your open TSLA sell orders, if any, are' \
               ' canceled first."' in body
        response, _ = await site.post("/asset/TSLA/close", dict(csrf=csrf))
        _, body = await site.get("/asset/TSLA")
        assert flash_text(body) == "1 open TSLA order canceled, then sell 1 TSLA in portfolio default (at the market," \
                                   " Day): open.", flash_text(body)
        still = (await call(commands.Orders, status="open", symbols=["TSLA"], limit=10))["orders"]
        ids = {o["client_order_id"] for o in still}  # the buy stays; the stop went; the close's market order
        assert "tsla-low" in ids and "tsla-stop" not in ids and len(ids) == 2, ids
        await d.tick()
        [low] = [o for o in still if o["client_order_id"] == "tsla-low"]
        await call(commands.CancelOrder, order_uuid=low["uuid"])
        # A close that would be refused (trading suspended) cancels nothing: the stop-loss still protects MSFT.
        stop = await call(commands.PlaceOrder, client_order_id="msft-stop", side="sell", symbol="MSFT",
                          quantity="2", type="stop", stop_price="1.00", time_in_force="gtc")
        await call(commands.ConfigurePortfolio, suspend_trade=True)
        response, _ = await site.post("/asset/MSFT/close", dict(csrf=csrf))
        _, body = await site.get("/asset/MSFT")
        assert "suspended" in flash_text(body), flash_text(body)
        assert (await call(commands.GetOrder, order_uuid=stop["uuid"]))["status"] == "new"
        await call(commands.ConfigurePortfolio, suspend_trade=False)
        await call(commands.CancelOrder, order_uuid=stop["uuid"])
        await call(commands.PlaceOrder, client_order_id="buy-TSLA-2", side="buy", symbol="TSLA", quantity="1")
        await d.tick()

        # Everything: an open order is canceled first (its shares would be held), then each position sold.
        await call(commands.PlaceOrder, client_order_id="sell-high", side="sell", symbol="MSFT", quantity="2",
                   type="limit", limit_price="100000", time_in_force="gtc")
        _, body = await site.get("/")
        assert 'action="/positions/close-all"' in body
        # (refused while the portfolio's trading is suspended: said in the page's message, nothing done)
        await call(commands.ConfigurePortfolio, suspend_trade=True)
        response, _ = await site.post("/positions/close-all", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/")
        _, body = await site.get("/")
        assert "suspended" in flash_text(body), flash_text(body)
        await call(commands.ConfigurePortfolio, suspend_trade=False)
        response, _ = await site.post("/positions/close-all", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/")
        _, body = await site.get("/")
        assert flash_text(body).startswith("Closing 2 positions: 1 open order canceled and market orders placed"
                                           " (Sell 2 MSFT; Sell 1 TSLA)."), flash_text(body)
        await d.tick()
        portfolio = await call(commands.Portfolio)
        assert portfolio["positions"] == [] and (await call(commands.Orders, status="open", limit=10))["orders"] == []
        _, body = await site.get("/")
        assert 'action="/positions/close-all"' not in body


@pytest_twisted.ensureDeferred
async def test_the_website_renames_closes_and_changes_the_default_portfolio(tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "erin")

        async def names():
            return {p["name"]: p["default"] for p in (await forward(commands.Portfolios))["portfolios"]}

        [main] = await names()
        assert (await site.post("/portfolios", dict(name="Growth", cash="5000", csrf=csrf)))[0].code == 303
        assert (await site.post("/portfolios/use", dict(name="Growth", csrf=csrf)))[0].code == 303
        await forward(commands.PlaceOrder, portfolio="Growth", symbol="AAPL", side="buy", type="limit",
                      limit_price="1.00", time_in_force="gtc", quantity="1", client_order_id="growth-open")

        # Each portfolio has a page to manage it, linked from the list.
        response, body = await site.get("/portfolios")
        assert 'href="/portfolios/manage?name=Growth"' in body
        response, body = await site.get("/portfolios/manage?name=growth")
        assert response.code == 200 and 'action="/portfolios/rename"' in body and "Make it the default" in body
        assert 'action="/portfolios/close"' in body
        assert (await site.get("/portfolios/manage?name=Nothing"))[0].code == 404

        # Rename: not without the token; a name taken is refused on the page; the pages go on showing it.
        response, _ = await site.post("/portfolios/rename", dict(name="Growth", new_name="Value"))
        assert response.code == 403 and "Growth" in await names()
        body = await site.refused("/portfolios/rename", dict(name="Growth", new_name=main, csrf=csrf),
                                  "/portfolios/manage?name=Growth")
        assert 'class="flash error"' in body and f'value="{main}"' in body
        response, _ = await site.post("/portfolios/rename", dict(name="Growth", new_name="Value", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios")
        assert await names() == {main: True, "Value": False}
        assert site.cookies["__Host-pt_portfolio"].startswith("Value:")  # (its name, and its uuid)
        _, body = await site.get("/orders")
        assert "AAPL" in body  # still the renamed portfolio's orders

        # Close: asks first; refused while it has an open order (the page says why); then closed, and the
        # pages show the default portfolio again.
        response, _ = await site.post("/portfolios/close", dict(name="Value", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios/manage?name=Value")
        body = await site.refused("/portfolios/close", dict(name="Value", confirm="yes", csrf=csrf),
                                  "/portfolios/manage?name=Value")
        assert 'class="flash error"' in body and "open order" in body
        await forward(commands.CancelAllOrders, portfolio="Value")
        response, _ = await site.post("/portfolios/close", dict(name="Value", confirm="yes", csrf=csrf))
        assert response.code == 303 and await names() == {main: True}
        assert "__Host-pt_portfolio" not in site.cookies

        # A new default: the pages go on showing the one they showed; the old default can now be closed.
        await forward(commands.CreatePortfolio, name="Second")
        response, body = await site.get(f"/portfolios/manage?name={main}")
        assert "cannot be closed" in body and 'action="/portfolios/close"' not in body
        response, _ = await site.post("/portfolios/default", dict(name="Second", csrf=csrf))
        assert response.code == 303 and await names() == {main: False, "Second": True}
        assert site.cookies["__Host-pt_portfolio"].startswith(f"{main}:")
        response, _ = await site.post("/portfolios/default", dict(name="Nothing", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios/manage?name=Nothing")
        response, _ = await site.get("/portfolios/manage?name=Nothing")
        assert response.code == 404
        response, _ = await site.post("/portfolios/close", dict(name=main, confirm="yes", csrf=csrf))
        assert response.code == 303 and await names() == {"Second": True}
        assert "__Host-pt_portfolio" not in site.cookies


@pytest_twisted.ensureDeferred
async def test_the_website_creates_and_manages_games(tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "dave")
        _, body = await site.get("/games")
        assert 'action="/games"' in body and 'type="date"' in body

        frank, gina = await person(worker, "frank"), await person(worker, "gina")
        game = dict(name="Open Cup", start="2026-09-01", end="2026-12-31", cash="$10,000", csrf=csrf)  # as typed

        # Made from the games page: not without the token; a refusal is said on the page, the form kept.
        assert (await site.post("/games", dict(game, csrf="")))[0].code == 403
        body = await site.refused("/games", dict(game, assets="AAPL, NOPE"), "/games")
        assert 'class="flash error"' in body and "NOPE" in body
        assert 'value="Open Cup"' in body
        # A long list typed, with one mistake: said, and the list kept to mend (the message and the form were
        # lost past 512 bytes of cookie).
        assets = ", ".join(["AAPL", "MSFT", "TSLA"] * 40 + ["NOPE"])
        body = await site.refused("/games", dict(game, assets=assets), "/games")
        assert "Unknown symbol 'NOPE': traded symbols are AAPL, MSFT, TSLA." in body and assets in body
        body = await site.refused("/games", dict(game, end="someday"), "/games")
        assert "Last day: a day (YYYY-MM-DD)" in body and 'value="someday"' in body
        response, _ = await site.post("/games", game)
        assert (response.code, header(response, b"location")) == (303, "/games/Open%20Cup")
        shown = await frank(commands.ShowGame, name="Open Cup")
        assert (shown["creator"], shown["private"], shown["starting_cash"]) == ("dave", False, Decimal("10000.00"))
        assert shown["end"].isoformat() == "2027-01-01T00:00:00+00:00"  # through its last day
        # "Join it to play": a Join button on its page and in the list, for one who does not play in it (its
        # creator, dave, here).
        _, body = await site.get("/games/Open%20Cup")
        assert '<input type="hidden" name="name" value="Open Cup"><button type="submit" class="btn primary">Join' \
               ' Open Cup as a player</button>' in body
        _, body = await site.get("/games")
        assert 'aria-label="Join Open Cup">Join</button>' in body
        response, _ = await site.post("/games/join", dict(name="Open Cup", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/games/Open%20Cup")
        _, body = await site.get("/games/Open%20Cup")
        assert "Join Open Cup" not in body and "Your portfolio in this game" in body
        assert re.search(r'<form method="post" action="/portfolios/default"[^>]*aria-label="Make it my default'
                         r' portfolio">.*?value="Open Cup".*?Make it my default</button>', body)
        _, body = await site.get("/games")
        assert 'aria-label="Join Open Cup"' not in body
        # From the game's page, the game's portfolio made the default one (every sign-in shows it, the command
        # line trades it); then back.
        response, _ = await site.post("/portfolios/default", dict(name="Open Cup", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios")
        assert [p["name"] for p in (await forward(commands.Portfolios))["portfolios"] if p["default"]] == ["Open Cup"]
        await forward(commands.SetDefaultPortfolio, name="default")

        # A private game with more rules: its invite code is shown once, on the game's page the answer leads to
        # (a reload shows it no more, and posts nothing again).
        response, _ = await site.post("/games", dict(game, name="Secret Cup", private="yes",
                                                     assets="aapl, msft", max_position="25%"))
        assert (response.code, header(response, b"location")) == (303, "/games/Secret%20Cup")
        _, body = await site.get("/games/Secret%20Cup")
        first = re.search(r'<code id="invite-code">([^<]+)</code>', body).group(1)
        # With it, a link to share: it opens the join form with the name and the code filled in (a GET that
        # joins nothing); its creator, who does not play yet, gets the join form here, with no code to give.
        link = re.search(r'id="invite-link" type="text" readonly value="([^"]+)"', body).group(1)
        assert link == f"{site.url}/games?join=Secret+Cup&amp;code={first}"
        form = re.search(r'<form method="post" action="/games/join"[^>]*aria-label="Join Secret Cup">(.*?)</form>',
                         body, re.S).group(1)
        assert 'name="code"' not in form and "Join Secret Cup as a player</button>" in form
        _, body = await site.get(link.replace("&amp;", "&")[len(site.url):].split("#")[0])
        assert 'id="f-name" name="name" type="text" value="Secret Cup"' in body
        assert f'id="f-code" name="code" type="text" value="{first}"' in body and "autofocus" in body
        assert (await forward(commands.ShowGame, name="Secret Cup"))["players"] == 0
        _, body = await site.get("/games/Secret%20Cup")
        assert 'id="invite-code"' not in body and 'id="invite-link"' not in body
        secret = await frank(commands.JoinGame, name="Secret Cup", code=first)
        assert (secret["assets"], secret["max_position"], secret["private"]) == (["AAPL", "MSFT"], Decimal("25"), True)

        # Its creator manages it from its page: a new code (the old one stops working), a player removed.
        _, body = await site.get("/games/Secret%20Cup")
        assert "New invite code" in body and "End the game now" in body
        response, _ = await site.post("/games/Secret%20Cup/invite", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/games/Secret%20Cup")
        _, body = await site.get("/games/Secret%20Cup")
        second = re.search(r'<code id="invite-code">([^<]+)</code>', body).group(1)
        assert second != first
        with pytest.raises(PaperTraderError):
            await gina(commands.JoinGame, name="Secret Cup", code=first)
        await gina(commands.JoinGame, name="Secret Cup", code=second)
        response, _ = await site.post("/games/Secret%20Cup/remove", dict(username="frank", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/games/Secret%20Cup")
        assert (await gina(commands.ShowGame, name="Secret Cup"))["players"] == 1
        # Its creator is shown whom they removed, with a link to the portfolio; the players are not.
        _, body = await site.get("/games/Secret%20Cup")
        assert re.search(r'<h2 id="removed-title">Removed players</h2><ul class="plain"><li><a href="/games/Secret%20Cup'
                         r'/players/frank">frank</a> — removed [^<]+</li></ul>', body), body
        assert [r["username"] for r in (await forward(commands.ShowGame, name="Secret Cup"))["removed"]] == ["frank"]
        assert (await gina(commands.ShowGame, name="Secret Cup")).get("removed") is None
        # The standings as a download for a spreadsheet, by either figure (gina plays; the board is computed at
        # the next market update: until then only its header).
        assert 'href="/games/Secret%20Cup/leaderboard.csv?by=sharpe" download>' in body
        for query, by in (("", "return"), ("?by=sharpe", "sharpe")):
            response, text = await site.get("/games/Secret%20Cup/leaderboard.csv" + query)
            assert response.code == 200 and header(response, b"content-type") == "text/csv; charset=utf-8"
            assert header(response, b"content-disposition") == \
                f'attachment; filename="Secret-Cup-leaderboard-by-{by}.csv"'
            # gina joined, and the board is computed at the next market update: she is listed, not ranked yet.
            assert text == "rank,username,equity,return_percent,sharpe\r\n,gina,,,\r\n"
        response, _ = await site.get("/games/No%20Such%20Cup/leaderboard.csv")
        assert response.code == 404
        body = await site.refused("/games/Secret%20Cup/remove", dict(username="nobody", csrf=csrf),
                                  "/games/Secret%20Cup")
        assert 'class="flash error"' in body
        response, _ = await site.post("/games/Secret%20Cup/end", dict(csrf=""))
        assert response.code == 403

        # Others see no management; the creator ends a game early.
        gina_site = await signed_in(site.url, "gina")
        _, body = await gina_site.get("/games/Secret%20Cup")
        assert "Leaderboard" in body and "End the game now" not in body and "New invite code" not in body
        response, _ = await site.post("/games/Open%20Cup/end", dict(csrf=csrf))
        assert response.code == 303
        await d.tick()
        assert (await gina(commands.ShowGame, name="Open Cup"))["status"] == "ended"
        _, body = await site.get("/games/Open%20Cup")
        assert "End the game now" not in body


def test_a_games_leaderboard_shows_each_players_sharpe_ratio_as_the_command_line_does():
    """The page showed equity and return only: ranked by return, the risk-adjusted figure was in the CSV alone."""
    game = dict(name="Spring Cup", is_creator=False, playing=True, show_portfolios=False)
    board = dict(final=False, updated=datetime(2016, 3, 11, 21, tzinfo=timezone.utc), unranked=[], standings=[
        dict(rank=1, username="amy", equity=Decimal("10250.00"), return_percent=Decimal("2.5000"),
             sharpe=Decimal("3.1416")),
        dict(rank=2, username="ben", equity=Decimal("10000.00"), return_percent=Decimal("0"), sharpe=None)])
    page = str(views.leaderboard("amy", game, board))
    assert ">Sharpe</th>" in page
    cells = re.findall(r'data-label="Sharpe"[^>]*>([^<]*)<', page)
    assert cells == ["3.1416", "n/a"], cells
    # Why none (it said "—", as of a figure missing): fewer than 20 daily returns, or no ups and downs.
    assert "Sharpe n/a: a Sharpe ratio needs 20 daily returns (about a month of market days), not all the same." \
        in page


def leaderboard_section(body):
    """What a reload of a game's page shows in its leaderboard (the part the live connection sends again)."""
    return re.search(r'<div data-section="leaderboard">(.*?</table></div>(?:<p class="muted">Joined[^<]*</p>)?)</div>',
                     body, re.S).group(1)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("offered", [False, True])
async def test_the_game_form_offers_margin_and_short_selling_only_where_the_server_does(tmp_path, settings, clock,
                                                                                       offered):
    """The create form offered "Margin accounts" and "Short selling allowed" on a server that makes no margin
    accounts: ticking either was refused only once the whole form was sent.  They are offered where the operator
    offers margin accounts (``margin_accounts``), as the Portfolios page's "Margin account" box is."""
    database = Database.default_url(str(tmp_path))
    async with website(tmp_path, settings, database, clock, margin_accounts=offered) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "mia")
        _, body = await site.get("/games")
        form = re.search(r'<form method="post" action="/games" [^>]*>(.*?)</form>', body, re.S).group(1)
        assert ('name="margin"' in form, 'name="allow_short"' in form) == (offered, offered)
        assert 'name="max_position"' in form and 'name="commission"' in form  # the other rules are there
        response, _ = await site.post("/games", dict(name="Short Cup", start="2026-09-01", end="2026-12-31",
                                                     cash="10000", allow_short="yes", csrf=csrf))
        assert response.code == 303
        games = {g["name"]: g for g in (await forward(commands.Games))["games"]}
        assert ("Short Cup" in games) == offered


def test_the_join_form_does_not_send_an_invited_player_looking_for_a_private_game_in_the_list():
    """Opened by a private game's invite link, the join form said of the game's name "Its name, as listed above",
    above a list that never shows a private game to someone who does not play in it ("No games yet.")."""
    page = str(views.games_page(views.Chrome(csrf="x" * 64, username="ivy"), [],
                                form={"name": "Secret Cup", "code": "ABCD-EFGH"}, invited=True))
    assert "No games yet." in page and 'value="Secret Cup"' in page
    hint = re.search(r'<p class="hint" id="f-name-hint">([^<]*)</p>', page).group(1)
    assert hint == "A public game's name as listed above, or the name of the private game you were invited to."


@pytest_twisted.ensureDeferred
async def test_a_games_page_shows_its_leaderboard_live(tmp_path, settings, clock, database_url):
    """A teacher keeps the game's page open on the class's screen: who joins, each update's ranking and the
    final one appear without a reload, as a reload would show them."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "dave")
        game = dict(start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf)
        assert (await site.post("/games", dict(game, name="Live Cup")))[0].code == 303
        _, body = await site.get("/games/Live%20Cup")
        assert 'data-game="Live Cup"' in body and "No standings yet" in leaderboard_section(body)
        page = await opened_page(site, {"page": "game", "game": "Live Cup"})

        alice, bob = await person(worker, "alice"), await person(worker, "bob")
        await alice(commands.JoinGame, name="Live Cup")
        shown = (await next_message(page, "html"))["v"]["leaderboard"]
        assert "Joined, ranked at the next market update: alice." in shown
        await bob(commands.JoinGame, name="Live Cup")
        shown = (await next_message(page, "html"))["v"]["leaderboard"]
        assert "alice, bob." in shown

        await alice(commands.PlaceOrder, portfolio="Live Cup", client_order_id="a1", side="buy", symbol="AAPL",
                    quantity="7")
        await d.tick()
        while "As of" not in shown:  # (the order's events refresh the page too)
            shown = (await next_message(page, "html"))["v"]["leaderboard"]
        _, body = await site.get("/games/Live%20Cup")
        assert shown == leaderboard_section(body)
        assert ">alice</a>" in shown and ">bob</a>" in shown and "Joined" not in shown  # its creator sees both

        # A player of a game that hides portfolios sees the same ranking, without links to the others'.
        bob_site = await signed_in(site.url, "bob")
        bobs = await websocket(bob_site, site.url)
        await bounded(bobs.opened, "the connection")
        bobs.opened.result.sendMessage(json.dumps({"page": "game", "game": "Live Cup"}).encode())
        await next_message(bobs, "ready")
        assert (await site.post("/games/Live%20Cup/end", dict(csrf=csrf)))[0].code == 303
        final = (await next_message(page, "html"))["v"]["leaderboard"]
        assert "Final ranking" in final
        for_bob = (await next_message(bobs, "html"))["v"]["leaderboard"]
        assert "Final ranking" in for_bob and ">alice</a>" not in for_bob and ">bob</a>" in for_bob
        _, body = await bob_site.get("/games/Live%20Cup")
        assert for_bob == leaderboard_section(body)


async def next_value(factory, key):
    """The next text the live connection sets for the elements ``data-live=key``."""
    while True:
        message = await next_message(factory, "set")
        if key in message["v"]:
            return message["v"][key][0]


@pytest_twisted.ensureDeferred
async def test_a_games_page_keeps_its_status_players_and_creators_buttons_current(tmp_path, settings, clock,
                                                                                  database_url):
    """The game's page left open: its facts said "Players 0" beside a leaderboard listing who had joined, and
    "Status open" with the creator's "End the game now" beside the final ranking once it ended.  They now move
    with it, as a reload shows them."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "dave")
        game = dict(start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf)
        assert (await site.post("/games", dict(game, name="Facts Cup")))[0].code == 303
        _, body = await site.get("/games/Facts%20Cup")
        assert '<dd data-live="game.players">0</dd>' in body and '<dd data-live="game.status">open</dd>' in body
        assert "End the game now" in body
        page = await opened_page(site, {"page": "game", "game": "Facts Cup"})

        alice = await person(worker, "alice")
        await alice(commands.JoinGame, name="Facts Cup")
        assert await next_value(page, "game.players") == "1"
        _, body = await site.get("/games/Facts%20Cup")
        assert '<dd data-live="game.players">1</dd>' in body

        assert (await site.post("/games/Facts%20Cup/end", dict(csrf=csrf)))[0].code == 303
        while True:  # (the orders' events of the end refresh the page too)
            message = await next_message(page, "html")
            # (ended before any update ranked it: the next one makes its final ranking)
            if "The game has ended." in message["v"]["leaderboard"]:
                break
        assert message["v"]["game-manage"] == ""  # no more "End the game now", "New invite code", "Remove"
        assert await next_value(page, "game.status") == "ended"
        _, body = await site.get("/games/Facts%20Cup")
        assert '<dd data-live="game.status">ended</dd>' in body and "End the game now" not in body
        assert '<div data-section="game-manage"></div>' in body


@pytest_twisted.ensureDeferred
async def test_a_games_page_opened_before_anyone_joined_can_remove_a_player(tmp_path, settings, clock):
    """The creator's "Remove the player" form was only on a page made when the game had players: a teacher who
    opened the game's page before the class joined (and watched them join, live) had to reload to remove one."""
    database = Database.default_url(str(tmp_path))
    async with website(tmp_path, settings, database, clock, fill_model="ideal") as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "tia")
        game = dict(name="Early Cup", start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf)
        assert (await site.post("/games", game))[0].code == 303
        _, body = await site.get("/games/Early%20Cup")
        assert 'action="/games/Early%20Cup/remove"' in body and "Remove the player" in body
        mallory = await person(worker, "mallory")
        await mallory(commands.JoinGame, name="Early Cup")
        response, _ = await site.post("/games/Early%20Cup/remove", dict(username="mallory", csrf=csrf))
        assert response.code == 303
        _, body = await site.get("/games/Early%20Cup")
        assert "mallory was removed from Early Cup." in body


@pytest_twisted.ensureDeferred
async def test_a_ranking_update_asks_the_master_once_per_game_for_all_its_pages(tmp_path, settings, clock,
                                                                                 database_url):
    """Each game page asked the master twice per ranking update (the game, then its standings): a class of
    thirty screens made sixty calls an update.  The standings are now asked once per game for all the worker's
    pages, each rendering them as its visitor sees the game (links for the creator, none for a player)."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "dave")
        game = dict(start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf)
        assert (await site.post("/games", dict(game, name="Class Cup")))[0].code == 303
        alice, bob = await person(worker, "alice"), await person(worker, "bob")
        for player in (alice, bob):
            await player(commands.JoinGame, name="Class Cup")
        await alice(commands.PlaceOrder, portfolio="Class Cup", client_order_id="a1", side="buy", symbol="AAPL",
                    quantity="7")
        await d.tick()

        pages = []
        for name, visitor in (("dave", site), ("bob", None), ("dave", None)):
            if visitor is None:
                visitor = await signed_in(site.url, name)
            page = await websocket(visitor, site.url)
            await bounded(page.opened, "the connection")
            page.opened.result.sendMessage(json.dumps({"page": "game", "game": "Class Cup"}).encode())
            await next_message(page, "ready")
            pages.append((name, visitor, page))

        asked = []
        forward = worker.gateway.forward

        def counted(command, arguments, ip):
            asked.append(command.__name__)
            return forward(command, arguments, ip)
        worker.gateway.forward = counted
        await alice(commands.PlaceOrder, portfolio="Class Cup", client_order_id="a2", side="buy", symbol="MSFT",
                    quantity="3")  # (alice has no page open: her order's events refresh none)
        asked.clear()
        await d.tick()
        shown = [(await next_message(page, "html"))["v"]["leaderboard"] for _, _, page in pages]
        assert asked.count("GameLeaderboard") == 1 and "ShowGame" not in asked, asked
        for (name, visitor, _), board in zip(pages, shown):
            _, body = await visitor.get("/games/Class%20Cup")
            assert board == leaderboard_section(body), name
            assert (">alice</a>" in board) == (name == "dave") and "Joined" not in board


@pytest_twisted.ensureDeferred
async def test_a_games_creator_opens_each_players_portfolio_from_the_games_page(tmp_path, settings, clock,
                                                                                 database_url):
    """The leaderboard links each player to their portfolio's page (positions, open orders, trades) for the
    game's creator, and for the players only in a game made with 'Players see each other's portfolios'; the
    page of someone not allowed is refused the same whoever is asked for."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "dave")

        alice, bob = await person(worker, "alice"), await person(worker, "bob")
        game = dict(start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf)
        assert (await site.post("/games", dict(game, name="Closed Book")))[0].code == 303
        assert (await site.post("/games", dict(game, name="Open Book", show_portfolios="yes")))[0].code == 303
        for name in ("Closed Book", "Open Book"):
            for player in (alice, bob):
                await player(commands.JoinGame, name=name)
            await alice(commands.PlaceOrder, portfolio=name, client_order_id=f"buy-{name[:4]}", side="buy",
                        symbol="AAPL", quantity="7")
        _, body = await site.get("/games/Closed%20Book")  # the creator sees who joined before the first ranking
        assert "Joined, ranked at the next market update: alice, bob." in body
        await d.tick()
        await alice(commands.PlaceOrder, portfolio="Closed Book", client_order_id="low", side="buy", symbol="MSFT",
                    quantity="3", type="limit", limit_price="1.00", time_in_force="gtc")
        await d.tick()

        # The creator: every player's name on the leaderboard leads to their portfolio.
        _, body = await site.get("/games/Closed%20Book")
        assert "only its creator sees the players" in body
        assert 'href="/games/Closed%20Book/players/alice"' in body and 'href="/games/Closed%20Book/players/bob"' in body
        response, body = await site.get("/games/Closed%20Book/players/alice")
        assert response.code == 200 and header(response, b"content-security-policy") == CSP
        assert "<h1>alice in Closed Book</h1>" in body and "example.com" not in body
        positions = body.split('id="player-positions-title"', 1)[1].split("</table>", 1)[0]
        assert 'href="/asset/AAPL"' in positions and ">7<" in positions
        orders = body.split('id="player-orders-title"', 1)[1].split("</table>", 1)[0]
        assert "MSFT" in orders and "$1.00" in orders and "Cancel" not in orders  # nothing to act on
        trades = body.split('id="player-trades-title"', 1)[1].split("</table>", 1)[0]
        assert "Bought AAPL" in trades
        response, body = await site.get("/games/Closed%20Book/players/nobody")
        assert response.code == 404 and "does not play" in body

        # A player of the game that hides them: no links, and the same refusal for a player and for nobody.
        bob_site = await signed_in(site.url, "bob")
        _, body = await bob_site.get("/games/Closed%20Book")
        assert "/players/alice" not in body and 'href="/games/Closed%20Book/players/bob"' in body  # only their own
        refusals = set()
        for username in ("alice", "nobody"):
            response, body = await bob_site.get(f"/games/Closed%20Book/players/{username}")
            assert response.code == 403 and "alice in" not in body
            refusals.add(re.search(r"<p>([^<]*)</p>", body.split("<main", 1)[1]).group(1))
        assert len(refusals) == 1
        # The game that shows them: bob opens alice's.
        _, body = await bob_site.get("/games/Open%20Book")
        assert "every player sees every player" in body and 'href="/games/Open%20Book/players/alice"' in body
        response, body = await bob_site.get("/games/Open%20Book/players/alice")
        assert response.code == 200 and "<h1>alice in Open Book</h1>" in body and "Bought AAPL" in body
        assert "The game is over" not in body

        # Once the game is over, the page gives the final ranking's figures beside today's.
        _, body = await site.get("/games/Open%20Book")
        assert (await site.post("/games/Open%20Book/end", dict(csrf=site.csrf(body))))[0].code == 303
        _, body = await site.get("/games/Open%20Book")  # the flash says the ranking shown is final already
        assert "its final ranking is the last market update&#x27;s, below" in body or \
            "its final ranking is the last market update's, below" in body, body[:3000]
        _, body = await bob_site.get("/games/Open%20Book/players/alice")
        assert re.search(r"The game is over: final rank <strong>\d</strong>, final equity <strong>\$[\d,.]+"
                         r"</strong> \(as of [^)]+\)\. The figures below are at the market's prices now\.", body), body


@pytest_twisted.ensureDeferred
async def test_the_website_shows_and_trades_the_chosen_portfolio_and_shows_games(tmp_path, settings, clock,
                                                                               database_url):
    from datetime import datetime, timezone

    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "dave")

        [default] = (await forward(commands.Portfolios))["portfolios"]

        # A new portfolio: refused without the CSRF token, made with it; the page lists both.
        response, _ = await site.post("/portfolios", dict(name="Growth", cash="5000"))
        assert response.code == 403
        assert len((await forward(commands.Portfolios))["portfolios"]) == 1
        response, _ = await site.post("/portfolios", dict(name="Growth", cash="5000", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios")
        response, body = await site.get("/portfolios")
        assert response.code == 200 and "Growth" in body and "$5,000.00" in body and default["name"] in body
        assert 'id="f-shown-portfolio"' in body  # the navigation's selector, now that there are two
        body = await site.refused("/portfolios", dict(name="growth", cash="12.5", csrf=csrf), "/portfolios")
        assert 'class="flash error"' in body and 'value="growth"' in body and 'value="12.5"' in body

        # The selector: refused without the token; with it, a cookie holding only the name and the portfolio's uuid.
        response, _ = await site.post("/portfolios/use", dict(name="Growth"))
        assert response.code == 403 and "__Host-pt_portfolio" not in site.cookies
        response, _ = await site.post("/portfolios/use", dict(name="Growth", csrf=csrf))
        assert response.code == 303 and re.fullmatch("Growth:[0-9a-f-]{36}", site.cookies["__Host-pt_portfolio"])
        chosen = [c for c in response.headers.getRawHeaders(b"set-cookie") if c.startswith(b"__Host-pt_portfolio=")][0]
        assert all(flag in chosen for flag in (b"HttpOnly", b"Secure", b"SameSite=strict", b"Path=/"))
        # Chosen in the header of an asset's page: back to that page (it led to the dashboard); never elsewhere.
        # (an order's page, or a page of a list, of the portfolio shown before: the orders page, the list's first)
        for referer, back in ((f"{site.url}/asset/AAPL?interval=1d", "/asset/AAPL"),
                              (f"{site.url}/orders/{uuid.uuid4()}/replace", "/orders"),
                              (f"{site.url}/history?after=12", "/history"),
                              ("https://evil.example/x", "/"), (f"{site.url}//evil.example", "/")):
            response, _ = await site.post("/portfolios/use", dict(name="Growth", csrf=csrf),
                                          headers={b"Referer": [referer.encode()]})
            assert (response.code, header(response, b"location")) == (303, back), referer

        # The live connection of a page shows only the shown portfolio's order events.
        live = await opened_page(site, {"page": "orders"})

        # Orders go into the portfolio shown, and the pages show that one's; the two never mix.
        order = dict(side="buy", type="market", amount_by="shares", time_in_force="day", csrf=csrf)
        await forward(commands.PlaceOrder, portfolio=default["name"], symbol="MSFT", side="buy", type="market",
                      time_in_force="day", quantity="7", client_order_id="elsewhere-1")
        # The ticket names the portfolio it trades, and so does the answer to the order.
        _, body = await site.get("/asset/AAPL")
        assert 'id="ticket-portfolio">Portfolio: <strong>Growth</strong>' in body
        response, _ = await site.post("/asset/AAPL/order", dict(order, qty="2", client_order_id="growth-1"))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/asset/AAPL")
        assert "Buy 2 AAPL in portfolio Growth (at the market, Day): open." in body
        await d.tick()  # both fill (the other portfolio's order first): the page hears of Growth's only
        toast = await next_message(live, "toast")
        assert toast["text"].startswith("Filled") and "AAPL" in toast["text"], toast
        assert toast["text"].endswith(" in portfolio Growth"), toast  # which portfolio it traded
        growth = (await forward(commands.Orders, portfolio="Growth", limit=10))["orders"]
        assert [o["client_order_id"] for o in growth] == ["growth-1"]
        _, body = await site.get("/orders")
        assert "AAPL" in body and "MSFT" not in body
        response, _ = await site.post("/portfolios/use", dict(name=default["name"], csrf=csrf))
        assert response.code == 303 and "__Host-pt_portfolio" not in site.cookies
        _, body = await site.get("/asset/AAPL")
        assert f'id="ticket-portfolio">Portfolio: <strong>{default["name"]}</strong>' in body
        assert f'name="portfolio" value="{default["name"]}"' in body
        response, _ = await site.post("/asset/AAPL/order", dict(order, qty="3", client_order_id="main-1"))
        assert response.code == 303
        _, body = await site.get("/asset/AAPL")
        assert f"Buy 3 AAPL in portfolio {default['name']} (at the market, Day): open." in body
        # A ticket trades the portfolio it named, though another tab showed another one meanwhile; its preview
        # counts that one's buying power, and says so if it is gone.
        ask = dict(side="buy", type="market", amount_by="shares", qty="1", time_in_force="day")
        _, answer = await site.get("/asset/AAPL/preview?" + urlencode(dict(ask, portfolio="Growth")))
        growth_power = (await forward(commands.Portfolio, portfolio="Growth"))["buying_power"]
        assert json.loads(answer)["buying_power"] == fmt.money(growth_power)
        response, answer = await site.get("/asset/AAPL/preview?" + urlencode(dict(ask, portfolio="Gone")))
        assert response.code == 200 and json.loads(answer)["note"].endswith("Reload the page.")
        assert site.cookies.get("__Host-pt_portfolio") is None  # nothing changed for the other pages
        response, _ = await site.post("/asset/AAPL/order", dict(order, qty="1", client_order_id="growth-2",
                                                                portfolio="Growth"))
        assert response.code == 303
        _, body = await site.get("/asset/AAPL")
        assert "Buy 1 AAPL in portfolio Growth (at the market, Day): open." in body
        mine = (await forward(commands.Orders, limit=10))["orders"]
        assert sorted(o["client_order_id"] for o in mine) == ["elsewhere-1", "main-1"]
        growth = (await forward(commands.Orders, portfolio="Growth", limit=10))["orders"]
        assert sorted(o["client_order_id"] for o in growth) == ["growth-1", "growth-2"]
        _, body = await site.get("/orders")
        assert "MSFT" in body

        # Reset: asks first; refused without the token; then Growth starts again with its cash.
        response, _ = await site.post("/portfolios/reset", dict(name="Growth", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios/reset?name=Growth")
        response, body = await site.get("/portfolios/reset?name=Growth")
        assert response.code == 200 and 'name="confirm" value="yes"' in body
        response, _ = await site.get("/portfolios/reset?name=Nothing")
        assert response.code == 404
        response, _ = await site.post("/portfolios/reset", dict(name="Growth", confirm="yes"))
        assert response.code == 403
        assert (await forward(commands.Portfolio, portfolio="Growth"))["cash"] < Decimal("5000.00")
        response, _ = await site.post("/portfolios/reset", dict(name="Growth", confirm="yes", csrf=csrf))
        assert response.code == 303
        assert (await forward(commands.Portfolio, portfolio="Growth"))["cash"] == Decimal("5000.00")

        # Games: listed, joined (not without the token), ranked after the market's next step.
        await forward(commands.CreateGame, name="Web Cup", starting_cash="10000",
                      start=datetime(2026, 9, 1, tzinfo=timezone.utc), end=datetime(2027, 1, 1, tzinfo=timezone.utc))
        response, body = await site.get("/games")
        assert response.code == 200 and 'href="/games/Web%20Cup"' in body
        response, _ = await site.post("/games/join", dict(name="Web Cup"))
        assert response.code == 403
        response, _ = await site.post("/games/join", dict(name="Web Cup", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/games/Web%20Cup")
        _, body = await site.get("/games/Web%20Cup")
        assert f"The pages still show and trade portfolio {default['name']}" in body  # not the game's yet
        body = await site.refused("/games/join", dict(name="No Such Cup", csrf=csrf), "/games")
        assert 'class="flash error"' in body and 'value="No Such Cup"' in body
        await d.tick()
        response, body = await site.get("/games/Web%20Cup")
        assert response.code == 200
        row = re.search(r'<td class="num" data-label="Rank">1</td><td data-label="Player">'
                        r'<a href="/games/Web%20Cup/players/dave">dave</a></td>'  # their own portfolio's page
                        r'<td class="num" data-label="Equity">([^<]*)</td>', body)
        assert row is not None and row.group(1) == "$10,000.00"
        assert "dave@example.com" not in body and 'value="Web Cup"' in body  # your portfolio, to show
        response, _ = await site.get("/games/No%20Such%20Cup")
        assert response.code == 404


def history_rows(body):
    """The history table's rows: {column: text} (by each cell's data-label)."""
    table = body.split('data-section="activities"', 1)[1].split("</tbody>", 1)[0]
    return [dict(re.findall(r'data-label="([^"]+)">(.*?)</t[dh]>', row)) for row in table.split("</tr>")[:-1]]


def dollars(text):
    """'-$1,021.00' as Decimal('-1021.00')."""
    return Decimal(text.replace("$", "").replace(",", "").replace("+", ""))


@pytest_twisted.ensureDeferred
async def test_the_history_shows_each_fills_commission(tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal", commission_model="per_order",
                       commission=Decimal("1.00")) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "hana")
        order = dict(type="market", amount_by="shares", time_in_force="day", csrf=csrf)
        assert (await site.post("/asset/AAPL/order", dict(order, side="buy", qty="20")))[0].code == 303
        await d.tick()
        assert (await site.post("/asset/AAPL/order", dict(order, side="sell", qty="5")))[0].code == 303
        await d.tick()
        response, body = await site.get("/history")
        assert response.code == 200 and '<th scope="col" class="num">Commission</th>' in body
        sold, bought = history_rows(body)
        assert bought["Activity"] == "Bought AAPL" and sold["Activity"] == "Sold AAPL"
        # What a student checks by hand: shares x price + commission = what the buy cost; less it, what the sale
        # brought; the commission is the one the order's page shows.
        assert bought["Commission"] == sold["Commission"] == "$1.00"
        assert dollars(bought["Shares"]) * dollars(bought["Price"]) + 1 == -dollars(bought["Amount"])
        assert dollars(sold["Shares"]) * dollars(sold["Price"]) - 1 == dollars(sold["Amount"])
        orders = (await forward(commands.Orders, status="closed", limit=10))["orders"]
        assert [o["commission"] for o in orders] == [Decimal("1.00"), Decimal("1.00")]


@pytest_twisted.ensureDeferred
async def test_the_websites_refusals_are_in_its_own_words(tmp_path, settings, clock, database_url):
    """No command-line command, bare number or '1 seconds' in what a page says."""
    import os

    replay = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
    async with website(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=replay,
                       replay_start="2024-03-04", login_free_attempts=2) as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "ines")
        symbol = worker.quotes.all()[0]["symbol"]
        # The ticket says how long a day order lasts here: a replayed session is a market update, 5 s.
        _, body = await site.get(f"/asset/{symbol}")
        assert ("Day: until this session's close — on this server's replay, a session lasts about 5"
                " seconds.") in body
        order = dict(side="buy", type="market", amount_by="dollars", notional="0.50", time_in_force="day",
                     csrf=csrf)
        body = await site.refused(f"/asset/{symbol}/order", dict(order, client_order_id="mine-1"), f"/asset/{symbol}")
        assert 'value="0.50"' in body and 'value="mine-1"' in body  # as typed; sent again, the same order
        assert "The amount must be from $1.00 to $1,000,000,000.00, in dollars and cents." in body
        assert "1000000000" not in body
        # A game that would start after the replay's last day: the market's time is the page's clock.
        game = dict(name="Late Cup", start="2030-09-01", end="2030-12-31", cash="10000", csrf=csrf)
        body = await site.refused("/games", game, "/games")
        assert "The game would start after the replay's last day" in body
        assert "papertrader clock" not in body and "(the clock at the top of the page)" in body
        # Signing in too often: the wait is in words, singular when it is one second.
        stranger = Site(site.url)
        _, body = await stranger.get("/signin")
        attempt = dict(username="ines", password="not the password", csrf=stranger.csrf(body))
        for _ in range(2):
            body = await stranger.refused("/signin", attempt, "/signin")
            assert "Wrong username or password." in body
        # The page's title says it; the reason names the fields the page marks invalid (app.js).
        assert "<title>Error: Sign in · PaperTrader</title>" in body
        assert 'id="form-error" tabindex="-1" data-fields="f-username f-password"' in body
        _, body = await stranger.get("/signin")
        assert "<title>Sign in · PaperTrader</title>" in body and "form-error" not in body
        body = await stranger.refused("/signin", attempt, "/signin")
        assert "try again in 1 second." in body and "1 seconds" not in body


def test_the_ticket_says_how_long_a_day_order_lasts_in_real_time():
    """A new user's day order on a replay expires seconds later: the ticket says so, in the replay's terms (a
    session per update, or a step of market time per update), and of a live market only that it is its session."""
    from papertrader.worker.web.views import day_hint

    utc = timezone.utc
    opens, closes = datetime(2024, 3, 5, 14, 30, tzinfo=utc), datetime(2024, 3, 5, 21, 0, tzinfo=utc)
    replay = dict(mode="replay", step="1d", is_open=True, next_open=opens, next_close=closes)
    start = "Day: until this session's close — on this server's replay, "
    assert day_hint(replay, 5.0) == start + "a session lasts about 5 seconds."
    assert day_hint(replay, 1.0) == start + "a session lasts about 1 second."
    hourly = dict(replay, step="1h", is_open=False)
    assert day_hint(hourly, 5.0) == start + ("a 6.5-hour session lasts about 35 seconds (1 hour of market time"
                                             " passes every 5 seconds).")
    assert day_hint(dict(hourly, is_open=True, step="5m"), 0.2) == start + ("5 minutes of market time passes"
                                                                             " several times a second.")
    live = "Day: until the close of the market's current session, in its own hours."
    assert day_hint(dict(replay, mode="live"), 5.0) == day_hint(None, 5.0) == live
    # Paused by its operator: no session passes until it resumes.
    assert day_hint(dict(replay, state="paused"), 5.0) == (
        "Day: until this session's close — this server's replay is paused: market time stands still until its"
        " operator resumes it.")


def test_every_column_has_a_header_and_every_label_says_what_is_seen():
    """A column of buttons has a header for screen readers ('Actions', out of sight); an interval's accessible
    name starts with its visible text (WCAG 2.5.3: '1D, daily candles', never 'daily candles' alone)."""
    markup = views.table(["Order", ("Price", "num"), ""], [], caption="Orders")
    assert re.findall(r"<th scope[^>]*>(.*?)</th>", markup) == ["Order", "Price",
                                                                 '<span class="sr-only">Actions</span>']
    chrome = views.Chrome(csrf="x" * 64, username="amy")
    portfolio = dict(buying_power=Decimal("10.00"), positions=[], portfolio="default")
    page = views.asset_page(chrome, {"symbol": "AAPL"}, None, [], "1d", None, portfolio, [])
    links = re.findall(r'<a href="/asset/AAPL\?interval=\w+"[^>]*aria-label="([^"]+)">([^<]+)</a>', page)
    assert ("1D, daily candles", "1D") in links and len(links) == 5
    assert all(label.startswith(text + ", ") for label, text in links)
    assert "<th scope=\"col\"></th>" not in page


def contrast(one, other):
    """The WCAG contrast ratio of two colours '#rrggbb'."""
    def luminance(colour):
        channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(one), luminance(other)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_the_outlines_a_control_is_seen_by_have_a_contrast_of_3_to_1():
    """WCAG 1.4.11: the focus ring against the page, a card, an error and the dark header; fields', buttons' and
    pills' borders, and a danger button's, against white."""
    import os

    from papertrader.worker.web import __file__ as web

    with open(os.path.join(os.path.dirname(web), "static", "app.css")) as f:
        css = f.read()
    colours = dict(re.findall(r"--([a-z-]+): (#[0-9a-f]{6});", css))
    for around in ("#ffffff", colours["bg"], "#fef3f2", "#0f1b2d", "#13233a"):
        assert contrast(colours["focus"], around) >= 3, around
    for line in ("field-line", "danger-line"):
        assert contrast(colours[line], "#ffffff") >= 3 and contrast(colours[line], colours["bg"]) >= 3, line
    # Every border of a field, a button, the side picker or a pill is one of them.
    borders = re.findall(r"border(?:-color)?: (?:1px solid )?([^;]+);", css)
    assert "#9aa7b4" not in borders and "#e4a29a" not in borders
    assert css.count("var(--field-line)") >= 4 and "var(--danger-line)" in css


def test_the_cores_messages_are_shown_with_the_websites_money_and_order_names():
    """The core's messages, shared with the command line and the HTTP API, say money plainly and name orders by
    number: the website shows its own money ('$24,083,850.00', as the preview) and its own names of orders."""
    said = fmt.said
    assert said("insufficient buying power: buying 100000 AAPL needs up to 24083850.00; buying power is"
                " 97723.14.") == ("insufficient buying power: buying 100,000 AAPL needs up to $24,083,850.00; buying"
                                  " power is $97,723.14.")
    assert said("insufficient buying power: buying 500.00 of AAPL needs up to 500.00; buying power is 12.50 after"
                " your open orders") == ("insufficient buying power: buying $500.00 of AAPL needs up to $500.00;"
                                         " buying power is $12.50 after your open orders")
    assert said("insufficient funds at the fill: 10.25 AAPL at 1187.2512; cash is 97723.14") == \
        "insufficient funds at the fill: 10.25 AAPL at $1,187.25; cash is $97,723.14"  # a price in cents, as shown
    assert said("order 9 is already expired; 1.5 filled at an average 187.25", "Buy 2 AAPL") == \
        "Buy 2 AAPL is already expired; 1.5 filled at an average $187.25"
    assert said("client_order_id 'a' was already used for order 12 (buy AAPL, limit)") == \
        "client_order_id 'a' was already used for another order (buy AAPL, limit)"
    # An order that does not exist is no such order (it read 'No another order in portfolio ...').
    assert said("no order 999 in portfolio 'default'") == "no such order in portfolio 'default'"
    # What is not money stays as it is: dates, percents, counts.
    for plain in ("you already have 500 open orders; cancel some first", "a limit order needs limit price",
                  "the game would end before the market's time now (2010-05-12 15:30 UTC)"):
        assert said(plain) == plain


@pytest_twisted.ensureDeferred
async def test_a_refusal_on_the_website_says_money_and_orders_as_its_pages_do(tmp_path, settings, clock,
                                                                              database_url):
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "olga")
        order = dict(side="buy", type="market", amount_by="shares", qty="100000", time_in_force="day", csrf=csrf)
        body = await site.refused("/asset/AAPL/order", order, "/asset/AAPL")
        needed = re.search(r"Insufficient buying power: buying 100,000 AAPL needs up to (\$[0-9,]+\.[0-9]{2});"
                           r" buying power is \$100,000\.00\.", body)
        assert needed and "," in needed.group(1), body[body.find("form-error"):][:300]
        placed = await forward(commands.PlaceOrder, symbol="AAPL", side="buy", type="limit", limit_price="1.00",
                               time_in_force="gtc", quantity="1", client_order_id="low")
        await forward(commands.CancelOrder, order_uuid=placed["uuid"])
        response, _ = await site.post(f"/orders/{placed['uuid']}/cancel", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/orders")
        _, body = await site.get("/orders")
        assert "Buy 1 AAPL is already canceled." in body and "Order " not in body


def test_a_games_leaderboard_before_its_start_says_which_update_ranks_its_players():
    """No market update ranks a game before its start: the page said its standings 'come with the next market
    update', and after that update, the same.  Before its start, it names the first update after it."""
    game = dict(name="Next Week", is_creator=True, playing=False, show_portfolios=False)
    board = dict(standings=[], final=False, updated=None, unranked=["alice"],
                 starts=datetime(2026, 9, 28, tzinfo=timezone.utc))
    shown = str(views.leaderboard("teacher", game, board))
    assert "Not ranked yet." in shown
    assert "No standings yet: they come with the first market update after the game starts (2026-09-28)." in shown
    assert "Joined, ranked at the first market update after the game starts (2026-09-28): alice." in shown
    assert "next market update" not in shown
    shown = str(views.leaderboard("teacher", game, dict(board, starts=None)))
    assert "Joined, ranked at the next market update: alice." in shown


def test_a_games_end_shows_its_last_day_and_when_its_creator_ended_it_early():
    """'Ends 2016-01-23 00:00 UTC' for a game whose last day was the 22nd, and still that date after the teacher
    ended it on the 19th."""
    from papertrader.worker.web.views import game_end

    utc = timezone.utc
    game = dict(end=datetime(2016, 1, 23, tzinfo=utc), ended_at=None)
    assert game_end(game) == "2016-01-22 (last day)"
    assert game_end(dict(game, end=datetime(2016, 1, 22, 21, 0, tzinfo=utc))) == "2016-01-22 21:00 UTC"
    early = dict(game, ended_at=datetime(2016, 1, 19, 14, 30, tzinfo=utc))
    assert game_end(early) == "ended 2016-01-19 14:30 UTC, early (planned: 2016-01-22 (last day))"


def header_market(body):
    """What a page's header says of the market: {"market": [words, state], "clock": [market time, None]}."""
    state, words = re.search(r'data-live="market" data-sign="(\w+)">([^<]*)<', body).groups()
    return {"market": [words, state], "clock": [re.search(r'data-live="clock">([^<]*)<', body).group(1), None]}


async def next_header(factory):
    """The next "set" message that says the header's market clock (a page also gets others: a day's range...)."""
    while True:
        values = (await next_message(factory, "set"))["v"]
        if "clock" in values:
            return values


@pytest_twisted.ensureDeferred
async def test_the_header_shows_the_market_clock_live_as_a_reload_does(tmp_path, settings, clock):
    """A replay of daily bars an hour at a time: the updates inside a session bring no price, the one that
    reaches its close brings the day's, and market time then waits at the next open.  Live, every page's header
    says what a reload says (the market's time, open or closed), not the newest price's time."""
    import os

    replay = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
    async with website(tmp_path, settings, Database.default_url(str(tmp_path)), clock, provider="replay",
                       assets=(), replay_files=replay, replay_start="2024-03-04", replay_end="2024-03-05",
                       replay_step="1h") as (d, worker, site):
        await signed_up(site, worker, "kim")
        orders = await websocket(site, site.url)  # a page showing no prices
        await bounded(orders.opened, "the connection")
        orders.opened.result.sendMessage(json.dumps({"page": "orders"}).encode())
        await next_message(orders, "ready")
        _, body = await site.get("/orders")
        # (the first update, at the start, played the first hour)
        assert header_market(body) == {"market": ["Market open", "open"], "clock": ["2024-03-04 10:30 EST", None]}
        # Paused by its operator, the replay's time stands still: the header says so (not just "open"), live
        # and on a reload, and a page that connects then is not told otherwise.
        for action, said in (("pause", "Market open (paused)"), ("resume", "Market open")):
            await d.master.market.control(action)
            assert (await next_header(orders))["market"] == [said, "open"]
            _, body = await site.get("/orders")
            assert header_market(body)["market"] == [said, "open"]
            late = await websocket(site, site.url)
            await bounded(late.opened, "the connection")
            page = late.opened.result
            page.sendMessage(json.dumps({"page": "orders"}).encode())
            assert (await next_header(late))["market"] == [said, "open"]
            page.sendClose()
        times = []
        while not worker.quotes.all():  # the first session, an hour at a time, to its close
            assert len(times) < 8, times
            await d.tick()
            live = await next_header(orders)
            _, body = await site.get("/orders")
            assert live == header_market(body)
            times.append(live["clock"][0])
        # (in the market's time zone, New York's: a session from 09:30 to 16:00)
        assert times == ["2024-03-04 11:30 EST", "2024-03-04 12:30 EST", "2024-03-04 13:30 EST",
                         "2024-03-04 14:30 EST", "2024-03-04 15:30 EST",
                         "2024-03-05 09:30 EST"]  # the close played: market time waits at the next open
        [symbol, *_] = [q["symbol"] for q in worker.quotes.all()]
        assert fmt.when(worker.quotes.get(symbol)["time"]) == "2024-03-04 16:00 EST"  # the price's time

        # An asset page: its prices and the header in one message; the last session played, the replay ends
        # and the market is closed for good.
        asset = await opened_page(site, {"page": "asset", "symbol": symbol, "interval": "1d"})
        while not any(q["time"].day == 5 for q in worker.quotes.all()):
            assert len(times) < 16, times
            await d.tick()
            live = await next_header(asset)
            assert await next_header(orders) == {k: live[k] for k in ("market", "clock")}  # every page, alike
            times.append(live["clock"][0])
        assert live[f"quote.{symbol}.price"][0] == fmt.price(worker.quotes.get(symbol)["price"])
        _, body = await site.get(f"/asset/{symbol}")
        assert header_market(body) == {k: live[k] for k in ("market", "clock")}
        assert live["market"] == ["Market closed", "closed"] and live["clock"] == ["2024-03-06 09:30 EST", None]


@pytest_twisted.ensureDeferred
async def test_a_live_update_bigger_than_what_a_page_may_send_still_reaches_the_page(tmp_path, settings, clock):
    """The orders page of someone with many orders: its refreshed table is far more than the 4 KB a page may
    send the server; it came to nothing ("tried to send WebSocket message ... exceeding payload limit"), and the
    page went on showing an expired order as open, with a Cancel button that could only fail."""
    async with website(tmp_path, settings, Database.default_url(str(tmp_path)), clock, fill_model="ideal") as (
            d, worker, site):
        _, forward = await signed_up(site, worker, "otto")
        for n in range(12):
            await forward(commands.PlaceOrder, symbol="AAPL", side="buy", type="limit", limit_price="1.00",
                          time_in_force="gtc", quantity="1", client_order_id=f"cheap-{n}")
        live = await opened_page(site, {"page": "orders"})
        from papertrader.worker.web.live import MAX_MESSAGE

        last = await forward(commands.PlaceOrder, symbol="AAPL", side="buy", type="market", time_in_force="day",
                             quantity="1", client_order_id="now")
        mark = f'data-order="{last["uuid"]}"'
        await d.tick()  # it fills: the page hears of it, and gets its tables again
        toast = await next_message(live, "toast")
        assert toast["text"].startswith("Filled"), toast
        for _ in range(3):  # (the refresh the order's arrival began may come first)
            sections = (await next_message(live, "html"))["v"]
            if mark in sections["closed-orders"]:
                break
        assert mark in sections["closed-orders"] and mark not in sections["open-orders"], sections
        assert len(json.dumps(sections)) > MAX_MESSAGE  # the twelve orders still open: 12 KB


def test_the_cores_words_of_bracket_orders_are_the_websites():
    """The core names the other order of a bracket by number ('its entry, order 12'): the words before it say which
    it is; its prices are the website's, and its classes are written as the pages write them."""
    said = fmt.said
    assert said("order 13 is held until its entry, order 12, fills: cancel the entry to cancel the whole bracket"
                " order", "Sell 4 AAPL") == ("Sell 4 AAPL is held until its entry fills: cancel the entry to cancel"
                                             " the whole bracket order")
    assert said("the other exit, order 9, filled the rest") == "the other exit filled the rest"
    assert said("its entry, order 7, ended unfilled (canceled)") == "its entry ended unfilled (canceled)"
    assert said("an bracket order is given by quantity, not notional") == \
        "a bracket order is given by quantity, not notional"
    assert said("an oco order is a limit order (its take-profit) with a stop-loss") == \
        "an OCO order is a limit order (its take-profit) with a stop-loss"
    assert said("a buy oco order buys back a short position, and you are long 10 AAPL: a sell oco order closes it") \
        == "a buy OCO order buys back a short position, and you are long 10 AAPL: a sell OCO order closes it"
    assert said("the take-profit (100.00) must be at least a cent above the last price (187.2500)") == \
        "the take-profit ($100.00) must be at least a cent above the last price ($187.25)"
    # A refusal that names an exit's price marks that field, not the entry's limit or stop price.
    assert views.named_fields("A stop-loss limit price needs a stop-loss stop price.", views.ORDER_FIELDS) == \
        ["t-stop_loss_limit", "t-stop_loss"]
    assert views.named_fields("The take-profit ($1.00) must be at least a cent above the entry's limit price"
                              " ($5.00).", views.ORDER_FIELDS) == ["t-take_profit", "t-limit_price"]


def order_row(body, section, uuid):
    """The row of the order ``uuid`` in the table ``section`` of a page."""
    table = body.split(f'data-section="{section}"', 1)[1].split("</tbody>", 1)[0]
    return re.search(rf'<tr data-order="{uuid}".*?</tr>', table, re.S).group(0)


@pytest_twisted.ensureDeferred
async def test_a_bracket_order_from_the_ticket_holds_its_exits_until_it_fills(tmp_path, settings, clock,
                                                                              database_url):
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "bea")
        price = worker.quotes.get("AAPL")["price"]
        above, below = (price * Decimal("1.5")).quantize(Decimal("0.01")), (price / 2).quantize(Decimal("0.01"))
        ticket = dict(side="buy", type="market", amount_by="shares", qty="4", time_in_force="gtc",
                      take_profit=str(above), stop_loss=str(below))
        # The ticket shows the exits; its preview says what they will do.
        _, body = await site.get("/asset/AAPL")
        assert 'id="t-take_profit"' in body and 'id="t-stop_loss"' in body and 'id="t-stop_loss_limit"' in body
        response, text = await site.get("/asset/AAPL/preview?" + urlencode(ticket))
        note = json.loads(text)["note"]
        assert note.startswith(f"A bracket order: a take-profit at {fmt.price(above)} and a stop-loss at"
                               f" {fmt.price(below)}, held until this order fills, then open to sell what it bought;"
                               " whichever fills first cancels the other."), note
        # Exits on the wrong side: refused as every refusal is, the fields as typed, the one it names marked.
        body = await site.refused("/asset/AAPL/order", dict(ticket, take_profit=str(below), stop_loss="1.00",
                                                            csrf=csrf, client_order_id="b-0"), "/asset/AAPL")
        assert (f"The take-profit ({fmt.price(below)}) must be at least a cent above the last price"
                f" ({fmt.price(price)}).") in body
        assert 'data-fields="t-take_profit"' in body and f'value="{below}"' in body
        assert '<details class="exits more-rules" data-exits="yes" open>' in body
        # A day-only type with exits: said in the website's words, before the master is asked.
        body = await site.refused("/asset/AAPL/order", dict(ticket, time_in_force="ioc", csrf=csrf), "/asset/AAPL")
        assert "An order with exits (a take-profit or a stop-loss) takes time in force Day or GTC." in body

        # Placed: the message names its exits, held until it fills.
        response, _ = await site.post("/asset/AAPL/order", dict(ticket, csrf=csrf, client_order_id="b-1"))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/asset/AAPL")
        assert (f"Buy 4 AAPL in portfolio default (at the market, Good till canceled): open. A bracket order: its"
                f" take-profit (limit {fmt.price(above)}) and stop-loss (stop {fmt.price(below)}), held until it"
                " fills.") in body, body
        # The ticket keeps the order's kind for the next one (Buy, Market, GTC), not its amount or prices.
        assert '<option value="gtc" selected>' in body and '<option value="market" selected>' in body
        assert 'id="t-qty" name="qty" type="text" inputmode="decimal" value=""' in body
        assert f'value="{above}"' not in body
        entry = await forward(commands.GetOrder, client_order_id="b-1")
        assert entry["order_class"] == "bracket"
        # The entry of a bracket, open, is not replaced: its replace page says what to do instead.
        _, page = await site.get(f"/orders/{entry['uuid']}/replace")
        assert "which is not replaced: cancel it (its exits go with it) and place a new one." in page and \
            "<form method" not in page.split("<main", 1)[1]
        take, stop = entry["legs"]
        assert (take["leg"], take["status"], stop["leg"], stop["status"]) == ("take_profit", "held", "stop_loss",
                                                                              "held")
        link = f'<a href="/orders/{entry["uuid"]}">Buy 4 AAPL</a>'

        # The orders page: each part says what it is, an exit links to its entry; a held exit has no button (it goes
        # with its entry: it says so); an exit's prices may be replaced, not the entry, which is canceled.
        _, body = await site.get("/orders")
        row = order_row(body, "open-orders", take["uuid"])
        assert '<span class="badge held">held</span>' in row and f"Take-profit of {link}" in row
        assert "<button" not in row and 'aria-label="Replace: Sell 4 AAPL (' in row
        assert f"Held until {link} fills: cancel that order to cancel it" in row
        assert f"Stop-loss of {link}" in order_row(body, "open-orders", stop["uuid"])
        row = order_row(body, "open-orders", entry["uuid"])
        assert "Bracket entry" in row and 'aria-label="Cancel: Buy 4 AAPL (' in row and "Replace" not in row
        # An exit's page: held until its entry fills, no Cancel button, every part of the bracket listed.
        _, body = await site.get(f"/orders/{take['uuid']}")
        assert f"Held until {link} fills" in body and "Cancel order" not in body
        assert 'id="parts-title">The bracket order</h2>' in body
        assert f'href="/orders/{stop["uuid"]}">Sell 4 AAPL</a>' in body and "Sell 4 AAPL (this order)" in body
        # The entry's page lists its exits; canceling it would cancel them.
        _, body = await site.get(f"/orders/{entry['uuid']}")
        assert f'href="/orders/{take["uuid"]}">Sell 4 AAPL</a>' in body and "Cancel order and its exits" in body
        # The number the command line shows for it leads to the same page; a number not yours, to none.
        response, _ = await site.get(f"/orders/{entry['id']}")
        assert (response.code, header(response, b"location")) == (303, f"/orders/{entry['uuid']}")
        assert (await site.get("/orders/987654321"))[0].code == 404
        # A held exit canceled anyway (a form of an older page): refused, in the website's words.
        response, _ = await site.post(f"/orders/{take['uuid']}/cancel", dict(csrf=csrf))
        _, body = await site.get("/orders")
        assert ("Sell 4 AAPL is held until its entry fills: cancel the entry to cancel the whole bracket order."
                in body), body
        assert not re.search(r"order [0-9]", body)

        # The orders page, live: the entry fills, its exits open (said so), the table comes again.
        live = await opened_page(site, {"page": "orders"})
        await d.tick()
        toasts = [(await next_message(live, "toast"))["text"] for _ in range(3)]
        assert any(t.startswith("Filled: Buy 4 AAPL") for t in toasts), toasts
        assert f"Opened: Sell 4 AAPL (take-profit, limit {fmt.price(above)}): its entry filled" in toasts, toasts
        assert f"Opened: Sell 4 AAPL (stop-loss, stop {fmt.price(below)}): its entry filled" in toasts, toasts
        for _ in range(3):  # (the refresh an earlier event began may come first)
            sections = (await next_message(live, "html"))["v"]
            if "badge held" not in sections["open-orders"]:
                break
        assert 'aria-label="Cancel: Sell 4 AAPL (' in sections["open-orders"] and "badge held" not in \
            sections["open-orders"]
        # Reloaded: both exits open, with their buttons, still linked to their entry (filled, among the closed).
        _, body = await site.get("/orders")
        row = order_row(body, "open-orders", take["uuid"])
        assert '<span class="badge new">open</span>' in row and f"Take-profit of {link}" in row
        assert 'aria-label="Cancel: Sell 4 AAPL (' in row and 'aria-label="Replace: Sell 4 AAPL (' in row
        assert '<span class="badge filled">filled</span>' in order_row(body, "closed-orders", entry["uuid"])
        # Canceling one exit cancels the other, and the message says so.
        response, _ = await site.post(f"/orders/{take['uuid']}/cancel", dict(csrf=csrf))
        _, body = await site.get("/orders")
        assert (f"Canceled: Sell 4 AAPL (limit {fmt.price(above)}). The other exit is canceled with it.") in body
        assert (await forward(commands.GetOrder, order_uuid=stop["uuid"]))["status"] == "canceled"
        assert "canceled" in order_row(body, "closed-orders", stop["uuid"])

        # The shares held: exits on a sale of them make an OCO order, a limit sell whose limit is the take-profit.
        # Left at Market with a take-profit and a stop-loss, the ticket makes it: the take-profit typed once.
        oco = dict(ticket, side="sell", csrf=csrf)
        body = await site.refused("/asset/AAPL/order", dict(oco, type="stop", stop_price="1", client_order_id="o-0"),
                                  "/asset/AAPL")
        assert ("Exits on a sale of shares you hold make an OCO order, which is a limit order: choose Limit (its"
                " limit price is the take-profit) and a stop-loss stop price.") in body
        response, _ = await site.post("/asset/AAPL/order", dict(oco, client_order_id="o-1"))
        assert response.code == 303
        _, body = await site.get("/asset/AAPL")
        assert (f"Sell 4 AAPL in portfolio default (limit {fmt.price(above)}, Good till canceled): open. An OCO order,"
                f" with its stop-loss (stop {fmt.price(below)}): whichever fills first cancels the other.") in body
        first = await forward(commands.GetOrder, client_order_id="o-1")
        [other] = first["legs"]
        assert (first["order_class"], first["leg"], other["leg"], other["status"]) == ("oco", "take_profit",
                                                                                      "stop_loss", "new")
        _, body = await site.get("/orders")
        assert "OCO take-profit" in order_row(body, "open-orders", first["uuid"])
        assert f'OCO stop-loss, with <a href="/orders/{first["uuid"]}">Sell 4 AAPL</a>' in \
            order_row(body, "open-orders", other["uuid"])
        # An exit's replace page moves its price only; the new stop-loss stays the OCO's.
        _, body = await site.get(f"/orders/{other['uuid']}/replace")
        form = body.split("<main", 1)[1]
        assert 'name="stop_price"' in form and 'name="qty"' not in form and 'name="time_in_force"' not in form
        assert "An exit keeps its shares and time in force" in form
        response, _ = await site.post(f"/orders/{other['uuid']}/replace", dict(csrf=csrf, stop_price=str(below + 1)))
        assert response.code == 303
        moved = await forward(commands.GetOrder, client_order_id="o-1")
        [new_stop] = [leg for leg in moved["legs"] if leg["status"] == "new"]
        assert (new_stop["leg"], new_stop["stop_price"], new_stop["replaces_uuid"]) == ("stop_loss", below + 1,
                                                                                       other["uuid"])
        # The entry, filled, has nothing left to replace: its page says so (not to cancel it).
        _, body = await site.get(f"/orders/{entry['uuid']}/replace")
        assert "This order is filled: there is nothing left of it to replace." in body and \
            "<form method" not in body.split("<main", 1)[1]


@pytest_twisted.ensureDeferred
async def test_the_replace_page_shows_the_market_as_it_moves(tmp_path, settings, clock, database_url):
    """Moving a limit is done against the market as it is: the replace page shows the symbol's last price, bid
    and ask, kept up to date like the asset's page."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "ivan")
        order = await forward(commands.PlaceOrder, client_order_id="low", side="buy", symbol="AAPL", quantity="2",
                              type="limit", limit_price="1", time_in_force="gtc")
        _, body = await site.get(f"/orders/{order['uuid']}/replace")
        quote = worker.quotes.get("AAPL")
        assert 'data-page="replace" data-symbol="AAPL"' in body
        assert "Limit order: limit $1.00. The old order ends as replaced" in body  # (it said 'Limit, limit $1.00.')
        assert header_market(body)["clock"][0] == fmt.when(d.cluster.master.market_clock.now())  # as every page
        assert f'<dt>Last</dt><dd><span data-live="quote.AAPL.price">{fmt.price(quote["price"])}</span>' in body
        assert f'<span data-live="quote.AAPL.ask">{fmt.price(quote["ask"])}</span>' in body
        page = await opened_page(site, {"page": "replace", "symbol": "AAPL"})
        before = quote["price"]
        for _ in range(20):
            await d.tick()
            if worker.quotes.get("AAPL")["price"] != before:
                break
        values = {}
        while "quote.AAPL.price" not in values:
            values = (await next_message(page, "set"))["v"]
        assert values["quote.AAPL.price"][0] == fmt.price(worker.quotes.get("AAPL")["price"])
        assert not any(key.startswith("quote.") and "AAPL" not in key for key in values)


def test_a_flash_message_fits_its_cookie_whatever_was_typed():
    """The message is always kept whole (its 400 characters, even if none is ASCII); what was typed in the form
    goes, longest first, until the cookie fits the browser's limit."""
    from twisted.web.http import Request
    from twisted.web.test.requesthelper import DummyChannel

    from papertrader.worker.web import security

    message = "é" * 400
    request = Request(DummyChannel())
    security.set_flash(request, message, "error", w="ticket", f={"qty": "9" * 3000, "limit_price": "1.00"})
    [value] = [c.split(b";")[0].split(b"=", 1)[1] for c in request.cookies]
    assert len(value) <= security.MAX_FLASH
    later = Request(DummyChannel())
    later.received_cookies = {security.FLASH_COOKIE: value}
    flash = security.take_flash(later)
    assert flash == {"m": message, "k": "error", "w": "ticket", "f": {"limit_price": "1.00"}}


def test_the_whole_equity_range_counts_from_the_starting_cash_as_the_total_pl_does():
    """'All' starts at the first trade's day, whose point is the equity after that day's trading: its change
    counted from that point left out the first day's result (-$31.26 beside a total P&L of -$58.59)."""
    day = 86400
    history = dict(timestamps=[1263254400 + n * day for n in range(3)], timeframe="1D", since_start="first trade",
                   equity=[Decimal("99972.67"), Decimal("99950.00"), Decimal("99941.41")])
    portfolio = dict(equity=Decimal("99941.41"), cash=Decimal("97813.00"), buying_power=Decimal("97813.00"),
                     change_today=Decimal("-8.59"), starting_cash=Decimal("100000.00"), positions=[],
                     realized_pl=Decimal("0"), unrealized_pl=Decimal("-58.59"), portfolio="default")
    page = views.dashboard_page(views.Chrome(csrf="x" * 64, username="amy"), portfolio, history, "ALL")
    note = re.sub(r"<[^>]+>", "", re.search(r'<p class="chart-note">(.*?)</p>', page).group(1))
    assert note == "All: -$58.59 since it started (its first trade: 2010-01-12)", note
    assert 'data-range-base="100000"' in page
    points = json.loads(html_module.unescape(re.search(r'data-points="([^"]+)"', page).group(1)))
    assert points[0] == [1263254400 - day, "100000"] and len(points) == 4
    # Another range counts from the equity at the close before it, as the API's profit and loss (base_value):
    # counted from its own first point, it left that day's result out and differed from the API's.
    page = views.dashboard_page(views.Chrome(csrf="x" * 64, username="amy"), portfolio,
                                dict(history, since_start=None, base_value=Decimal("99990.00")), "1M")
    note = re.sub(r"<[^>]+>", "", re.search(r'<p class="chart-note">(.*?)</p>', page).group(1))
    assert note == "Month: -$48.59 since the close before 2010-01-12", note
    assert 'data-range-base="99990"' in page


def test_todays_change_shows_its_amount_and_its_percent_of_the_days_starting_equity():
    """The percent on a line of its own (beside the amount it wrapped in the summary card at 1280 px); none
    when the day began with nothing (a new account)."""
    portfolio = dict(equity=Decimal("99941.41"), cash=Decimal("97813.00"), buying_power=Decimal("97813.00"),
                     change_today=Decimal("-8.59"), starting_cash=Decimal("100000.00"), positions=[],
                     realized_pl=Decimal("0"), unrealized_pl=Decimal("-58.59"), portfolio="default")
    values = views.summary_values(portfolio)
    assert values["change_today"] == ("-$8.59", "down")
    assert values["change_today_note"] == ("-0.01%", None)  # -8.59 / 99,950.00
    values = views.summary_values(dict(portfolio, equity=Decimal("5.00"), change_today=Decimal("5.00")))
    assert values["change_today"][0] == "+$5.00" and values["change_today_note"] == ("", None)


@pytest_twisted.ensureDeferred
async def test_watchlists_on_the_trade_page(tmp_path, settings, clock, database_url):
    """Made, filled, mended and deleted from the Trade page, each list with its symbols' prices; the same lists
    the command line and the API see; a refusal is said beside the list, with what was typed kept."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "wendy")
        await d.tick()  # prices
        response, _ = await site.post("/watchlists", dict(name="Tech", symbols="aapl, msft"))
        assert response.code == 403  # not without the token
        response, _ = await site.post("/watchlists", dict(name="Tech", symbols="aapl, msft", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/assets")
        _, body = await site.get("/assets")
        assert "<h3>Tech</h3>" in body
        card = body[body.find('id="watchlists"'):]
        assert "Watchlist Tech created with AAPL, MSFT." in card  # said, not only shown; beside the lists
        assert card.find('href="/asset/AAPL"') < card.find('href="/asset/MSFT"')  # in the list's order
        price = fmt.price(d.master.board.get("MSFT").price)
        assert price in card and 'aria-label="Remove MSFT from Tech"' in card
        # Refused: said beside the list, with the symbols typed kept; nothing of the change made.
        body = await site.refused("/watchlists/add", dict(name="Tech", symbols="TSLA NOPE", csrf=csrf),
                                  "/assets")
        assert "Unknown symbol 'NOPE': traded symbols are AAPL, MSFT, TSLA." in body
        assert 'value="TSLA NOPE"' in body
        assert 'data-fields="w-add-0"' in body  # the field typed in is the one marked (not the new list's)
        assert (await forward(commands.GetWatchlist, watchlist_name="Tech"))["symbols"] == ["AAPL", "MSFT"]
        response, _ = await site.post("/watchlists/add", dict(name="Tech", symbols="TSLA", csrf=csrf))
        assert response.code == 303
        assert "TSLA is on your watchlist Tech." in (await site.get("/assets"))[1]
        response, _ = await site.post("/watchlists/remove", dict(name="Tech", symbol="AAPL", csrf=csrf))
        assert response.code == 303
        assert "AAPL removed from your watchlist Tech." in (await site.get("/assets"))[1]
        assert (await forward(commands.GetWatchlist, watchlist_name="Tech"))["symbols"] == ["MSFT", "TSLA"]
        # From an asset's page: added to the list chosen, and back to the page, which says so.
        _, body = await site.get("/asset/AAPL")
        assert 'aria-label="Add AAPL to a watchlist"' in body and '<option value="Tech">' in body
        response, _ = await site.post("/watchlists/add", dict(name="Tech", symbols="AAPL", back="/asset/AAPL",
                                                              csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/asset/AAPL")
        assert "AAPL is on your watchlist Tech." in body and "In your watchlist: Tech." in body
        assert 'aria-label="Add AAPL to a watchlist"' not in body  # in every list already
        assert (await forward(commands.GetWatchlist, watchlist_name="Tech"))["symbols"] == ["MSFT", "TSLA", "AAPL"]
        body = await site.refused("/watchlists", dict(name="Tech", csrf=csrf), "/assets")
        assert "You already have a watchlist named 'Tech': choose another name." in body
        # A name no list can have (a NUL), or a symbol left empty: said.
        body = await site.refused("/watchlists/delete", dict(name="Te\x00ch", csrf=csrf), "/assets")
        assert "contains a NUL character." in body
        body = await site.refused("/watchlists/remove", dict(name="Tech", symbol=" ", csrf=csrf), "/assets")
        assert "Choose a symbol to remove." in body
        response, _ = await site.post("/watchlists/delete", dict(name="Tech", csrf=csrf))
        assert response.code == 303
        _, body = await site.get("/assets")
        assert "Watchlist Tech deleted." in body and "<h3>Tech</h3>" not in body
        assert (await forward(commands.Watchlists))["watchlists"] == []


@pytest_twisted.ensureDeferred
async def test_the_page_of_a_company_a_replay_lists_later_says_when_it_starts(tmp_path, settings, clock):
    """Found by a walkthrough: /asset/FB in a replay of 2010 said "There is no asset 'FB' here" (the page reads
    the worker's prices): it says when its prices start, as an order's refusal does."""
    database_url = Database.default_url(str(tmp_path))
    from tests.test_http_market_data import FIXTURE

    later = tmp_path / "NEW.csv"
    later.write_text("date,open,high,low,close,volume\n" + "".join(
        f"2024-03-{day:02d},10.00,10.50,9.75,10.25,1000\n" for day in (7, 8, 11, 12, 13, 14, 15)))
    async with website(tmp_path, settings, database_url, clock, provider="replay", assets=(),
                       replay_files=f"{FIXTURE},{later}", replay_start="2024-03-04") as (d, worker, site):
        await signed_up(site, worker, "fay")
        response, body = await site.get("/asset/NEW")
        assert response.code == 404
        assert "NEW does not trade yet: its prices start on 2024-03-07" in body
        response, body = await site.get("/asset/NOPE")
        assert response.code == 404 and "There is no asset 'NOPE' here" in body



@pytest_twisted.ensureDeferred
async def test_prices_are_shown_with_cents_as_a_broker_shows_them(tmp_path, settings, clock, database_url):
    """Quotes, limits and a position's average price of $1 and more with 2 decimals, below $1 with up to 4; a
    fill at the price it was filled at (a market buy fills with slippage at a price of 4 decimals, 313.2527), as
    a trade confirmation says it, so that its shares x its price is what it cost; what was stored and what a
    form sends stay exact."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "pia")
        order = dict(side="buy", type="market", amount_by="shares", qty="3", time_in_force="day", csrf=csrf)
        assert (await site.post("/asset/AAPL/order", dict(order, client_order_id="bought")))[0].code == 303
        await d.tick()
        [held] = (await forward(commands.Portfolio))["positions"]
        average = held["average_price"]
        assert average != average.quantize(Decimal("0.01"))  # the fill's own price: more than cents
        low = dict(order, type="limit", time_in_force="gtc")
        for limit, ident in (("300.5", "dollars"), ("0.5123", "cents")):
            response, _ = await site.post("/asset/AAPL/order", dict(low, limit_price=limit, client_order_id=ident))
            assert response.code == 303
        placed = {o["client_order_id"]: o for o in (await forward(commands.Orders, limit=10))["orders"]}
        bought = placed["bought"]["uuid"]
        pages = {}
        for path in ("/", "/asset/AAPL", "/assets", "/orders", f"/orders/{bought}", "/history"):
            response, pages[path] = await site.get(path)
            assert response.code == 200, path
        exact = fmt.exact_price(average)
        assert exact == f"${average.normalize():f}" and len(exact.split(".")[1]) > 2
        for path in ("/", "/asset/AAPL", "/assets"):  # no fill shown: prices in cents
            assert re.findall(r"\$[0-9,]*[1-9][0-9,]*\.[0-9]{3,}", pages[path]) == [], path  # none like $313.2527
        shown = fmt.money(average)  # its cents, rounded by the one rule (half to even)
        assert f'data-label="Avg price">{shown}<' in pages["/"]
        # The fill: at its own price, in the orders, the order's page and the history.
        assert f"3 / 3 @ {exact}" in pages["/orders"] and f'data-label="Price">{exact}<' in pages["/history"]
        assert f'data-label="Price">{exact}<' in pages[f"/orders/{bought}"]
        [fill] = [a for a in (await forward(commands.Activities))["activities"] if a["kind"] == "fill"]
        assert -fill["amount"] == round_money(3 * average)  # (no commission): 3 x the price shown, to the cent
        quote = worker.quotes.get("AAPL")
        assert quote["bid"] == quote["bid"].quantize(Decimal("0.01")) < quote["price"] < quote["ask"]  # on a cent each
        for side in ("bid", "ask"):
            assert f'>{fmt.money(quote[side])}<' in pages["/asset/AAPL"]
        # A limit price: $300.50, and a sub-dollar one to the 1/100 of a cent it is priced in ($0.5123); the form
        # that replaces the order still holds the exact price the master takes.
        assert 'data-label="Price">$300.50<' in pages["/orders"] and 'data-label="Price">$0.5123<' in pages["/orders"]
        _, body = await site.get(f"/orders/{placed['dollars']['uuid']}/replace")
        assert 'name="limit_price" type="text" inputmode="decimal" value="300.5"' in body
        # Moved as people write prices, as on the order ticket ('$1,250.50'); a '$' among the shares is refused.
        response, _ = await site.post(f"/orders/{placed['dollars']['uuid']}/replace",
                                      dict(csrf=site.csrf(body), limit_price="$1,250.50", qty="10"))
        assert (response.code, header(response, b"location")) == (303, "/orders")
        [moved] = [o for o in (await forward(commands.Orders, limit=10))["orders"]
                   if o.get("replaces_uuid") == placed["dollars"]["uuid"]]
        assert (moved["limit_price"], moved["quantity"]) == (Decimal("1250.50"), 10)
        # The old order's replace page (Back after replacing) offers no form: it was replaced, by this one.
        _, body = await site.get(f"/orders/{placed['dollars']['uuid']}/replace")
        assert "This order is replaced: there is nothing left of it to replace." in body
        assert f'href="/orders/{moved["uuid"]}/replace"' in body and 'name="limit_price"' not in body
        _, body = await site.get(f"/orders/{moved['uuid']}/replace")
        body = await site.refused(f"/orders/{moved['uuid']}/replace", dict(csrf=site.csrf(body), qty="$5"),
                                  f"/orders/{moved['uuid']}/replace")
        assert "The amount is in shares, not dollars." in body
        assert (await forward(commands.Portfolio))["positions"][0]["average_price"] == average  # nothing stored changed


def test_the_replace_page_previews_what_the_new_order_keeps_of_buying_power():
    """Replacing a buy with more shares or a higher limit took buying power the page never showed: its refusal came
    only after sending (the order ticket previews it; the replace page did not)."""
    from papertrader.config import Settings
    from papertrader.worker.web import preview

    rules = preview.rules(Settings(commission_model="per_order", commission=Decimal("1.00")))
    quote = {"price": Decimal("100.00")}
    old = dict(symbol="AAPL", side="buy", type="limit", time_in_force="gtc", quantity=Decimal("10"),
               filled_quantity=Decimal("4"), average_price=Decimal("90"), commission=Decimal("1.00"),
               limit_price=Decimal("90.00"), status="partially_filled")
    portfolio = dict(buying_power=Decimal("1000.00"), positions=[dict(symbol="AAPL", quantity=Decimal("4"))],
                     kind="cash")
    # The old order keeps 6 x $90 (its commission paid); the new one, by default for the 6 left, at $95: 570 + 1.
    shown = preview.replace_preview({"limit_price": "$95"}, old, quote, portfolio, rules)
    assert (shown["ok"], shown["cost"], shown["after"], shown["buying_power"]) == (True, "$571.00", "$969.00",
                                                                                     "$1,000.00")
    assert shown["note"] == ("The old order keeps $540.00 of your buying power; replaced, that is freed and the new"
                             " one keeps $571.00."), shown["note"]
    shown = preview.replace_preview({"qty": "20", "limit_price": "95"}, old, quote, portfolio, rules)
    assert (shown["ok"], shown["cost"], shown["after"]) == (False, "$1,901.00", "-$361.00")
    assert shown["note"].startswith("Not enough buying power for this replacement: the new order would keep"
                                    " $1,901.00, and $1,540.00 is free once the old one's $540.00 is freed.")
    shown = preview.replace_preview({"qty": "$5"}, old, quote, portfolio, rules)
    assert not shown["ok"] and shown["note"] == "The amount is in shares, not dollars."
    shown = preview.replace_preview({"qty": "-3"}, old, quote, portfolio, rules)
    assert not shown["ok"] and shown["note"].startswith("Shares: "), shown
    # A sale of shares held keeps none; a margin portfolio's short sale keeps its value as a new one would.
    sale = dict(old, side="sell", filled_quantity=Decimal("0"), commission=Decimal("0.00"))
    shown = preview.replace_preview({"limit_price": "120"}, sale, quote, portfolio, rules)
    assert shown["ok"] and shown["note"] == "A sale of AAPL you hold keeps no buying power." and shown["cost"] == "—"
    short = dict(portfolio, kind="margin", positions=[])
    shown = preview.replace_preview({"limit_price": "120"}, sale, quote, short, rules)
    assert (shown["ok"], shown["cost"]) == (True, "$1,201.00")  # 10 x $120 (above the last price) and commission
    assert preview.replace_preview({}, old, None, portfolio, rules)["note"].startswith("No price yet")


@pytest_twisted.ensureDeferred
async def test_the_replace_page_asks_the_preview_as_the_ticket_does(tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "rex")
        placed = await forward(commands.PlaceOrder, client_order_id="low", side="buy", symbol="AAPL", quantity="3",
                               type="limit", limit_price="1.00", time_in_force="gtc")
        _, body = await site.get(f"/orders/{placed['uuid']}/replace")
        assert 'class="stack replace-form"' in body and 'id="preview"' in body and 'id="preview-after"' in body
        response, answer = await site.get(f"/orders/{placed['uuid']}/replace/preview?" +
                                          urlencode(dict(qty="5", limit_price="2.00")))
        assert header(response, b"content-type").startswith("application/json")
        answer = json.loads(answer)
        power = (await forward(commands.Portfolio))["buying_power"]
        assert (answer["ok"], answer["cost"], answer["buying_power"], answer["after"]) == (
            True, "$10.00", fmt.money(power), fmt.money(power + 3 - 10)), answer
        # An order that is gone: the answer says so (no traceback, no 500).
        await forward(commands.CancelOrder, order_uuid=placed["uuid"])
        response, answer = await site.get(f"/orders/{uuid.uuid4()}/replace/preview?qty=1")
        answer = json.loads(answer)
        assert response.code == 200 and not answer["ok"] and answer["note"].endswith("Reload the page."), answer


@pytest_twisted.ensureDeferred
async def test_a_games_rules_and_a_fills_pricing_are_said_in_words(tmp_path, settings, clock, database_url):
    """Not 'per_order:1.00' or 'bar(half_spread_bps=2, ...)': what a game charges and how its fills are priced, in
    words a person reads; a game without its own says what the server's are."""
    async with website(tmp_path, settings, database_url, clock, commission_model="per_order",
                       commission=Decimal("1.00")) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "quinn")
        start, end = datetime(2026, 9, 1, tzinfo=timezone.utc), datetime(2027, 1, 1, tzinfo=timezone.utc)
        said = {}
        for name, commission, fills in (("Share Cup", "per_share:0.005:1.00:10", "ideal"),
                                        ("Percent Cup", "percent:0.1", "bar"), ("Free Cup", "zero", None),
                                        ("Plain Cup", None, None)):
            await forward(commands.CreateGame, name=name, starting_cash="10000", start=start, end=end,
                          commission=commission, fill_model=fills)
            _, body = await site.get("/games/" + name.replace(" ", "%20"))
            said[name] = dict(re.findall(r"<dt>(Commission|Fills)</dt><dd>([^<]*)</dd>", body))
        assert said["Share Cup"] == {"Commission": "$0.005 per share (min $1.00, max $10.00)",
                                     "Fills": "Simple: orders are judged at each update's closing price and"
                                              " fill in full there, with no spread"}
        assert said["Percent Cup"]["Commission"] == "0.1% of the trade"
        assert said["Percent Cup"]["Fills"].startswith("Realistic: a market order pays a small spread")
        assert said["Free Cup"]["Commission"] == "none"
        assert said["Plain Cup"]["Commission"] == "$1.00 per order (the server's)"
        assert said["Plain Cup"]["Fills"] == said["Percent Cup"]["Fills"] + " (the server's)"
        # A fill's page says how it was priced, by the same name the create form offers.
        order = dict(side="buy", type="market", amount_by="shares", qty="1", time_in_force="day", csrf=csrf)
        assert (await site.post("/asset/AAPL/order", order))[0].code == 303
        await d.tick()
        [filled] = (await forward(commands.Orders, status="closed", limit=10))["orders"]
        _, body = await site.get(f"/orders/{filled['uuid']}")
        assert '<td data-label="Priced by">Realistic (spread, volume)</td>' in body and "half_spread" not in body
        _, body = await site.get("/games")
        assert '<option value="bar">Realistic (spread, volume)</option>' in body



@pytest_twisted.ensureDeferred
async def test_a_dividend_in_the_history_is_money_like_the_rest(tmp_path, settings, clock, database_url):
    """The replay's XYZ splits 2-for-1 on 2024-03-08 and pays $0.50 a share on 2024-03-12 (tests/fixtures/replay)."""
    import os

    replay = os.path.join(os.path.dirname(__file__), "fixtures", "replay")
    async with website(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=replay,
                       replay_start="2024-03-04", fill_model="ideal") as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "rosa")
        order = dict(side="buy", type="market", amount_by="shares", qty="3", time_in_force="day", csrf=csrf)
        assert (await site.post("/asset/XYZ/order", order))[0].code == 303
        for _ in range(10):
            if worker.quotes.get("XYZ")["time"].date().isoformat() >= "2024-03-12":
                break
            await d.tick()
        _, body = await site.get("/history")
        dividend, split, _ = history_rows(body)
        assert (dividend["Activity"], dividend["Shares"], dividend["Price"], dividend["Amount"]) == (
            "Dividend XYZ", "6", "$0.50", "+$3.00")
        assert dividend["Details"] == "$0.50 per share on 6 shares"  # not '0.5 per share'
        assert (split["Activity"], split["Price"]) == ("Split XYZ", "—")  # no price, not $0.00


@pytest_twisted.ensureDeferred
async def test_a_missing_page_keeps_the_signed_in_header(tmp_path, settings, clock, database_url):
    """A mistyped address while signed in: the page still says who is signed in and has the navigation, not the
    header of a stranger (and a stranger's still offers to sign in)."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        await signed_up(site, worker, "sam")
        for method, path, code in (("get", "/no/such/page", 404), ("get", "/asset/AAPL/nothing", 404),
                                   ("post", "/history", 405)):
            response, body = await (site.get(path) if method == "get" else site.post(path, {}))
            assert response.code == code, path
            assert '<span class="user">sam</span>' in body and 'aria-label="Main"' in body, path
            assert 'action="/signout"' in body and "Go to the dashboard" in body, path
        stranger = Site(site.url)
        response, body = await stranger.get("/no/such/page")
        assert response.code == 404 and 'aria-label="Main"' not in body and 'href="/signin"' in body
        # A session that ended is a stranger's too (its cookie cleared, as on any page).
        token = site.cookies["__Host-pt_session"]
        await worker.gateway.forward(commands.Logout, dict(token=token), "127.0.0.1")
        response, body = await site.get("/no/such/page")
        assert response.code == 404 and 'aria-label="Main"' not in body and "__Host-pt_session" not in site.cookies


@pytest_twisted.ensureDeferred
async def test_the_ticket_warns_of_a_games_rules_before_the_order_is_sent(tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "tess")
        await forward(commands.CreateGame, name="Cap Cup", starting_cash="10000", assets=["AAPL", "MSFT"],
                      max_position="25", start=datetime(2026, 9, 1, tzinfo=timezone.utc),
                      end=datetime(2027, 1, 1, tzinfo=timezone.utc))
        await forward(commands.JoinGame, name="Cap Cup")
        ask = dict(side="buy", type="market", amount_by="shares", time_in_force="day", portfolio="Cap Cup")

        async def preview(symbol, **changes):
            response, answer = await site.get(f"/asset/{symbol}/preview?" + urlencode(dict(ask, **changes)))
            assert response.code == 200
            return json.loads(answer)

        # 10 AAPL (about $3,100) is more than the 25% of $10,000 one position may be in this game: said before it is
        # sent, as the master then refuses it.
        last = worker.quotes.get("AAPL")["price"]
        shown = await preview("AAPL", qty="10")
        assert not shown["ok"] and shown["note"] == (
            f"In Cap Cup one position may be worth at most 25.00% of the portfolio ($2,500.00): AAPL would be worth"
            f" {fmt.money(10 * last)}."), shown
        body = await site.refused("/asset/AAPL/order", dict(ask, qty="10", csrf=csrf), "/asset/AAPL")
        assert "one position may be worth at most 25.00% of the portfolio ($2,500.00 of equity $10,000.00)" in body
        shown = await preview("AAPL", qty="1")
        assert shown["ok"] and "Cap Cup" not in shown["note"]
        shown = await preview("TSLA", qty="1")
        assert not shown["ok"] and shown["note"] == "TSLA is not traded in Cap Cup (its assets: AAPL, MSFT)."
        # The same order from a portfolio outside the game: no game's rule.
        [default] = [p for p in (await forward(commands.Portfolios))["portfolios"] if p["default"]]
        shown = await preview("AAPL", qty="10", portfolio=default["name"])
        assert shown["ok"] and "Cap Cup" not in shown["note"]


@pytest_twisted.ensureDeferred
async def test_an_order_a_games_rule_refuses_names_the_rule_in_the_pages_words(tmp_path, settings, clock,
                                                                               database_url):
    """An order refused by a game's rule was said with the rule's code name ("Game rule max_position: ...",
    "Game rule short: ..."), words found nowhere else on the pages.  It is named as the game's page names it."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "rex")
        await forward(commands.CreateGame, name="Word Cup", starting_cash="10000", assets=["AAPL", "MSFT"],
                      max_position="25", start=datetime(2026, 9, 1, tzinfo=timezone.utc),
                      end=datetime(2027, 1, 1, tzinfo=timezone.utc))
        await forward(commands.JoinGame, name="Word Cup")
        ask = dict(side="buy", type="market", amount_by="shares", time_in_force="day", portfolio="Word Cup",
                   csrf=csrf)
        said = {}
        for rule, symbol, changes in (("assets", "TSLA", dict(qty="1")), ("max_position", "AAPL", dict(qty="10")),
                                      ("short", "MSFT", dict(qty="1", side="sell"))):
            body = await site.refused(f"/asset/{symbol}/order", dict(ask, **changes), f"/asset/{symbol}")
            said[rule] = re.search(r'id="form-error"[^>]*>([^<]*)<', body).group(1)
        assert said["assets"] == ("The game's assets: TSLA is not traded in this game (its assets: AAPL,"
                                  " MSFT)."), said
        assert said["max_position"].startswith("The game's largest position: one position may be worth at most"
                                               " 25.00% of the portfolio ($2,500.00 of equity $10,000.00)"), said
        assert said["short"].startswith("The game's short selling rule: you hold no MSFT in this game's"
                                        " portfolio"), said
        assert not any("max_position" in text or "rule short" in text for text in said.values()), said


@pytest_twisted.ensureDeferred
async def test_a_portfolios_trading_settings_are_changed_on_its_page(tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock, margin_accounts=True) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "uma")
        [main] = [p["name"] for p in (await forward(commands.Portfolios))["portfolios"]]
        await forward(commands.CreatePortfolio, name="Shorts", margin=True)

        async def configuration(name="Shorts"):
            answer = await forward(commands.PortfolioConfiguration, portfolio=name)
            return {k: answer[k] for k in ("no_shorting", "suspend_trade", "fractional_trading")}

        # The portfolio's page shows its three switches as they are, in a form that works without scripts.
        response, body = await site.get("/portfolios/manage?name=Shorts")
        assert response.code == 200 and 'id="settings">Trading settings</h2>' in body
        assert 'action="/portfolios/settings"' in body
        assert 'name="no_shorting" value="yes" aria-describedby' in body  # off
        assert 'name="suspend_trade" value="yes" aria-describedby' in body  # off
        assert 'name="fractional_trading" value="yes" checked' in body  # on
        # A cash portfolio never sells short: no long-only switch there, and the page says why.
        _, body = await site.get(f"/portfolios/manage?name={main}")
        assert 'name="no_shorting"' not in body and 'name="suspend_trade"' in body
        assert "Long only: always, in a cash portfolio — only a margin portfolio can sell short." in body

        # Not without the CSRF token; with it, the boxes ticked are on, the others off, and the page says what
        # changed.
        wanted = dict(name="Shorts", no_shorting="yes", suspend_trade="yes")
        response, _ = await site.post("/portfolios/settings", wanted)
        assert response.code == 403
        assert await configuration() == dict(no_shorting=False, suspend_trade=False, fractional_trading=True)
        response, _ = await site.post("/portfolios/settings", dict(wanted, csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios/manage?name=Shorts")
        assert await configuration() == dict(no_shorting=True, suspend_trade=True, fractional_trading=False)
        _, body = await site.get("/portfolios/manage?name=Shorts")
        assert ("Trading settings of Shorts saved: long only (short sales are refused); trading suspended (new orders"
                " are refused; canceling still works); whole shares only (no fractions, no dollar amounts).") in body
        assert "<dt>Trading</dt><dd>trading suspended · long only · whole shares only</dd>" in body
        assert 'name="no_shorting" value="yes" checked' in body and 'name="suspend_trade" value="yes" checked' in body
        assert 'name="fractional_trading" value="yes" aria-describedby' in body
        response, _ = await site.post("/portfolios/settings", dict(wanted, csrf=csrf))
        _, body = await site.get("/portfolios/manage?name=Shorts")
        assert "Trading settings of Shorts: nothing changed." in body

        # The command line sees the same settings, and what it changes the page shows.
        status, _, err = await d.cli("login", "uma", "--password-stdin", stdin=PASSWORD + "\n", user="uma")
        assert status == 0, err
        status, out, err = await d.cli("portfolio", "configure", "--portfolio", "Shorts", user="uma")
        assert status == 0, err
        assert (json.loads(out)["no_shorting"], json.loads(out)["suspend_trade"]) == (True, True)
        status, out, err = await d.cli("portfolio", "configure", "--portfolio", "Shorts", "--suspend-trade", "off",
                                       user="uma")
        assert status == 0, err
        _, body = await site.get("/portfolios/manage?name=Shorts")
        assert 'name="suspend_trade" value="yes" aria-describedby' in body
        assert "<dt>Trading</dt><dd>long only · whole shares only</dd>" in body
        # A page loaded before that change, sent with another switch changed, changes only that one: trading
        # stays on, as the command line left it.
        assert 'name="shown_suspend_trade" value="no"' in body
        stale = dict(name="Shorts", no_shorting="yes", suspend_trade="yes", fractional_trading="yes",
                     shown_no_shorting="yes", shown_suspend_trade="yes", shown_fractional_trading="no", csrf=csrf)
        assert (await site.post("/portfolios/settings", stale))[0].code == 303
        assert await configuration("Shorts") == dict(no_shorting=True, suspend_trade=False, fractional_trading=True)
        await d.cli("portfolio", "configure", "--portfolio", "Shorts", "--fractional-trading", "off", user="uma")

        # A cash portfolio's form leaves its long-only setting as it is; a portfolio that is not there is refused.
        response, _ = await site.post("/portfolios/settings", dict(name=main, fractional_trading="yes", csrf=csrf))
        assert response.code == 303
        assert await configuration(main) == dict(no_shorting=False, suspend_trade=False, fractional_trading=True)
        response, _ = await site.post("/portfolios/settings", dict(name="Nothing", suspend_trade="yes", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios/manage?name=Nothing")
        assert (await site.get("/portfolios/manage?name=Nothing"))[0].code == 404


@pytest_twisted.ensureDeferred
async def test_a_suspended_portfolio_says_so_where_it_trades(tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock, margin_accounts=True) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "vic")
        await forward(commands.CreatePortfolio, name="Shorts", margin=True)
        assert (await site.post("/portfolios/use", dict(name="Shorts", csrf=csrf)))[0].code == 303
        _, body = await site.get("/")
        assert "Trading is suspended" not in body
        response, _ = await site.post("/portfolios/settings", dict(name="Shorts", no_shorting="yes",
                                                                   suspend_trade="yes", csrf=csrf))
        assert response.code == 303
        notice = ("Trading is suspended in this portfolio (Shorts): new orders are refused; canceling still works."
                  ' <a href="/portfolios/manage?name=Shorts#settings">Change it in its settings</a>.')

        # The dashboard and the ticket say so, and the preview does not pretend the order can be sent.
        _, body = await site.get("/")
        assert notice in body
        _, body = await site.get("/asset/AAPL")
        assert 'id="suspended-ticket"' in body and notice in body
        assert body.index('id="suspended-ticket"') < body.index('id="place-order"')
        ask = dict(side="buy", type="market", amount_by="shares", time_in_force="day", portfolio="Shorts")

        async def preview(**changes):
            response, answer = await site.get("/asset/AAPL/preview?" + urlencode(dict(ask, **changes)))
            assert response.code == 200
            return json.loads(answer)

        shown = await preview(qty="1")
        assert not shown["ok"] and shown["note"].startswith("Trading is suspended in this portfolio: this order would"
                                                           " be refused."), shown

        # Sent anyway, the master refuses it: said in the website's words, not the configuration's field names.
        order = dict(ask, qty="1", csrf=csrf, client_order_id="suspended-1")
        body = await site.refused("/asset/AAPL/order", order, "/asset/AAPL")
        assert ("Trading is suspended in this portfolio: new orders and changes to open orders are refused (canceling"
                " still works). Turn off “Suspend trading” in its trading settings (Portfolios, Manage) to"
                " trade.") in body
        assert "suspend_trade" not in body and "its configuration" not in body
        assert (await forward(commands.Orders, portfolio="Shorts", limit=10))["orders"] == []

        # Trading again: no notice; long only and whole shares only are warned of and refused in words too.
        response, _ = await site.post("/portfolios/settings", dict(name="Shorts", no_shorting="yes", csrf=csrf))
        assert response.code == 303
        _, body = await site.get("/")
        assert "Trading is suspended" not in body
        _, body = await site.get("/asset/AAPL")
        assert 'id="suspended-ticket"' not in body
        assert "Whole shares only: this portfolio's settings turn fractional shares off." in body
        shown = await preview(qty="1.5")
        assert not shown["ok"] and shown["note"] == ("Fractional shares are off in this portfolio: 1.5 is not a whole"
                                                     " number of shares, and would be refused."), shown
        shown = await preview(amount_by="dollars", notional="100")
        assert not shown["ok"] and shown["note"].startswith("Fractional shares are off in this portfolio: an order"
                                                           " for a dollar amount would be refused."), shown
        assert (await preview(qty="2"))["ok"]
        body = await site.refused("/asset/AAPL/order", dict(order, qty="1.5", client_order_id="half"), "/asset/AAPL")
        assert ("Fractional trading is turned off in this portfolio (“Fractional shares” is off in its trading"
                " settings): 1.5 is not a whole number of shares.") in body
        body = await site.refused("/asset/AAPL/order", dict(order, side="sell", client_order_id="short"),
                                  "/asset/AAPL")
        assert ("Short selling is turned off in this portfolio (“Long only” in its trading settings): selling AAPL"
                " you do not hold is a short sale.") in body
        response, _ = await site.post("/asset/AAPL/order", dict(order, qty="2", client_order_id="whole"))
        assert response.code == 303
        assert [o["client_order_id"] for o in (await forward(commands.Orders, portfolio="Shorts",
                                                              limit=10))["orders"]] == ["whole"]


@pytest_twisted.ensureDeferred
async def test_signing_in_while_the_master_is_away_says_so_in_plain_words(tmp_path, settings, clock, database_url):
    """A worker that cannot reach its master says so to a person in the site's words, not the operators' ("the
    worker cannot reach the master; try another worker": a student knows neither)."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        _, body = await site.get("/signin")
        csrf = site.csrf(body)
        await d.master.stopService()
        response, body = await site.post("/signin", dict(username="nobody", password=PASSWORD, csrf=csrf))
        if response.code == 303:
            response, body = await site.get(header(response, b"location"))
        assert "cannot reach the trading engine right now" in body, body
        assert "try another worker" not in body


def test_a_back_path_never_leads_to_another_site():
    """A form's ``back`` (where to go after it): this site's paths only, never one a browser reads as another
    site's (it drops tabs and newlines from a Location, and reads a backslash as a slash)."""
    from papertrader.worker.web.site import safe_back

    for ok in ("/", "/orders", "/asset/BRK.B", "/orders/0b7c2c1e-0000-4000-8000-000000000001"):
        assert safe_back(ok, "/home") == ok
    for bad in ("//evil.example/", "/\t/evil.example/", "/\n/evil.example", "/\r/evil.example", "/\\evil.example",
                "https://evil.example/", "evil", "", None, "/" + "a" * 300, "/caf\u00e9", "/a b"):
        assert safe_back(bad, "/home") == "/home", bad


@pytest_twisted.ensureDeferred
async def test_the_access_log_keeps_no_query_string(tmp_path, settings, clock, database_url):
    """twisted.web's access log (twistd's log) kept whole URLs: a provider's sign-in code and state, a private
    game's invite code.  Its lines keep the path only, of the request and of its Referer."""
    from twisted.python import log

    lines = []

    def observe(event):
        lines.append(str(event.get("log_io") or " ".join(str(m) for m in event.get("message", ()))))
    log.addObserver(observe)
    try:
        async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
            await signed_up(site, worker, "dave")
            headers = site._headers(origin=False, extra={
                b"Referer": [(site.url + "/auth/callback?code=CODE-SECRET&state=S").encode()]})
            await (await treq.get(site.url + "/games?join=Secret+Cup&code=INVITE-SECRET-42", headers=headers,
                                  allow_redirects=False)).content()
    finally:
        log.removeObserver(observe)
    logged = [line for line in lines if "\"GET /games " in line]
    assert logged and '"/auth/callback"' in logged[0].replace(site.url, ""), lines[-5:]
    assert not [line for line in lines if "SECRET" in line]


@pytest_twisted.ensureDeferred
async def test_an_api_keys_credentials_are_not_a_website_session(tmp_path, settings, clock, database_url):
    """``__Host-pt_session=apikey:ID:SECRET`` signed a browser in as the key's owner (the website passed the
    cookie on as a token, and every command takes a key's credentials): a browser signs in with a password or
    a provider only."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        _, call = await signed_up(site, worker, "dave")
        key = await call(commands.CreateApiKey, name="bot")
        with_key = Site(site.url)
        with_key.cookies["__Host-pt_session"] = f"apikey:{key['key_id']}:{key['secret']}"
        response, _ = await with_key.get("/")
        assert (response.code, header(response, b"location")) == (303, "/signin")
        page = await websocket(with_key, site.url)
        await bounded(page.opened, "the connection")
        assert (await next_message(page, "signed_out"))["t"] == "signed_out"


@pytest_twisted.ensureDeferred
async def test_a_form_made_before_signing_in_does_not_post_as_the_session(tmp_path, settings, clock, database_url):
    """The pre-session cookie (whose CSRF token the sign-in page's forms carry) was kept after signing in, and its
    token still posted as the session: signing in now gives the browser a new one."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        await signed_up(Site(site.url), worker, "erin")  # (an account to sign in to)
        _, body = await site.get("/signin")
        before = site.csrf(body)
        response, _ = await site.post("/signin", dict(username="erin", password=PASSWORD, csrf=before))
        assert response.code == 303
        response, body = await site.post("/account/profile", dict(public="yes", csrf=before))
        assert response.code == 403 and "reload the page" in body
        _, body = await site.get("/account")
        response, _ = await site.post("/account/profile", dict(public="yes", csrf=site.csrf(body)))
        assert response.code == 303


@pytest_twisted.ensureDeferred
async def test_the_dashboards_chart_takes_each_sessions_equity_as_it_comes(tmp_path, settings, clock, database_url):
    """On a daily replay each update is a new session: the page asked the master for the day's figures, but sent
    the chart's point at once, from the day before's portfolio (the chart stayed a session behind)."""
    from tests.test_http_market_data import FIXTURE

    async with website(tmp_path, settings, database_url, clock, provider="replay", assets=(), replay_files=FIXTURE,
                       replay_start="2024-03-04", fill_model="ideal") as (d, worker, site):
        _, call = await signed_up(site, worker, "dave")
        await call(commands.PlaceOrder, client_order_id="b1", side="buy", symbol="XYZ", quantity="10")
        await d.tick()
        page = await opened_page(site, {"page": "dashboard"})
        for _ in range(3):
            await d.tick()
            equity = (await call(commands.Portfolio))["equity"]
            point = await next_message(page, "equity")
            assert Decimal(point["value"]) == equity, (point, equity)


@pytest_twisted.ensureDeferred
async def test_the_chart_of_an_account_without_positions_goes_on_with_the_sessions(tmp_path, settings, clock):
    """A dashboard was sent an equity point only with a held asset's price: an account without positions (new, or
    sold out) had its line stop where the page was made. Each update is the next point of its cash's flat line, at
    the curve's own time (the point a reload then shows), and its first position's prices take over."""
    async with old_replay(tmp_path, settings, clock) as (d, worker, site):
        await d.tick()
        _, call = await signed_up(site, worker, "nell")
        page = await opened_page(site, {"page": "dashboard"})
        for _ in range(2):
            await d.tick()
            point = await next_message(page, "equity")
            _, body = await site.get("/?range=1M")
            # (a session's price at its close, its candle stamped at its open: the chart's newest point, that day)
            last = chart_points(body)[-1]
            assert point["value"] == last[1] == "100000" and 0 <= point["time"] - last[0] < 86400, (point, last)
        await call(commands.PlaceOrder, client_order_id="n1", side="buy", symbol="OLD", quantity="100")
        await d.tick()  # (filled at that session's close: its equity is the cash it started with)
        assert (await next_message(page, "equity"))["value"] == "100000"
        await d.tick()  # (the next session's close is another price)
        point = await next_message(page, "equity")
        assert Decimal(point["value"]) == (await call(commands.Portfolio))["equity"] != 100000, point


@pytest_twisted.ensureDeferred
async def test_a_player_removed_from_a_private_game_sees_no_more_of_its_standings(tmp_path, settings, clock,
                                                                                 database_url):
    """The game pages share one reading of the standings per ranking update; a removed player's page kept the game
    as it saw it before, and was sent the private game's next standings (found by the review)."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "dave")
        game = dict(start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf, private="yes")
        assert (await site.post("/games", dict(game, name="Quiet Cup")))[0].code == 303
        _, body = await site.get("/games/Quiet%20Cup")
        code = re.search(r'<code id="invite-code">([^<]+)</code>', body).group(1)
        alice = await person(worker, "alice")
        await alice(commands.JoinGame, name="Quiet Cup", code=code)
        bob_site = Site(site.url)
        await signed_up(bob_site, worker, "bob")
        _, body = await bob_site.get("/")
        await bob_site.post("/games/join", dict(name="Quiet Cup", code=code, csrf=bob_site.csrf(body)))
        pages = {}
        for name, visitor in (("dave", site), ("bob", bob_site)):  # (dave's first: the one the standings are read by)
            page = await websocket(visitor, site.url)
            await bounded(page.opened, "the connection")
            page.opened.result.sendMessage(json.dumps({"page": "game", "game": "Quiet Cup"}).encode())
            await next_message(page, "ready")
            pages[name] = page
        assert (await site.post("/games/Quiet%20Cup/remove", dict(username="bob", csrf=csrf)))[0].code == 303
        told = (await next_message(pages["bob"], "html"))["v"]["leaderboard"]
        assert "you were removed from Quiet Cup by its creator" in told and "alice" not in told, told
        await alice(commands.PlaceOrder, portfolio="Quiet Cup", client_order_id="a1", side="buy", symbol="AAPL",
                    quantity="3")
        await d.tick()
        shown = (await next_message(pages["dave"], "html"))["v"]["leaderboard"]
        while "As of" not in shown:
            shown = (await next_message(pages["dave"], "html"))["v"]["leaderboard"]
        await d.tick()  # (one more ranking: its standings reach every page that may see them by now)
        await next_message(pages["dave"], "html")
        for message in list(pages["bob"].messages.pending):  # what bob's page was sent since
            assert not (message["t"] == "html" and "alice" in message["v"].get("leaderboard", "")), message


@pytest_twisted.ensureDeferred
async def test_an_invite_link_opened_before_having_an_account_leads_back_to_it_once_made(tmp_path, settings, clock,
                                                                                        database_url):
    """A teacher shares a private game's invite link; a student without an account yet opens it, is sent to the
    sign-in page, and follows "Create an account": the new account landed on the dashboard, the game's name and
    its code lost (the register page knew nothing of ``next``).  Creating the account leads where signing in
    would: to the join form, filled in."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "dave")
        game = dict(name="Class Cup", start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf, private="yes")
        assert (await site.post("/games", game))[0].code == 303
        _, body = await site.get("/games/Class%20Cup")
        code = re.search(r'<code id="invite-code">([^<]+)</code>', body).group(1)
        link = "/games?" + urlencode({"join": "Class Cup", "code": code})
        student = Site(site.url)
        response, _ = await student.get(link)
        signin = header(response, b"location")
        assert (response.code, signin) == (303, "/signin?" + urlencode({"next": link}))
        _, body = await student.get(signin)
        register = html_module.unescape(re.search(r'<a href="([^"]*)">Create an account</a>', body).group(1))
        assert register == "/register?" + urlencode({"next": link})
        _, body = await student.get(register)
        assert f'<input type="hidden" name="next" value="{html_module.escape(link)}">' in body
        assert f'href="{html_module.escape(signin)}">Sign in</a>' in body  # (an account after all: the same way)
        account = dict(username="erin", email="erin@example.com", password=PASSWORD, csrf=student.csrf(body),
                       next=link)
        # A refusal keeps where it leads.
        body = await student.refused("/register", dict(account, password="short"), "/register")
        assert "must be at least" in body and 'value="erin"' in body
        assert f'<input type="hidden" name="next" value="{html_module.escape(link)}">' in body
        response, _ = await student.post("/register", dict(account, csrf=student.csrf(body)))
        assert (response.code, header(response, b"location")) == (303, link)
        _, body = await student.get(link)
        assert "Welcome, erin" in body and "Find a stock under Trade" not in body
        assert 'id="f-name" name="name" type="text" value="Class Cup"' in body
        assert f'id="f-code" name="code" type="text" value="{code}"' in body
        response, _ = await student.post("/games/join", dict(name="Class Cup", code=code, csrf=student.csrf(body)))
        assert (response.code, header(response, b"location")) == (303, "/games/Class%20Cup")
        # Without an invite, registering still leads to the dashboard, and never to another site.
        for going in ("", "//evil.example/x"):
            other = Site(site.url)
            _, body = await other.get("/register" + ("?" + urlencode({"next": going}) if going else ""))
            assert 'name="next"' not in body
            response, _ = await other.post("/register", dict(username=f"fred{len(going)}", email="f@example.com",
                                                              password=PASSWORD, csrf=other.csrf(body), next=going))
            assert (response.code, header(response, b"location")) == (303, "/")


def table_headers(body, section):
    """The column headers of the table whose body is ``section`` (the words a screen reader says)."""
    table = body.split(f'data-section="{section}"', 1)[0].rsplit("<table", 1)[1]
    return [re.sub(r"<[^>]+>", "", th) for th in re.findall(r"<th scope=\"col\"[^>]*>(.*?)</th>", table, re.S)]


@pytest_twisted.ensureDeferred
async def test_closed_orders_say_their_time_in_force_as_the_open_ones_do(tmp_path, settings, clock, database_url):
    """The closed orders had no time-in-force column, the open ones one: an order that ended unfilled (an IOC's
    rest canceled, a Day order expired) ended so because of it."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        _, call = await signed_up(site, worker, "tina")
        low = str((worker.quotes.get("AAPL")["price"] / 2).quantize(Decimal("0.01")))
        orders = {}
        for name, tif in (("kept", "gtc"), ("canceled", "gtc"), ("ioc", "ioc")):
            orders[name] = await call(commands.PlaceOrder, client_order_id=name, side="buy", symbol="AAPL",
                                      quantity="1", type="limit", limit_price=low, time_in_force=tif)
        await call(commands.CancelOrder, order_uuid=orders["canceled"]["uuid"])
        await d.tick()  # (the IOC order's limit is not reached: it is canceled)
        _, body = await site.get("/orders")
        assert table_headers(body, "closed-orders") == ["Order", "Type", "Price", "Filled", "Commission",
                                                        "Time in force", "Status", "Placed", "Ended"]
        assert "Time in force" in table_headers(body, "open-orders")
        for name, section, words in (("kept", "open-orders", "Good till canceled"),
                                     ("canceled", "closed-orders", "Good till canceled"),
                                     ("ioc", "closed-orders", "Immediate or cancel")):
            row = order_row(body, section, orders[name]["uuid"])
            assert f'<td data-label="Time in force">{words}</td>' in row, row
            assert row.count("<td") + row.count("<th") == len(table_headers(body, section)), row


@pytest_twisted.ensureDeferred
async def test_an_open_orders_name_and_status_are_two_words_not_one(tmp_path, settings, clock, database_url):
    """An open order's first cell read "Buy 1 AAPLopen": its name and its status badge touched, with only a margin
    between them, so a screen reader (and a copy of the table) ran them together.  A space parts them."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        _, call = await signed_up(site, worker, "otto")
        low = str((worker.quotes.get("AAPL")["price"] / 2).quantize(Decimal("0.01")))
        order = await call(commands.PlaceOrder, client_order_id="o1", side="buy", symbol="AAPL", quantity="1",
                           type="limit", limit_price=low, time_in_force="gtc")
        for page in ("/orders", "/asset/AAPL"):
            _, body = await site.get(page)
            row = re.search(rf'<tr data-order="{order["uuid"]}">(.*?)</tr>', body, re.S).group(1)
            name = re.search(r'<th scope="row"[^>]*>(.*?)</th>', row, re.S).group(1)
            words = html_module.unescape(re.sub(r"<[^>]+>", "", name))
            assert words.startswith("Buy 1 AAPL open"), (page, words)


@pytest_twisted.ensureDeferred
async def test_the_dashboards_close_all_comes_and_goes_with_its_positions(tmp_path, settings, clock, database_url):
    """The dashboard left open offered no "Close all" once its first position filled, and went on offering it
    beside "No positions yet" once they were all sold.  It now comes and goes with them, as a reload shows it."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, call = await signed_up(site, worker, "cleo")
        _, body = await site.get("/")
        assert ">Close all</button>" not in body
        page = await opened_page(site, {"page": "dashboard"})

        async def close_all_shown():
            message = await next_section(page, "close-all")
            return ">Close all</button>" in message["v"]["close-all"]

        await call(commands.PlaceOrder, client_order_id="c1", side="buy", symbol="AAPL", quantity="2")
        await d.tick()
        assert await close_all_shown()
        _, body = await site.get("/")
        assert ">Close all</button>" in body
        assert (await site.post("/positions/close-all", dict(csrf=csrf)))[0].code == 303
        await d.tick()
        assert not await close_all_shown()
        _, body = await site.get("/")
        assert ">Close all</button>" not in body


def ticket_qty(body):
    """The value the ticket's Shares field is filled in with."""
    return html_module.unescape(re.search(r'<input id="t-qty"[^>]*value="([^"]*)"', body).group(1))


def live_value(body, key):
    """The text of a page's live element ``key`` (its first), and its sign."""
    found = re.search(r'data-live="%s"(?: data-sign="([^"]*)")?[^>]*>([^<]*)<' % re.escape(key), body)
    return (found.group(2), found.group(1)) if found else None


def test_a_margin_portfolios_summary_shows_its_maintenance_requirement_and_a_margin_call_what_to_do():
    """A margin portfolio in a margin call: the command line and the API said so, the dashboard did not (nor what
    its requirement was)."""
    chrome = views.Chrome(username="mo", csrf="x", portfolio="Levered")
    deadline = datetime(2026, 3, 4, 15, 0, tzinfo=timezone.utc)
    p = dict(cash=Decimal("-5000.00"), equity=Decimal("2995.00"), buying_power=Decimal("0.00"),
             realized_pl=Decimal("0"), unrealized_pl=Decimal("-7005.00"), change_today=Decimal("-100.00"),
             positions=[], kind="margin", starting_cash=Decimal("10000.00"), initial_margin=Decimal("4000.00"),
             maintenance_margin=Decimal("3600.00"), margin_call=Decimal("605.00"), margin_call_since=deadline,
             margin_call_deadline=deadline)
    history = dict(timestamps=[], equity=[], timeframe="1D")
    body = str(views.dashboard_page(chrome, p, history, "1M"))
    assert live_value(body, "maintenance_margin") == ("$3,600.00", None)
    assert live_value(body, "maintenance_margin_note") == ("Equity is $605.00 below it · initial $4,000.00", "down")
    notice = re.sub(r"<[^>]+>", "", body.split('id="margin-call"', 1)[1].split("</div>", 1)[0].split(">", 1)[1])
    assert notice == ("Margin call: your equity is $605.00 below the maintenance requirement ($3,600.00). Meet it"
                      f" by {fmt.when(deadline)} — sell, buy to cover, or let prices move — or the platform then"
                      " closes positions at the market until it is met, the largest requirement first."), notice
    assert 'role="alert"' in body.split('id="margin-call"', 1)[0].rsplit("<div", 1)[1]
    # Above its requirement: no notice, the margin it has to spare.
    calm = dict(p, equity=Decimal("5000.00"), margin_call=None)
    body = str(views.dashboard_page(chrome, calm, history, "1M"))
    assert 'id="margin-call"' not in body and 'data-section="margin-call"' in body
    assert live_value(body, "maintenance_margin_note") == ("Equity is $1,400.00 above it · initial $4,000.00", None)
    # A cash portfolio has neither.
    body = str(views.dashboard_page(chrome, dict(calm, kind="cash"), history, "1M"))
    assert "maintenance_margin" not in body and "margin-call" not in body and 'class="stats"' in body


@pytest_twisted.ensureDeferred
async def test_a_margin_portfolios_dashboard_follows_its_requirement_and_its_call_at_each_update(
        tmp_path, settings, clock, database_url):
    """A margin account's buying power and requirement move with prices, and a trading step makes or meets its
    margin call: its dashboard showed the figures of when it was loaded until an order of its own."""
    async with website(tmp_path, settings, database_url, clock, margin_accounts=True, fill_model="ideal") as (
            d, worker, site):
        csrf, call = await signed_up(site, worker, "mona")
        await call(commands.CreatePortfolio, name="Levered", margin=True, default=True)
        await call(commands.PlaceOrder, client_order_id="long", side="buy", symbol="AAPL", quantity="10")
        await d.tick()
        # A call on it (as a step makes one), then the page: it says so.
        [(pid,)] = await d.master.db.query("SELECT id FROM portfolios WHERE name = 'Levered'")
        since = d.cluster.master.market_clock.now()
        await d.master.db.run(d.master.trading.portfolios.set_margin_call, pid, Decimal("605.00"), since,
                              since + timedelta(hours=48))
        _, body = await site.get("/")
        assert 'id="margin-call"' in body and "your equity is $605.00 below the maintenance requirement" in body
        shown = await call(commands.Portfolio)
        assert live_value(body, "maintenance_margin")[0] == fmt.money(shown["maintenance_margin"])
        page = await opened_page(site, {"page": "dashboard"})
        # The next update's step finds equity above the requirement: the call is met, and the page hears of it
        # with the figures at the new prices.
        await d.tick()
        sections = (await next_message(page, "html"))["v"]
        assert sections == {"margin-call": ""}, sections
        now = await call(commands.Portfolio)
        assert now.get("margin_call") is None
        values = {}
        while "maintenance_margin" not in values or values["buying_power"][0] != fmt.money(now["buying_power"]):
            values.update((await next_message(page, "set"))["v"])
        assert values["maintenance_margin"][0] == fmt.money(now["maintenance_margin"])
        _, body = await site.get("/")
        assert 'id="margin-call"' not in body


@pytest_twisted.ensureDeferred
async def test_a_positions_sell_on_the_dashboard_offers_the_shares_held(tmp_path, settings, clock, database_url):
    """The dashboard's Sell opened an empty sell ticket, to type the shares into: a broker's offers the shares held
    (a short position's, "Buy to cover" the shares short), still previewed and placed through the ticket."""
    async with website(tmp_path, settings, database_url, clock, margin_accounts=True, fill_model="ideal") as (
            d, worker, site):
        csrf, call = await signed_up(site, worker, "sal")
        await call(commands.CreatePortfolio, name="Both", margin=True, default=True)
        await call(commands.PlaceOrder, client_order_id="long", side="buy", symbol="AAPL", quantity="3")
        await call(commands.PlaceOrder, client_order_id="short", side="sell", symbol="TSLA", quantity="2")
        await d.tick()
        _, body = await site.get("/")
        positions = body.split('data-section="positions"', 1)[1].split("</tbody>", 1)[0]
        assert ('<a class="btn small" href="/asset/AAPL?side=sell&amp;qty=3#t-qty" aria-label="Sell 3 AAPL">Sell</a>'
                in positions), positions
        assert ('<a class="btn small" href="/asset/TSLA?side=buy&amp;qty=2#t-qty" aria-label="Buy to cover 2 TSLA">'
                'Buy to cover</a>' in positions), positions

        # The link's ticket: the side and the shares filled in, at the market, Day (the ticket's own defaults).
        _, body = await site.get("/asset/AAPL?side=sell&qty=3")
        assert ticket_qty(body) == "3" and re.search(r'id="t-side-sell"[^>]*checked', body)
        assert re.search(r'<option value="market" selected>', body) and 'id="t-by-shares" name="amount_by"' in body
        _, body = await site.get("/asset/TSLA?side=buy&qty=2")
        assert ticket_qty(body) == "2" and re.search(r'id="t-side-buy"[^>]*checked', body)
        # (a link's shares that are no number fill in nothing)
        _, body = await site.get("/asset/AAPL?side=sell&qty=3%3Cb%3E")
        assert ticket_qty(body) == "" and re.search(r'id="t-side-sell"[^>]*checked', body)

        # Previewed as any order, and placed through the ticket.
        ticket = dict(side="sell", type="market", amount_by="shares", qty="3", time_in_force="day")
        _, answer = await site.get("/asset/AAPL/preview?" + urlencode(ticket))
        answer = json.loads(answer)
        assert answer["ok"] and answer["label"] == "Estimated proceeds" and answer["note"] == "You hold 3 AAPL.", \
            answer
        _, answer = await site.get("/asset/TSLA/preview?" + urlencode(dict(ticket, side="buy", qty="2")))
        answer = json.loads(answer)
        assert answer["ok"] and "It covers 2 of the 2 TSLA you are short" in answer["note"], answer
        response, _ = await site.post("/asset/AAPL/order", dict(ticket, csrf=csrf, client_order_id="close-aapl"))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/asset/AAPL")
        assert flash_text(body) == "Sell 3 AAPL in portfolio Both (at the market, Day): open.", flash_text(body)
        assert ticket_qty(body) == ""  # (the next ticket keeps the side, never the amount)
        await d.tick()
        assert [p["symbol"] for p in (await call(commands.Portfolio))["positions"]] == ["TSLA"]


def test_on_daily_bars_the_preview_says_a_market_order_fills_at_the_next_open():
    """On a replay of daily bars the ticket's price is the last close and a market order fills at the next
    session's open: a market buy reserves the last price plus market_buy_buffer, and a bigger gap at the open costs
    more than the preview said. The preview says so, for market orders only, and only on such a market."""
    from papertrader.config import Settings
    from papertrader.worker.web import preview

    rules = preview.rules(Settings())
    quote = {"price": Decimal("100.00")}
    portfolio = dict(buying_power=Decimal("2000.00"), positions=[dict(symbol="AAPL", quantity=Decimal("3"))])
    form = dict(side="buy", type="market", amount_by="shares", qty="10", time_in_force="day")
    said = ("On this market of daily bars the price shown is the last close: the order fills at the next session's"
            " open, which may differ")

    def note(daily=True, rules=rules, game=None, **changes):
        shown = preview.preview(dict(form, **changes), "AAPL", quote, portfolio, rules, game, daily=daily)
        assert shown["ok"], shown
        return shown["note"]

    assert said not in note(daily=False)  # (a market of intraday bars: as before)
    assert note() == ("Reserved at the last price $100.00 plus 5% for price moves, and its commission; a market"
                      f" order pays the price of its fill. {said} (beyond the 5% reserved, it costs more than shown"
                      " here).")
    assert note(side="sell", qty="3") == f"You hold 3 AAPL. {said}."
    assert note(amount_by="dollars", notional="500") == f"A notional order reserves its amount. {said}."
    # Orders at their own prices are not market orders: nothing more to say.
    assert said not in note(type="limit", limit_price="90.00")
    assert said not in note(type="stop", stop_price="110.00")
    # The ideal fill model (the deployment's, or a game's) fills at the next session's close.
    ideal = preview.rules(Settings(fill_model="ideal"))
    assert note(rules=ideal, side="sell", qty="3").endswith("the order fills at the next session's close, which may"
                                                            " differ.")
    assert note(game=dict(status="open", assets=[], fill_model="ideal"), side="sell", qty="3").endswith(
        "the next session's close, which may differ.")


@pytest_twisted.ensureDeferred
async def test_the_ticket_of_a_daily_replay_says_when_a_market_order_fills(tmp_path, settings, clock):
    """The preview asks the market clock alongside the portfolio: on a replay of whole sessions (replay_step 1d)
    its note says the fill is at the next open (a market of intraday bars says nothing of it: the Sell test's
    preview)."""
    from tests.test_http_market_data import FIXTURE

    async with website(tmp_path, settings, Database.default_url(str(tmp_path)), clock, provider="replay", assets=(),
                       replay_files=FIXTURE, replay_start="2024-03-04") as (d, worker, site):
        await signed_up(site, worker, "dee")
        ticket = dict(side="buy", type="market", amount_by="shares", qty="1", time_in_force="day")
        _, answer = await site.get("/asset/XYZ/preview?" + urlencode(ticket))
        answer = json.loads(answer)
        assert answer["ok"] and answer["note"].endswith(
            "On this market of daily bars the price shown is the last close: the order fills at the next session's"
            " open, which may differ (beyond the 5% reserved, it costs more than shown here)."), answer
        _, answer = await site.get("/asset/XYZ/preview?" + urlencode(dict(ticket, type="limit", limit_price="50")))
        assert "daily bars" not in json.loads(answer)["note"]


def chart_points(body):
    """The dashboard's equity chart's points: [[time, equity text], ...]."""
    return json.loads(html_module.unescape(re.search(r'data-points="([^"]*)"', body).group(1)))


def chart_note(body):
    return re.sub(r"<[^>]+>", "", re.search(r'<p class="chart-note">(.*?)</p>', body, re.S).group(1))


def old_replay(tmp_path, settings, clock):
    """The website on a replay of one made-up asset, OLD, from 2024-01-02: sixty days of daily bars on New York's
    calendar (its holidays left out), filled by the ideal model (at each session's close)."""
    from datetime import date

    holidays = {date(2024, 1, 15), date(2024, 2, 19)}  # (Martin Luther King Jr. Day, Washington's Birthday)
    days = [day for day in (date(2024, 1, 2) + timedelta(days=n) for n in range(60))
            if day.weekday() < 5 and day not in holidays]
    prices = tmp_path / "OLD.csv"
    prices.write_text("date,open,high,low,close,volume\n" + "".join(
        f"{day.isoformat()},{10 + n % 3}.00,{12 + n % 3}.00,{9 + n % 3}.00,{11 + n % 3}.00,100000\n"
        for n, day in enumerate(days)))
    return website(tmp_path, settings, Database.default_url(str(tmp_path)), clock, provider="replay", assets=(),
                   replay_files=str(prices), replay_start="2024-01-02", fill_model="ideal")


@pytest_twisted.ensureDeferred
async def test_a_new_accounts_equity_curve_starts_when_it_was_made_in_market_time(tmp_path, settings, clock):
    """A new account's chart of the month was a flat line from a month back, before it existed. It starts where the
    portfolio was made (or reset) in market time, which a portfolio keeps (``began``): on a replay the market's time
    is years from the wall clock's, which is all ``created`` says."""
    async with old_replay(tmp_path, settings, clock) as (d, worker, site):
        for _ in range(30):  # (six weeks of sessions before the account is made)
            await d.tick()
        csrf, call = await signed_up(site, worker, "nia")
        made = d.cluster.master.market_clock.now()  # (a replay's time stands still between updates)
        [portfolio] = (await call(commands.Portfolios))["portfolios"]
        assert portfolio["began"] == made and made.year == 2024 and portfolio["created"].year != 2024, portfolio
        for _ in range(3):
            await d.tick()
        for chosen in ("1M", "ALL"):
            _, body = await site.get(f"/?range={chosen}")
            points = chart_points(body)
            # The cash it started with, the session before the first one it lived through, then those three.
            assert [p[1] for p in points] == ["100000"] * 4, points
            first = datetime.fromtimestamp(points[1][0], timezone.utc)
            assert first.date() == made.date() and points[0][0] == points[1][0] - 86400, (points, made)
            assert "Starting cash" in body
            assert chart_note(body) == "No trades yet: your equity is the cash you started with (the line stays flat" \
                                       " until your first trade).", chart_note(body)
        # Its first trade two sessions later: the curve still starts where it was made, and says since when.
        await call(commands.PlaceOrder, client_order_id="first", side="buy", symbol="OLD", quantity="100")
        for _ in range(2):
            await d.tick()
        _, body = await site.get("/?range=1M")
        points = chart_points(body)
        assert len(points) == 6 and datetime.fromtimestamp(points[1][0], timezone.utc).date() == made.date(), points
        assert chart_note(body).startswith("Month: ") and chart_note(body).endswith(
            f" since it started ({fmt.day(first)})"), chart_note(body)
        # A week is shorter than its life: from the close before the week, as before.
        _, body = await site.get("/?range=1W")
        assert " since the close before " in chart_note(body), chart_note(body)

        # A reset starts it again, from the market's time then.
        await d.tick()
        await call(commands.ResetPortfolio, name="default")
        again = d.cluster.master.market_clock.now()
        [portfolio] = (await call(commands.Portfolios))["portfolios"]
        assert portfolio["began"] == again and portfolio["generation"] == 1
        await d.tick()
        _, body = await site.get("/?range=1M")
        points = chart_points(body)
        assert [p[1] for p in points] == ["100000"] * 2, points
        assert datetime.fromtimestamp(points[1][0], timezone.utc).date() == again.date()


def sydney_replay(tmp_path, settings, clock):
    """The website on a replay of one made-up asset, BHP, on Sydney's calendar (XASX: a session opens at 10:00 AEDT,
    23:00 UTC the evening before), from Monday 2024-01-15: thirty days of daily bars (weekends and Australia Day
    left out), filled by the ideal model."""
    from datetime import date

    days = [day for day in (date(2024, 1, 15) + timedelta(days=n) for n in range(30))
            if day.weekday() < 5 and day != date(2024, 1, 26)]  # (Australia Day)
    prices = tmp_path / "BHP.csv"
    prices.write_text("date,open,high,low,close,volume\n" + "".join(
        f"{day.isoformat()},{45 + n % 3}.00,{46 + n % 3}.00,{44 + n % 3}.00,{45 + n % 3}.50,100000\n"
        for n, day in enumerate(days)))
    return website(tmp_path, settings, Database.default_url(str(tmp_path)), clock, provider="replay", assets=(),
                   calendar="XASX", replay_files=str(prices), replay_start="2024-01-15", fill_model="ideal")

@pytest_twisted.ensureDeferred
async def test_an_equity_curves_starting_point_is_the_session_before_and_a_new_account_has_a_line(tmp_path, settings,
                                                                                                 clock):
    """The chart's first point (the cash it started with, or the close before the range) sat one calendar day before
    the first session's point: a Sunday, or a holiday, before a Monday's or a Tuesday's. It is the session before
    (here Friday 2024-02-16, before Tuesday the 20th, Monday a holiday). And an account made before the session it
    is in was played had an empty chart beside a note of a flat line: it shows its cash at the market's time."""
    async with old_replay(tmp_path, settings, clock) as (d, worker, site):
        for _ in range(32):
            await d.tick()
        made = d.cluster.master.market_clock.now()
        assert made.date().isoformat() == "2024-02-20", made  # (the session of the 20th not yet played)
        csrf, call = await signed_up(site, worker, "tim")
        friday = int(datetime(2024, 2, 16, 14, 30, tzinfo=timezone.utc).timestamp())  # (that session's candle)
        for chosen in ("1W", "1M", "ALL"):
            _, body = await site.get(f"/?range={chosen}")
            assert chart_points(body) == [[friday, "100000"], [int(made.timestamp()), "100000"]], chart_points(body)
            assert chart_note(body).startswith("No trades yet"), chart_note(body)
            assert "Starting cash" in body
        await d.tick()
        _, body = await site.get("/?range=1M")
        assert [p[0] for p in chart_points(body)] == [friday, int(made.timestamp())], chart_points(body)
        await call(commands.PlaceOrder, client_order_id="t1", side="buy", symbol="OLD", quantity="100")
        for _ in range(6):
            await d.tick()
        # A week's range, shorter than its life: from the close before the week's first session, a session before.
        _, body = await site.get("/?range=1W")
        points = chart_points(body)
        sessions = [p[0] for p in chart_points((await site.get("/?range=1M"))[1])]
        assert points[0][0] == sessions[sessions.index(points[1][0]) - 1], (points, sessions)
        assert " since the close before " in chart_note(body), chart_note(body)
        history = await call(commands.PortfolioHistory, period="1W", timeframe="1D")
        assert history["base_time"] == points[0][0] and history["timestamps"][0] == points[1][0], history


def test_on_daily_bars_the_preview_says_where_a_limit_or_stop_order_fills():
    """On a market of daily bars the last price is the last close and nothing trades until the next session: a
    limit at or beyond it does not fill at once but at the next session's open (the ideal fill model: its close),
    at the limit or better (fill_models.evaluate); an opg or cls order only at that one price. A stop the session
    opens past triggers at the open and fills there, not at the stop (a buy: perhaps beyond what it reserved). A
    market of intraday bars says what it said."""
    from papertrader.config import Settings
    from papertrader.worker.web import preview

    rules = preview.rules(Settings())
    ideal = preview.rules(Settings(fill_model="ideal"))
    quote = {"price": Decimal("100.00")}
    portfolio = dict(buying_power=Decimal("5000.00"), positions=[dict(symbol="AAPL", quantity=Decimal("3"))])
    form = dict(side="buy", type="limit", amount_by="shares", qty="2", limit_price="120", time_in_force="day")

    def note(daily=True, rules=rules, game=None, **changes):
        shown = preview.preview(dict(form, **changes), "AAPL", quote, portfolio, rules, game, daily=daily)
        assert shown["ok"], shown
        return shown["note"]

    # A marketable limit: at the next session's open, at the limit or better; not 'at once'.
    assert note() == ("Reserved at your limit price, plus its commission. Your limit is at or above the last close,"
                      " $100.00: on this market of daily bars it will likely fill at the next session's open, at"
                      " your limit or less (if the session opens above your limit, it fills only once the price"
                      " trades below it, at your limit).")
    assert note(side="sell", limit_price="80") == (
        "You hold 3 AAPL. Your limit is at or below the last close, $100.00: on this market of daily bars it will"
        " likely fill at the next session's open, at your limit or more (if the session opens below your limit, it"
        " fills only once the price trades above it, at your limit).")
    # The ideal fill model judges the session at its close; an opg or cls order trades at that auction only.
    assert note(rules=ideal).endswith("on this market of daily bars it fills at the next session's close, at that"
                                      " price, if it is at or below your limit.")
    assert note(game=dict(status="open", assets=[], fill_model="ideal"), side="sell", limit_price="80").endswith(
        "it fills at the next session's close, at that price, if it is at or above your limit.")
    assert note(time_in_force="cls").endswith("it fills at the next session's close, at that price, if it is at or"
                                              " below your limit.")
    assert note(time_in_force="opg").endswith("it fills at the next session's open, at that price, if it is at or"
                                              " below your limit.")
    assert "at once" not in note() + note(side="sell", limit_price="80") + note(rules=ideal)
    # A market order at the close trades at the close, whatever the model.
    assert note(type="market", time_in_force="cls").endswith(
        "the order fills at the next session's close, which may differ (beyond the 5% reserved, it costs more than"
        " shown here).")
    # A limit away from the last close: nothing more to say.
    assert note(limit_price="90") == "Reserved at your limit price, plus its commission."
    # Stops: a gap past the stop fills at the open.
    gap = ("On this market of daily bars, if a session opens past the stop, the order triggers at that open and fills"
           " there, which may be far from the stop")
    assert note(type="stop", stop_price="110") == (
        "Reserved at its stop price $110.00 plus 5% for price moves, and its commission; once triggered it buys at"
        f" the market and pays the price of its fill. {gap} (beyond the 5% reserved, it costs more than shown here).")
    assert note(type="stop", side="sell", stop_price="90") == f"You hold 3 AAPL. {gap}."
    assert note(type="trailing_stop", trail_by="percent", trail="5").endswith(f"{gap} (beyond the 5% reserved, it"
                                                                              " costs more than shown here).")
    assert note(type="stop_limit", stop_price="110", limit_price="112") == (
        "Reserved at your limit price, plus its commission. On this market of daily bars, if a session opens past"
        " the stop, the order triggers at that open and fills there only within your limit (else it waits as a"
        " limit order).")
    assert note(type="stop", side="sell", stop_price="90", rules=ideal) == (
        "You hold 3 AAPL. On this market of daily bars a stop is judged at each session's close: the order fills at"
        " the first close at or past its stop, which may be far from it.")
    assert note(type="stop_limit", side="sell", stop_price="90", limit_price="88", rules=ideal).endswith(
        "the first close at or past the stop triggers the order, and it fills there only within your limit (else it"
        " waits as a limit order).")
    # A market of intraday bars: as before (a limit near the last price fills at once), but an opg or cls order
    # waits for its auction.
    assert note(daily=False).endswith("Your limit is at or above the last price, $100.00: it will likely fill at"
                                      " once, at about that price (a limit buy pays its limit or less).")
    assert note(daily=False, time_in_force="cls").endswith(
        "Your limit is at or above the last price, $100.00: a cls order fills at the close only, at that price, if"
        " it is at or below your limit.")
    assert "daily bars" not in note(daily=False, type="stop", stop_price="110")


@pytest_twisted.ensureDeferred
async def test_a_marketable_limit_on_a_daily_replay_fills_at_the_next_open_as_its_ticket_says(tmp_path, settings,
                                                                                               clock):
    """On a replay of daily bars (XYZ closed at $101.00 on 2024-03-04), the ticket of a limit buy at $103.00 says
    it fills at the next session's open, and it does: at 09:30 New York on 2024-03-05, at about that session's
    open ($101.00, the bar model's slippage added), not at once."""
    from tests.test_http_market_data import FIXTURE

    async with website(tmp_path, settings, Database.default_url(str(tmp_path)), clock, provider="replay", assets=(),
                       replay_files=FIXTURE, replay_start="2024-03-04") as (d, worker, site):
        _, call = await signed_up(site, worker, "dee")
        ticket = dict(side="buy", type="limit", amount_by="shares", qty="1", limit_price="103",
                      time_in_force="day")
        _, answer = await site.get("/asset/XYZ/preview?" + urlencode(ticket))
        answer = json.loads(answer)
        assert answer["ok"] and answer["note"].endswith(
            "Your limit is at or above the last close, $101.00: on this market of daily bars it will likely fill at"
            " the next session's open, at your limit or less (if the session opens above your limit, it fills only"
            " once the price trades below it, at your limit)."), answer
        placed = await call(commands.PlaceOrder, client_order_id="xyz-limit", side="buy", symbol="XYZ",
                            quantity="1", type="limit", limit_price="103")
        await d.tick()  # (the order waits for the next session: nothing fills between updates)
        order = await call(commands.GetOrder, order_id=placed["id"])
        assert order["status"] == "filled", order
        [fill] = order["fills"]
        assert fill["time"] == datetime(2024, 3, 5, 14, 30, tzinfo=timezone.utc)  # (09:30 EST)
        assert Decimal("101.00") <= fill["price"] < Decimal("101.10")


@pytest_twisted.ensureDeferred
async def test_a_game_portfolios_equity_curve_starts_when_the_game_does(tmp_path, settings, clock):
    """A game's portfolio is made when its player joins (its ``began``), perhaps weeks before the game starts, and
    cannot trade until then: its curve was a flat line from the joining. Once the game has started the curve starts
    with it (before, from the joining: the game's start is not in sight yet)."""
    async with old_replay(tmp_path, settings, clock) as (d, worker, site):
        for _ in range(4):
            await d.tick()
        _, call = await signed_up(site, worker, "gus")
        start = datetime(2024, 1, 22, tzinfo=timezone.utc)  # (a Monday, two weeks on)
        await call(commands.CreateGame, name="Late Cup", starting_cash="10000", start=start,
                   end=datetime(2024, 2, 23, tzinfo=timezone.utc))
        await call(commands.JoinGame, name="Late Cup")
        joined = d.cluster.master.market_clock.now()
        await call(commands.SetDefaultPortfolio, name="Late Cup")
        game = next(p for p in (await call(commands.Portfolios))["portfolios"] if p["name"] == "Late Cup")
        assert game["began"] == joined and joined < start, (game, joined)
        await d.tick()
        _, body = await site.get("/?range=ALL")  # (not started yet: from the joining)
        assert datetime.fromtimestamp(chart_points(body)[1][0], timezone.utc).date() == joined.date()
        while d.cluster.master.market_clock.now() < start + timedelta(days=3):
            await d.tick()
        for chosen in ("1M", "ALL"):
            _, body = await site.get(f"/?range={chosen}")
            points = chart_points(body)
            # The cash it started with, the session before the game's first (Friday's, before Monday the 22nd: it
            # was a Sunday), then the game's sessions.
            first = datetime.fromtimestamp(points[1][0], timezone.utc)
            before = datetime.fromtimestamp(points[0][0], timezone.utc)
            assert first.date() == start.date() and before == datetime(2024, 1, 19, 14, 30, tzinfo=timezone.utc), (
                chosen, points)
            assert [p[1] for p in points] == ["10000"] * len(points), points
            assert "Starting cash" in body


@pytest_twisted.ensureDeferred
async def test_a_sydney_markets_daily_candles_are_shown_as_their_days(tmp_path, settings, clock):
    """On the Australian exchange's calendar (XASX) a session opens at 10:00 AEDT, 23:00 UTC the day before in the
    southern summer, and a daily candle is stamped at its session's open: shown as its UTC date, each was a day
    early. The website's candle table and the command line's candles show the market's dates (and the replay's
    first day, a midnight UTC, stays that day)."""
    from tests.test_e2e import register_and_login

    days = ["2024-01-15", "2024-01-16", "2024-01-17", "2024-01-18"]
    prices = tmp_path / "BHP.csv"
    prices.write_text("date,open,high,low,close,volume\n" + "".join(
        f"{day},45.00,46.00,44.50,45.50,100000\n" for day in days))
    async with website(tmp_path, settings, Database.default_url(str(tmp_path)), clock, provider="replay", assets=(),
                       calendar="XASX", replay_files=str(prices), replay_start="2024-01-15") as (d, worker, site):
        await signed_up(site, worker, "ava")
        for _ in range(3):
            await d.tick()  # (Monday to Thursday played)
        await register_and_login(d)
        status, out, err = await d.cli("candles", "BHP", user="alice")  # (programs: the session's open, in UTC)
        assert [c["time"] for c in json.loads(out)] == [f"2024-01-{n}T23:00:00+00:00" for n in (14, 15, 16, 17)], out
        _, body = await site.get("/asset/BHP?interval=1d")
        assert 'data-zone="Australia/Sydney"' in body
        table = body[body.index("The candles as a table"):]
        shown = re.findall(r'<th scope="row" data-label="Time">([^<]*)</th>', table)
        assert shown == days[::-1], shown  # (newest first)
        status, out, err = await d.cli("candles", "BHP", user="alice", json=False)
        assert status == 0, err
        assert [line.split()[0] for line in out.splitlines()[1:]] == days, out
        status, out, err = await d.cli("clock", user="alice", json=False)
        assert "1d per update, from 2024-01-15 to " in out and " AEDT" in out, out


def live_hub(worker):
    """The worker's hub of open pages (``papertrader.worker.web.live.Live``), behind its HTTP listener."""
    factory = worker.http.factory
    while not hasattr(factory, "resource"):
        factory = factory.wrappedFactory
    return factory.resource.web.live.websocket._factory.live


@pytest_twisted.ensureDeferred
async def test_a_page_left_open_does_not_keep_an_unused_session_alive(tmp_path, settings, clock, database_url):
    """The open page's session is checked every minute (to send it to the sign-in page once it ends): those
    checks counted as the session's use, so a tab left open on a shared computer kept it alive for ever.  Now
    the session ends once unused for ``session_idle_timeout``, and the page is told."""
    async with website(tmp_path, settings, database_url, clock, session_idle_timeout=600, update_interval=3600,
                       heartbeat_interval=3600) as (d, worker, site):
        await signed_up(site, worker, "ivy")
        page = await opened_page(site, {"page": "dashboard"})
        hub = live_hub(worker)
        for _ in range(9):  # nine minutes unused: still signed in
            clock.advance(live.SESSION_CHECK)
            await bounded(hub.check_sessions(), "a check of the open pages' sessions")
        assert page.messages.pending == [] or all(m["t"] != "signed_out" for m in page.messages.pending)
        response, _ = await site.get("/")  # a use
        assert response.code == 200
        for _ in range(11):  # eleven more minutes unused, the page open all along: ended
            clock.advance(live.SESSION_CHECK)
            await bounded(hub.check_sessions(), "a check of the open pages' sessions")
        assert (await next_message(page, "signed_out"))["t"] == "signed_out"
        response, _ = await site.get("/")
        assert (response.code, header(response, b"location")) == (303, "/signin")



@pytest_twisted.ensureDeferred
async def test_a_sydney_game_plays_its_own_days_sessions(tmp_path, settings, clock):
    """A game's days are the market's: on Sydney's calendar a session opens at 10:00 AEDT, 23:00 UTC the evening
    before. A game 'from Monday 2024-01-29 through Thursday 2024-02-01' began at midnight UTC, after Monday's
    session had opened, and ended at the next midnight UTC, after Friday's had: it played Tuesday to Friday. It
    plays Monday to Thursday, and says its times in Sydney's."""
    sydney = times.zone("Australia/Sydney")
    async with sydney_replay(tmp_path, settings, clock) as (d, worker, site):
        _, call = await signed_up(site, worker, "kai")
        game = await call(commands.CreateGame, name="Reef Cup", starting_cash="10000",
                          start=datetime(2024, 1, 29, tzinfo=timezone.utc), end=datetime(2024, 2, 2, tzinfo=timezone.utc))
        assert (game["start"], game["end"]) == (datetime(2024, 1, 28, 13, tzinfo=timezone.utc),
                                                datetime(2024, 2, 1, 13, tzinfo=timezone.utc)), game  # (AEDT: +11)
        await call(commands.JoinGame, name="Reef Cup")
        said = {}
        while d.cluster.master.market_clock.now() < datetime(2024, 2, 6, tzinfo=timezone.utc):
            opens = times.day(d.cluster.master.market_clock.now(), sydney)  # (the session about to play)
            try:
                await call(commands.PlaceOrder, portfolio="Reef Cup", client_order_id=f"k-{opens}", side="buy",
                           symbol="BHP", quantity="1")
                said[opens] = "taken"
            except GameRuleViolation as e:
                said[opens] = e.message
            await d.tick()
        assert [day for day, what in said.items() if what == "taken"] == [
            "2024-01-29", "2024-01-30", "2024-01-31", "2024-02-01"], said
        assert said["2024-01-25"] == ("game rule dates: the game starts at 2024-01-29 00:00 AEDT; orders are taken"
                                      " from then"), said
        assert said["2024-02-02"].startswith("game rule dates: the game ended at 2024-02-02 00:00 AEDT"), said
        fills = (await call(commands.Activities, portfolio="Reef Cup", direction="asc"))["activities"]
        assert [times.day(a["time"], sydney) for a in fills] == ["2024-01-29", "2024-01-30", "2024-01-31",
                                                                 "2024-02-01"], fills
        _, body = await site.get("/games/Reef%20Cup")
        assert "2024-02-01 (last day)" in body and "2024-01-29" in body


@pytest_twisted.ensureDeferred
async def test_a_sydney_portfolios_equity_curve_starts_on_the_market_day_it_began(tmp_path, settings, clock):
    """On Sydney's calendar (XASX) a session opens at 10:00 AEDT, 23:00 UTC the evening before, and a day's point
    of the equity curve is stamped at that open.  The curve of a portfolio was cut at the UTC day of its beginning:
    a game starting on a day (its midnight UTC) left out its first session's point, stamped the evening before, and
    started a day late.  A curve starts on the market day it began (times.day), as the table's dates say: the
    game's first day, and a portfolio made at a session's open (a replay's time stands there between updates),
    that session's day."""
    sydney = times.zone("Australia/Sydney")

    def first_day(body):
        points = chart_points(body)  # (the cash it started with, a day before; then its days)
        return times.day(datetime.fromtimestamp(points[1][0], timezone.utc), sydney)

    async with sydney_replay(tmp_path, settings, clock) as (d, worker, site):
        for _ in range(6):  # (the 15th's session is played too: the replay's first, opened on the 14th in UTC)
            await d.tick()
        _, call = await signed_up(site, worker, "zoe")
        made = d.cluster.master.market_clock.now()
        assert made == datetime(2024, 1, 23, 23, tzinfo=timezone.utc), made  # (Wednesday the 24th's open)
        start = datetime(2024, 1, 29, tzinfo=timezone.utc)  # (a Monday: its session opens on Sunday, 23:00 UTC)
        await call(commands.CreateGame, name="Reef Cup", starting_cash="10000", start=start,
                   end=datetime(2024, 2, 9, tzinfo=timezone.utc))
        await call(commands.JoinGame, name="Reef Cup")
        for _ in range(3):
            await d.tick()
        for chosen in ("1M", "ALL"):
            _, body = await site.get(f"/?range={chosen}")
            assert first_day(body) == "2024-01-24", (chosen, chart_points(body))
            assert "Starting cash" in body
        await call(commands.SetDefaultPortfolio, name="Reef Cup")
        while d.cluster.master.market_clock.now() < start + timedelta(days=2):
            await d.tick()
        for chosen in ("1M", "ALL"):
            _, body = await site.get(f"/?range={chosen}")
            assert first_day(body) == "2024-01-29", (chosen, chart_points(body))
            table = body[body.index("The equity as a table"):]
            shown = re.findall(r'<th scope="row" data-label="Time">([^<]*)</th>', table)
            assert shown[-2:] == ["2024-01-29", "Starting cash"], shown  # (newest first)


@pytest_twisted.ensureDeferred
async def test_a_margin_portfolio_is_made_on_the_website_where_the_server_offers_them(tmp_path, settings, clock,
                                                                                      database_url):
    # Where the operator offers none, the form does not offer one.
    chrome = views.Chrome(csrf="0" * 64, username="erin")
    assert 'name="margin"' not in str(views.portfolios_page(chrome, []))
    async with website(tmp_path, settings, database_url, clock, margin_accounts=True) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "erin")
        _, body = await site.get("/portfolios")
        assert 'name="margin"' in body and '<label for="f-margin">Margin account</label>' in body
        response, _ = await site.post("/portfolios", dict(name="Hedge", cash="$20,000", margin="yes", csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/portfolios")
        _, body = await site.get("/portfolios")
        assert flash_text(body) == "Margin portfolio Hedge created with $20,000.00."
        response, _ = await site.post("/portfolios", dict(name="Plain", cash="5000", csrf=csrf))
        kinds = {p["name"]: p["kind"] for p in (await forward(commands.Portfolios))["portfolios"]}
        assert kinds["Hedge"] == "margin" and kinds["Plain"] == "cash"
        # The margin portfolio sells short from its ticket.
        assert (await site.post("/portfolios/use", dict(name="Hedge", csrf=csrf)))[0].code == 303
        _, body = await site.get("/asset/AAPL")
        response, _ = await site.post("/asset/AAPL/order", dict(
            csrf=csrf, client_order_id="short-1", portfolio="Hedge", side="sell", type="market",
            amount_by="shares", qty="3", time_in_force="day"))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/asset/AAPL")
        assert flash_text(body).startswith("Sell 3 AAPL in portfolio Hedge")


@pytest_twisted.ensureDeferred
async def test_the_account_page_says_which_portfolio_each_api_key_trades_and_lets_a_new_one_choose(
        tmp_path, settings, clock, database_url):
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "erin")
        [main] = [p["name"] for p in (await forward(commands.Portfolios))["portfolios"]]
        # With one portfolio there is nothing to choose: the key trades it, and the list says so.
        _, body = await site.get("/account")
        assert 'name="key_portfolio"' not in body
        form_id = re.search(r'name="form_id" value="([^"]+)"', body).group(1)
        response, body = await site.post("/account/api-keys", dict(name="first", csrf=csrf, form_id=form_id))
        assert response.code == 200 and f'<dd id="new-key-portfolio">portfolio {main}</dd>' in body
        assert f'<td data-label="Portfolio">{main}</td>' in body

        # With two, the form offers each, the default one chosen (as the command line's default), even while the
        # pages show the other; the key trades the one chosen.
        assert (await site.post("/portfolios", dict(name="Swing", cash="5000", csrf=csrf)))[0].code == 303
        assert (await site.post("/portfolios/use", dict(name="Swing", csrf=csrf)))[0].code == 303
        _, body = await site.get("/account")
        assert f'<option value="{main}" selected>{main} (default)</option>' in body
        assert '<option value="Swing">Swing</option>' in body
        assert '<label for="t-key_portfolio">Portfolio it trades</label>' in body
        form_id = re.search(r'name="form_id" value="([^"]+)"', body).group(1)
        response, body = await site.post("/account/api-keys", dict(name="swinger", key_portfolio="Swing", csrf=csrf,
                                                                   form_id=form_id))
        assert response.code == 200 and '<dd id="new-key-portfolio">portfolio Swing</dd>' in body
        form_id = re.search(r'name="form_id" value="([^"]+)"', body).group(1)
        response, body = await site.post("/account/api-keys", dict(name="plain", key_portfolio=main, csrf=csrf,
                                                                   form_id=form_id))
        assert response.code == 200
        keys = {k["name"]: k["portfolio"] for k in (await forward(commands.ApiKeys))["keys"]}
        assert keys == {"first": main, "swinger": "Swing", "plain": main}
        assert '<td data-label="Portfolio">Swing</td>' in body


@pytest_twisted.ensureDeferred
async def test_an_orders_page_says_its_times_as_the_other_pages_do(tmp_path, settings, clock, database_url):
    """The order's page said "Placed 2026-12-03 09:30:05 EST" and its fills' times with seconds, beside the orders
    and the history saying "2026-12-03 09:30 EST": the same moment now reads the same on every page."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "otto")
        order = await forward(commands.PlaceOrder, client_order_id="o1", side="buy", symbol="AAPL", quantity="1")
        await d.tick()
        _, page = await site.get(f"/orders/{order['uuid']}")
        facts = dict(re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", page))
        [filled] = re.findall(r'<td data-label="Time">([^<]*)</td>', page)
        _, history = await site.get("/history")
        for moment in (facts["Placed"], facts["Updated"], filled):
            assert re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} [A-Z]+", moment), moment
        assert f'<td data-label="Time">{filled}</td>' in history  # the fill's time, as the history says it


@pytest_twisted.ensureDeferred
async def test_a_dashboard_whose_positions_were_all_sold_says_it_has_none_open(tmp_path, settings, clock,
                                                                               database_url):
    """Everything sold, the dashboard said "No positions yet", as if nothing had ever been bought; on the page left
    open and on a reload alike, it says that no position is open."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, call = await signed_up(site, worker, "sven")
        await call(commands.PlaceOrder, client_order_id="s1", side="buy", symbol="AAPL", quantity="2")
        await d.tick()
        page = await opened_page(site, {"page": "dashboard"})
        assert (await site.post("/positions/close-all", dict(csrf=csrf)))[0].code == 303
        await d.tick()
        message = await next_section(page, "positions")
        _, body = await site.get("/")
        for shown in (message["v"]["positions"], body):
            assert "No positions yet" not in shown and "No open positions" in shown


def form_error(body):
    """The words of the refusal beside a form (None: none)."""
    found = re.search(r'id="form-error"[^>]*>(.*?)</div>', body, re.S)
    return html_module.unescape(re.sub(r"<[^>]+>", "", found.group(1))) if found else None


@pytest_twisted.ensureDeferred
async def test_a_refused_number_of_shares_is_named_as_its_field_is_labelled(tmp_path, settings, clock, database_url):
    """Beside a field labelled "Shares", the ticket and the replace form said "Quantity 'abc' is not a plain
    positive number" (the command's word): they now say "Shares", as the field is labelled, with the figures as
    the pages write them."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "quinn")
        placed = await forward(commands.PlaceOrder, symbol="AAPL", side="buy", type="limit", limit_price="1.00",
                               time_in_force="gtc", quantity="1", client_order_id="low")
        said = {"abc": "Shares: 'abc' is not a plain positive number (digits and one point).",
                "0": "Shares must be positive.",
                "1.1234567": "Shares may have at most 6 decimals.",
                "2000000000": "Shares must be at most 1,000,000,000."}
        order = dict(side="buy", type="market", amount_by="shares", time_in_force="day", csrf=csrf)
        for typed, words in said.items():
            body = await site.refused("/asset/AAPL/order", dict(order, qty=typed), "/asset/AAPL")
            assert form_error(body) == words and 'data-fields="t-qty"' in body, typed
            replace = f"/orders/{placed['uuid']}/replace"
            body = await site.refused(replace, dict(qty=typed, limit_price="1.00", csrf=csrf), replace)
            assert form_error(body) == words, typed
        # A fraction of a share in a lasting order, in the ticket's words.
        body = await site.refused("/asset/AAPL/order", dict(order, qty="1.5", time_in_force="gtc"), "/asset/AAPL")
        assert "quantity" not in form_error(body).lower()
        assert form_error(body).startswith("A fraction of a share takes time in force Day")


@pytest_twisted.ensureDeferred
async def test_a_refused_starting_cash_says_its_money_as_the_pages_do(tmp_path, settings, clock, database_url):
    """A game's or a portfolio's starting cash too large was refused with "from 1.00 to 10000000.00 ... (not
    2000000000.00)" and the server's setting's name: the pages' money is "$10,000,000.00"."""
    async with website(tmp_path, settings, database_url, clock) as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "cass")
        game = dict(name="Big Cup", start="2030-09-01", end="2030-12-31", cash="2,000,000,000", csrf=csrf)
        said = form_error(await site.refused("/games", game, "/games"))
        assert said == ("Starting cash must be an amount of money from $1.00 to $10,000,000.00 on this server (as"
                        " every portfolio's), at most 2 decimals (not $2,000,000,000.00).")
        said = form_error(await site.refused("/portfolios", dict(name="Big", cash="$2,000,000,000", csrf=csrf),
                                             "/portfolios"))
        assert said == "A portfolio's starting cash is at most $10,000,000.00."
        said = form_error(await site.refused("/portfolios", dict(name="Big", cash="1" + "0" * 15, csrf=csrf),
                                             "/portfolios"))
        assert said == "Cash must be at most $1,000,000,000,000.00."


@pytest_twisted.ensureDeferred
async def test_a_game_ended_before_any_update_ranked_it_says_when_its_final_ranking_comes(tmp_path, settings, clock,
                                                                                          database_url):
    """Ended by its creator before any market update, a game's page said "Final ranking." over "No standings yet:
    they come with the next market update.": a final ranking that was not there.  It says what is true: no update
    ranked it while it ran, and the next one makes its final ranking (or, nobody having played, that there is
    none)."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, _ = await signed_up(site, worker, "tess")
        game = dict(start="2026-09-01", end="2030-12-31", cash="10000", csrf=csrf)
        for name in ("Short Cup", "Empty Cup"):
            assert (await site.post("/games", dict(game, name=name)))[0].code == 303
        alice = await person(worker, "alice")
        await alice(commands.JoinGame, name="Short Cup")
        # Its creator is told so at once (it said "its final ranking is the last market update's, below").
        told = {"Short Cup": "Short Cup has ended: trading in it stopped. No market update ranked it while it ran: the"
                             " next one makes its final ranking, and cancels its open orders.",
                "Empty Cup": "Empty Cup has ended: trading in it stopped. Nobody played in it: it has no ranking."}
        asked = {"Short Cup": "Trading stops; no market update has ranked it yet: the next one makes its final"
                              " ranking.",
                 "Empty Cup": "Nobody plays in it: it ends with no ranking."}
        for name, flash in told.items():
            _, body = await site.get(f"/games/{quote(name)}")  # (asked first: "... the ranking becomes final.")
            assert f"End {name} now? {asked[name]}" in body and "becomes final" not in body
            assert (await site.post(f"/games/{quote(name)}/end", dict(csrf=csrf)))[0].code == 303
            _, body = await site.get(f"/games/{quote(name)}")
            assert flash in body and "last market update" not in body

        _, body = await site.get("/games/Short%20Cup")
        shown = re.sub(r"<[^>]+>", " ", leaderboard_section(body))
        assert "Final ranking" not in shown and "No standings yet" not in shown
        assert "The game has ended. No market update ranked it while it ran: the next one makes its final" \
               " ranking." in shown
        assert "Joined, ranked in the final ranking at the next market update: alice." in shown
        _, body = await site.get("/games/Empty%20Cup")
        shown = re.sub(r"<[^>]+>", " ", leaderboard_section(body))
        assert "Final ranking" not in shown and "next market update" not in shown
        assert "Nobody played in it: it has no ranking." in shown

        await d.tick()  # the next update makes it, as said
        _, body = await site.get("/games/Short%20Cup")
        shown = leaderboard_section(body)
        assert "Final ranking, as of" in shown and ">alice</a>" in shown and "Joined" not in shown
        _, body = await site.get("/games/Empty%20Cup")
        assert "Nobody played in it: it has no ranking." in leaderboard_section(body)


def test_an_expired_cls_orders_reason_says_its_prices_as_the_pages_do():
    """The reason an at-the-close limit order expired (the trading core's, which the command line and the HTTP API
    show as it is) names the close and the limit: the website says them as its prices."""
    assert fmt.said("its limit was not reached at its session's close: AAPL closed at 105.00, above its limit of"
                    " 100.00 (a cls order trades only at the close)") == (
        "its limit was not reached at its session's close: AAPL closed at $105.00, above its limit of $100.00 (a"
        " cls order trades only at the close)")


@pytest_twisted.ensureDeferred
async def test_a_replaced_orders_replace_page_says_what_became_of_the_order_that_replaced_it(tmp_path, settings,
                                                                                            clock, database_url):
    """Back on the replace page of an order already replaced, the page offered "Replace the order that replaced
    it" even once that order had filled (its replace page then said it had nothing left to replace).  It names
    the order in its place and its state, and offers to replace it only while it can be."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, forward = await signed_up(site, worker, "rhea")
        first = await forward(commands.PlaceOrder, symbol="AAPL", side="buy", type="limit", limit_price="1.00",
                              time_in_force="gtc", quantity="1", client_order_id="r1")
        second = await forward(commands.ReplaceOrder, order_uuid=first["uuid"], limit_price="2.00")
        _, body = await site.get(f"/orders/{first['uuid']}/replace")
        assert "This order is replaced: there is nothing left of it to replace." in body
        assert "The order in its place now, Buy 1 AAPL (limit $2.00), is open." in body
        assert f'<a class="btn primary" href="/orders/{second["uuid"]}/replace">Replace that order</a>' in body
        # Replaced again, at a price that fills: the first one's page names the newest, filled, with no Replace.
        third = await forward(commands.ReplaceOrder, order_uuid=second["uuid"], limit_price="100000")
        await d.tick()
        assert (await forward(commands.GetOrder, order_uuid=third["uuid"]))["status"] == "filled"
        for old in (first, second):
            _, body = await site.get(f"/orders/{old['uuid']}/replace")
            assert "The order in its place now, Buy 1 AAPL (limit $100,000.00), is filled: it cannot be replaced." \
                   in body
            assert "/replace\"" not in re.search(r'<section class="card narrow">(.*?)</section>', body, re.S).group(1)
            assert f'<a class="btn" href="/orders/{third["uuid"]}">See that order</a>' in body


def mine_section(body):
    """What a game's page shows of the visitor's own part in it (the part the live connection may send again)."""
    return re.search(r'<div data-section="game-mine"[^>]*>(.*?</div>)</div>', body, re.S).group(1)


@pytest_twisted.ensureDeferred
async def test_a_games_page_follows_its_visitor_joining_from_elsewhere(tmp_path, settings, clock, database_url):
    """A game's page left open kept offering its visitor "Join" after they had joined from another tab or the
    command line (and never offered "Show and trade it"), and the navigation's "Portfolio shown" lacked the game's
    portfolio until a reload.  Both now follow, as a reload shows them; what others do (a player joining) does not
    send the visitor's part again (a form being filled in would be cleared), nor does it send again a private game's
    invite code, shown once to its creator."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, game, ivo_site, ivo = await tia_and_ivo_with_a_game(site, worker)
        _, body = await ivo_site.get("/games/Club%20Cup")
        assert 'data-mine="join"' in body and "Join Club Cup</button>" in mine_section(body)
        assert "f-shown-portfolio" not in body
        page = await opened_page(ivo_site, {"page": "game", "game": "Club Cup", "mine": "join"})

        # Another player joins: the standings move, the visitor's join form (a code half typed) stays as it is.
        ann = await person(worker, "ann")
        await ann(commands.JoinGame, name="Club Cup")
        message = await next_message(page, "html")
        assert "ann" in message["v"]["leaderboard"] and "game-mine" not in message["v"]
        assert "portfolio-picker" not in message["v"]

        # The visitor joins from the command line (or another tab): this page now shows their portfolio in the
        # game with its buttons, and the navigation offers it.
        await ivo(commands.JoinGame, name="Club Cup")
        message = await next_section(page, "game-mine")
        _, body = await ivo_site.get("/games/Club%20Cup")
        assert message["v"]["game-mine"] == mine_section(body)
        assert 'data-mine="play"' in message["v"]["game-mine"] and "Show and trade it</button>" in body
        assert "Join Club Cup" not in message["v"]["game-mine"]
        picker = message["v"]["portfolio-picker"]
        assert re.search(r'<div data-section="portfolio-picker"[^>]*>' + re.escape(picker) + "</div>", body) or \
            re.search(r'<span data-section="portfolio-picker"[^>]*>' + re.escape(picker) + "</span>", body)
        assert '<option value="Club Cup">Club Cup</option>' in picker and 'value="default" selected' in picker

        # A page made before the join (told "join") learns of it when it connects.
        late = await websocket(ivo_site, site.url)
        await bounded(late.opened, "the connection")
        late.opened.result.sendMessage(json.dumps({"page": "game", "game": "Club Cup", "mine": "join"}).encode())
        message = await next_message(late, "html")
        assert 'data-mine="play"' in message["v"]["game-mine"]

        # A private game's invite code, shown once to its creator, is never sent again: the creator joining from
        # elsewhere changes their own part only.
        assert (await site.post("/games", dict(game, name="Secret Cup", private="yes")))[0].code == 303
        _, body = await site.get("/games/Secret%20Cup")
        code = re.search(r'<code id="invite-code">([^<]+)</code>', body).group(1)
        assert 'data-mine="join"' in body
        tias = await opened_page(site, {"page": "game", "game": "Secret Cup", "mine": "join"})
        await (await person(worker, "bea"))(commands.JoinGame, name="Secret Cup", code=code)
        message = await next_message(tias, "html")
        assert "bea" in message["v"]["leaderboard"] and set(message["v"]) == {"leaderboard"}
        await site.post("/games/join", dict(name="Secret Cup", csrf=csrf))
        message = await next_section(tias, "game-mine")
        assert "game-manage" not in message["v"] and "invite-code" not in json.dumps(message)


@pytest_twisted.ensureDeferred
async def test_every_open_page_of_a_player_learns_of_their_new_game_portfolio(tmp_path, settings, clock, database_url):
    """Joining a game in one tab (or from the command line) left the user's other open pages -- a dashboard, the
    orders -- without the game's portfolio in the navigation's "Portfolio shown" until a reload (only the game's own
    page followed).  Every open page of that user is now sent the menu as a reload makes it; other users' pages are
    not (their menus did not change), and an operator's enrolment of a class reaches each student's pages too."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        csrf, game, ivo_site, ivo = await tia_and_ivo_with_a_game(site, worker)
        _, body = await ivo_site.get("/")
        assert "f-shown-portfolio" not in body  # one portfolio: no menu
        dashboard = await opened_page(ivo_site, {"page": "dashboard"})
        orders = await opened_page(ivo_site, {"page": "orders"})
        tias = await opened_page(site, {"page": "dashboard"})

        await ivo(commands.JoinGame, name="Club Cup")  # (another tab's or the command line's join)
        _, body = await ivo_site.get("/orders")
        for page in (dashboard, orders):
            picker = (await next_message(page, "html"))["v"]["portfolio-picker"]
            assert '<option value="Club Cup">Club Cup</option>' in picker and 'value="default" selected' in picker
            assert f'<span data-section="portfolio-picker" class="picker-slot">{picker}</span>' in body

        # Tia's menu did not change: her page is told of her own join only.
        await (await person(worker, "ann"))(commands.JoinGame, name="Club Cup")
        assert (await site.post("/games/join", dict(name="Club Cup", csrf=csrf)))[0].code == 303
        message = await next_message(tias, "html")
        assert set(message["v"]) == {"portfolio-picker"} and "Club Cup" in message["v"]["portfolio-picker"]

        # The operator enrols a class: each student's open pages learn of it.
        una_site = Site(site.url)
        await signed_up(una_site, worker, "una")
        unas = await opened_page(una_site, {"page": "history"})
        assert (await site.post("/games", dict(game, name="Class Cup")))[0].code == 303
        enrolled = await d.master.games.enrol("Class Cup", ["una"])
        assert enrolled["joined"] == ["una"]
        picker = (await next_message(unas, "html"))["v"]["portfolio-picker"]
        assert '<option value="Class Cup">Class Cup</option>' in picker

        # A player removed, or a game ended, keeps the game's portfolio (its history stays readable): the menu a
        # reload makes still lists it, so there is nothing to send.
        assert (await site.post("/games/Club%20Cup/remove", dict(username="ivo", csrf=csrf)))[0].code == 303
        assert (await site.post("/games/Club%20Cup/end", dict(csrf=csrf)))[0].code == 303
        _, body = await ivo_site.get("/orders")
        assert '<option value="Club Cup">Club Cup</option>' in body


@pytest_twisted.ensureDeferred
async def test_every_open_page_of_a_user_follows_their_portfolios_made_renamed_closed_and_default(
        tmp_path, settings, clock, database_url):
    """A portfolio made, renamed, closed or made the default from one tab (or the command line, the HTTP API) left
    the "Portfolio shown" menu of the user's other open pages as it was until a reload, and a page showing a
    portfolio renamed elsewhere asked for it by its old name: its orders no longer came.  Every open page of that user
    now gets the menu as a reload makes it; a page showing the renamed portfolio goes on showing it, by its new
    name; a page showing one closed is made again (the default one, said); other users' pages are not told."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        _, ivo = await signed_up(site, worker, "ivo")  # browser A: the default portfolio
        await ivo(commands.CreatePortfolio, name="Growth")
        other = await signed_in(site.url, "ivo")  # browser B shows Growth
        await use_portfolio(other, "Growth")
        _, body = await other.get("/")
        assert flash_text(body) == "Showing and trading portfolio Growth."
        tia_site = Site(site.url)
        await signed_up(tia_site, worker, "tia")
        shown_default = await opened_page(site, {"page": "dashboard"})
        growth_dashboard = await opened_page(other, {"page": "dashboard"})
        growth_orders = await opened_page(other, {"page": "orders", "first": False})
        tias = await opened_page(tia_site, {"page": "dashboard"})

        async def pickers(*pages):
            return [(await next_message(page, "html"))["v"]["portfolio-picker"] for page in pages]

        # Made (from the command line): every page of Ivo's offers it, each still showing what it showed.
        await ivo(commands.CreatePortfolio, name="Swing")
        a, b, c = await pickers(shown_default, growth_dashboard, growth_orders)
        for picker in (a, b, c):
            assert '<option value="Swing">Swing</option>' in picker
        assert 'value="default" selected' in a and 'value="Growth" selected' in b and 'value="Growth" selected' in c

        # Renamed: the pages showing it go on showing it, by its new name (its orders come to them).
        await ivo(commands.RenamePortfolio, name="Growth", new_name="Long term")
        a, b, c = await pickers(shown_default, growth_dashboard, growth_orders)
        assert 'value="default" selected' in a and '<option value="Long term">Long term</option>' in a
        assert "Growth" not in b + c and 'value="Long term" selected' in b and 'value="Long term" selected' in c
        await ivo(commands.PlaceOrder, client_order_id="low", side="buy", symbol="AAPL", quantity="1", type="limit",
                  limit_price="1.00", time_in_force="gtc", portfolio="Long term")
        message = await next_section(growth_orders, "open-orders")
        assert "Buy" in message["v"]["open-orders"] and "$1.00" in message["v"]["open-orders"]

        # Another made the default: a page showing the default goes on showing the one it showed (its data, chart and
        # forms are that one's), as the tab that made it does.
        await ivo(commands.SetDefaultPortfolio, name="Swing")
        a, b = await pickers(shown_default, growth_dashboard)
        assert 'value="default" selected' in a and 'value="Long term" selected' in b

        # Closed: its pages are made again (their browser's choice is gone: the default one, and they say why).
        await ivo(commands.CancelAllOrders, portfolio="Long term")
        await ivo(commands.ClosePortfolio, name="Long term")
        assert (await next_message(growth_dashboard, "reload")) == {"t": "reload"}
        assert (await next_message(growth_orders, "reload")) == {"t": "reload"}
        (a,) = await pickers(shown_default)
        assert "Long term" not in a and 'value="default" selected' in a
        _, body = await other.get("/")
        assert flash_text(body) == "Your portfolio Long term was closed elsewhere: showing your default portfolio."
        assert 'value="Swing" selected' in body

        # Tia was told nothing of Ivo's: her first menu is of her own portfolio made.
        tia = await person(worker, "tia2")  # (another user acting meanwhile: nothing for Tia either)
        await tia(commands.CreatePortfolio, name="Other")
        _, body = await tia_site.get("/")
        await tia_site.post("/portfolios", dict(name="Tia's", csrf=tia_site.csrf(body)))
        (picker,) = await pickers(tias)
        assert "Tia&#x27;s" in picker or "Tia's" in picker
        assert "Swing" not in picker and "Other" not in picker


@pytest_twisted.ensureDeferred
async def test_open_pages_of_a_portfolio_reset_elsewhere_are_made_again(tmp_path, settings, clock, database_url):
    """A portfolio reset from another tab (or the command line, the HTTP API) left its open pages showing the old
    figures, positions and orders until a reload.  Now the pages showing it are made again, those showing
    another portfolio of the same user are not."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        _, ivo = await signed_up(site, worker, "ivo")  # browser A: the default portfolio
        await ivo(commands.CreatePortfolio, name="Growth")
        other = await signed_in(site.url, "ivo")  # browser B shows Growth
        await use_portfolio(other, "Growth")
        default_dashboard = await opened_page(site, {"page": "dashboard"})
        default_orders = await opened_page(site, {"page": "orders", "first": False})
        growth_dashboard = await opened_page(other, {"page": "dashboard"})
        growth_orders = await opened_page(other, {"page": "orders", "first": False})

        await ivo(commands.ResetPortfolio, name="Growth")
        assert (await next_message(growth_dashboard, "reload")) == {"t": "reload"}
        assert (await next_message(growth_orders, "reload")) == {"t": "reload"}
        # The default portfolio's pages were not made again: the next thing they hear of is a portfolio made.
        await ivo(commands.CreatePortfolio, name="Swing")
        for page in (default_dashboard, default_orders):
            message = await bounded(page.messages.get(), "the default portfolio's pages' next message")
            while message["t"] == "html" and "portfolio-picker" not in message["v"]:
                message = await bounded(page.messages.get(), "the default portfolio's pages' next message")
            assert message["t"] == "html" and "Swing" in message["v"]["portfolio-picker"], message

        await ivo(commands.ResetPortfolio, name="default")
        assert (await next_message(default_dashboard, "reload")) == {"t": "reload"}
        assert (await next_message(default_orders, "reload")) == {"t": "reload"}


@pytest_twisted.ensureDeferred
async def test_a_browser_showing_a_portfolio_renamed_elsewhere_goes_on_showing_it(tmp_path, settings, clock,
                                                                                   database_url):
    """The browser's choice of the portfolio its pages show (a cookie) named the portfolio: renamed in another
    browser (or from the command line), the next page of this one showed the default portfolio instead, an order
    ticket of a page made before was refused (and the browser sent to the default one), and a portfolio made later
    under the old name would have been shown, and traded, in its place.  The choice now also holds the portfolio's
    id: the pages go on showing it by its new name, the ticket trades it, another of its old name is not it; one
    closed elsewhere is said closed, by its last name."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        _, ivo = await signed_up(site, worker, "ivo")
        await ivo(commands.CreatePortfolio, name="Growth")
        await use_portfolio(site, "Growth")
        _, body = await site.get("/asset/AAPL")
        assert flash_text(body) == "Showing and trading portfolio Growth."
        csrf = site.csrf(body)
        assert 'name="portfolio" value="Growth"' in body  # (the ticket names the portfolio it trades)
        uuid_of = {p["name"]: p["uuid"] for p in (await ivo(commands.Portfolios))["portfolios"]}
        assert site.cookies["__Host-pt_portfolio"] == f"Growth:{uuid_of['Growth']}"
        site.cookies["__Host-pt_portfolio"] = "Growth"  # (a choice made before it held the uuid: it is given it)
        _, body = await site.get("/asset/AAPL")
        assert 'value="Growth" selected' in body and flash_text(body) is None
        assert site.cookies["__Host-pt_portfolio"] == f"Growth:{uuid_of['Growth']}"

        await ivo(commands.RenamePortfolio, name="Growth", new_name="Long term")  # (elsewhere)
        order = dict(side="buy", type="limit", amount_by="shares", qty="1", limit_price="1.00", time_in_force="gtc",
                     client_order_id="web-1", portfolio="Growth", csrf=csrf)
        response, _ = await site.post("/asset/AAPL/order", order)  # (the ticket of the page made before)
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/orders")
        assert flash_text(body).startswith("Buy 1 AAPL in portfolio Long term"), flash_text(body)
        assert 'value="Long term" selected' in body
        assert len((await ivo(commands.Orders, status="open", limit=10, portfolio="Long term"))["orders"]) == 1

        # Renamed again, and another made under its last name: the pages show it, not the new one.
        await ivo(commands.RenamePortfolio, name="Long term", new_name="Core")
        await ivo(commands.CreatePortfolio, name="Long term")
        response, _ = await site.post("/orders/cancel-all", dict(csrf=csrf))
        assert (await ivo(commands.Orders, status="open", limit=10, portfolio="Core"))["orders"] == []
        _, body = await site.get("/")
        assert 'value="Core" selected' in body and '<option value="Long term">Long term</option>' in body

        # Closed elsewhere, and another made under its name: a form of a page made before does not act on that one
        # (nor on the default portfolio); the pages show the default one and say why.
        await ivo(commands.ClosePortfolio, name="Core")
        await ivo(commands.CreatePortfolio, name="Core")
        await ivo(commands.PlaceOrder, client_order_id="new-core", side="buy", symbol="AAPL", quantity="1",
                  type="limit", limit_price="1.00", time_in_force="gtc", portfolio="Core")
        await ivo(commands.PlaceOrder, client_order_id="default", side="buy", symbol="AAPL", quantity="1",
                  type="limit", limit_price="1.00", time_in_force="gtc")
        response, _ = await site.post("/orders/cancel-all", dict(csrf=csrf))
        assert (response.code, header(response, b"location")) == (303, "/")
        for portfolio in ("Core", None):
            assert len((await ivo(commands.Orders, status="open", limit=10, portfolio=portfolio))["orders"]) == 1
        _, body = await site.get("/")
        assert flash_text(body) == "Your portfolio Core was closed elsewhere. Showing your default portfolio."
        assert 'value="default" selected' in body and "__Host-pt_portfolio" not in site.cookies
        assert len((await ivo(commands.Orders, status="open", limit=10, portfolio="Core"))["orders"]) == 1

        # The same for an order ticket of a page made before; then, a page asked for: said so, by its name now, and
        # the default one shown.
        await use_portfolio(site, "Long term")
        _, body = await site.get("/asset/AAPL")
        assert 'name="portfolio" value="Long term"' in body
        await ivo(commands.ClosePortfolio, name="Long term")
        await ivo(commands.CreatePortfolio, name="Long term")
        response, _ = await site.post("/asset/AAPL/order", dict(order, portfolio="Long term", client_order_id="web-2"))
        assert (await ivo(commands.Orders, status="open", limit=10, portfolio="Long term"))["orders"] == []
        _, body = await site.get("/asset/AAPL")
        assert "Your portfolio Long term was closed elsewhere." in body and 'value="default" selected' in body
        await ivo(commands.ClosePortfolio, name="Long term")
        assert (await site.post("/portfolios/use", dict(name="Core", csrf=site.csrf(body))))[0].code == 303
        _, body = await site.get("/")
        await ivo(commands.CancelAllOrders, portfolio="Core")
        await ivo(commands.ClosePortfolio, name="Core")
        _, body = await site.get("/")
        assert flash_text(body) == "Your portfolio Core was closed elsewhere: showing your default portfolio."
        assert "f-shown-portfolio" not in body  # (one portfolio left: no menu)
        _, body = await site.get("/")
        assert flash_text(body) is None


@pytest_twisted.ensureDeferred
async def test_a_portfolio_renamed_on_one_worker_is_followed_by_the_pages_open_on_another(tmp_path, settings, clock,
                                                                                        database_url):
    """The menu of a page open on another worker than the one a portfolio was renamed through followed only on
    reload; the master tells every worker."""
    d = await start_cluster(tmp_path, replace(settings, workers=2), database_url, clock, http_port=0)
    try:
        first, second = (Site(f"http://127.0.0.1:{w.http.port.getHost().port}") for w in d.cluster.workers)
        csrf, ivo = await signed_up(first, d.cluster.workers[0], "ivo")
        await ivo(commands.CreatePortfolio, name="Growth")
        second.cookies = dict(first.cookies)  # (the same browser, its pages served by the other worker)
        page = await opened_page(second, {"page": "orders"})
        response, _ = await first.post("/portfolios/rename", dict(name="Growth", new_name="Long term", csrf=csrf))
        assert response.code == 303
        picker = (await next_message(page, "html"))["v"]["portfolio-picker"]
        assert '<option value="Long term">Long term</option>' in picker and "Growth" not in picker
    finally:
        await d.cluster.stopService()


def test_the_pages_name_the_static_files_by_a_version_of_their_contents(tmp_path):
    """The version in the pages' URLs of the static files (?v=, kept a day by browsers) was bumped by hand: an
    app.js changed without it (2026-12-03, the live 'reload' message) reached browsers only a day later.  It is
    now a digest of the files' contents: the same files give the same URLs, any change of any file new ones."""
    import importlib.resources
    import shutil
    from pathlib import Path

    from papertrader.worker.web import StaticFiles

    shipped = Path(str(importlib.resources.files("papertrader.worker.web") / "static"))
    copy = tmp_path / "static"
    shutil.copytree(shipped, copy)
    StaticFiles()
    version = views.static("app.js").rpartition("?v=")[2]
    StaticFiles(copy)
    assert views.static("app.js").rpartition("?v=")[2] == version and len(version) == 12
    (copy / "vendor" / "NOTICE").write_text((copy / "vendor" / "NOTICE").read_text() + " ")
    StaticFiles(copy)
    changed = views.static("app.js").rpartition("?v=")[2]
    assert changed != version
    assert views.static("vendor/lightweight-charts.standalone.production.js").endswith(f"?v={changed}")
    StaticFiles()  # (the shipped files' version again, for the tests after this one)
    assert views.static("app.js").endswith(f"?v={version}")


@pytest_twisted.ensureDeferred
async def test_an_old_tabs_ticket_never_trades_another_portfolio_given_its_name_after_a_close(tmp_path, settings,
                                                                                            clock, database_url):
    """An order ticket named its portfolio by name only: once the browser had forgotten a portfolio closed elsewhere
    (any page load after the close), a ticket of a tab opened before it placed its order in a new portfolio of
    the same name.  The ticket carries the portfolio's uuid: renamed since, it trades it by its new name; closed
    since, the order is refused and nothing is placed anywhere."""
    async with website(tmp_path, settings, database_url, clock, fill_model="ideal") as (d, worker, site):
        _, ivo = await signed_up(site, worker, "ivo")
        await ivo(commands.CreatePortfolio, name="Growth")
        await use_portfolio(site, "Growth")
        _, old_tab = await site.get("/asset/AAPL")
        uuid_of = {p["name"]: p["uuid"] for p in (await ivo(commands.Portfolios))["portfolios"]}
        assert f'name="portfolio_uuid" value="{uuid_of["Growth"]}"' in old_tab
        ticket = dict(side="buy", type="limit", amount_by="shares", qty="1", limit_price="1.00", time_in_force="gtc",
                      portfolio="Growth", portfolio_uuid=uuid_of["Growth"], csrf=site.csrf(old_tab))

        # Renamed elsewhere, and the browser's choice forgotten meanwhile (another tab went to the default one):
        # the old ticket still trades the portfolio it was made for.
        await use_portfolio(site, "default")
        await ivo(commands.RenamePortfolio, name="Growth", new_name="Core")
        await ivo(commands.CreatePortfolio, name="Growth")
        response, _ = await site.post("/asset/AAPL/order", dict(ticket, client_order_id="web-1"))
        assert response.code == 303
        assert len((await ivo(commands.Orders, status="open", limit=10, portfolio="Core"))["orders"]) == 1
        for other in ("Growth", None):
            assert (await ivo(commands.Orders, status="open", limit=10, portfolio=other))["orders"] == []

        # Closed elsewhere: refused, nothing placed in the portfolio now named as the ticket says, nor anywhere.
        await ivo(commands.CancelAllOrders, portfolio="Core")
        await ivo(commands.ClosePortfolio, name="Core")
        await ivo(commands.RenamePortfolio, name="Growth", new_name="Core")
        response, _ = await site.post("/asset/AAPL/order", dict(ticket, portfolio="Core", client_order_id="web-2"))
        assert (response.code, header(response, b"location")) == (303, "/asset/AAPL")
        _, body = await site.get("/asset/AAPL")
        assert "closed elsewhere" in body, flash_text(body)
        for other in ("Core", None):
            assert (await ivo(commands.Orders, status="open", limit=10, portfolio=other))["orders"] == []
