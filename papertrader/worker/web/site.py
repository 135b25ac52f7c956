"""The website's routes (klein): server-rendered pages and plain HTML forms.

Every page is rendered by the worker from the answers of the same commands the command-line client
sends (papertrader/commands.py), passed on to the master through the worker's gateway: stamped with
the time, the browser's address and this worker, checked by the worker's own abuse limits, answered
by the one application layer.  A signed-in request carries the session cookie (security.py); a form
POST must carry its CSRF token and come from this site.  After a successful POST the browser is sent
on (303) with a short flash message; a refused one is sent back (303) to the page of its form, which shows
the reason beside the form filled in as it was sent (never a password), once: so the browser's Back and
reload never send a POST again (``refuse``, ``refusal``).
"""

import collections
import functools
import json
import re
import secrets
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from urllib.parse import urlencode

from klein import Klein
from twisted.internet import defer
from werkzeug.exceptions import MethodNotAllowed, NotFound

from papertrader import commands, times
from papertrader.errors import (BadCredentials, InsufficientPosition, InvalidInput, MasterUnavailable, NotLoggedIn,
                                OrderNotOpen, PaperTraderError, PortfoliosHidden, ProviderLoginFailed, UnknownGame,
                                UnknownOrder, UnknownPortfolio, UnknownSymbol, UnknownWatchlist)
from papertrader.client import output
from papertrader.times import game_window
from papertrader.worker.web import formatting as fmt
from papertrader.worker.web import preview as previews
from papertrader.worker.web import security, views
from papertrader.worker.web.security import Refused

#: Candles the asset page shows per interval (a year of daily ones; a session of minutes).
CANDLE_LIMITS = {"1d": 260, "1h": 300, "15m": 300, "5m": 300, "1m": 390}
#: Equity ranges: (period, timeframe) on a market with intraday bars, and on one of daily bars only.
RANGES_INTRADAY = {"1D": ("1D", "5Min"), "1W": ("1W", "1H"), "1M": ("1M", "1D"), "ALL": (None, "1D")}
RANGES_DAILY = {"1W": ("1W", "1D"), "1M": ("1M", "1D"), "1A": ("1A", "1D"), "ALL": (None, "1D")}
CLOSED_PAGE = 50
OPEN_PAGE = 100
HISTORY_PAGE = 50
#: Standings read at a time for a leaderboard download (the most one GameLeaderboard answer gives).
BOARD_PAGE = 500
#: Orders that replaced one another a replaced order's replace page follows to the one in its place now.
REPLACEMENTS_FOLLOWED = 20
MAX_FIELD = 1024
#: Characters (as JSON) of what a refused form's fields may keep for its page: the flash cookie stays far under
#: the 4 kB a browser keeps; beyond, the longest fields are left out (the page shows them empty).
MAX_KEPT = 2000
#: Commands with a ``portfolio`` argument that is not the portfolio shown (an API key names its own).
PORTFOLIO_OF_ITS_OWN = (commands.CreateApiKey,)


class Visit:
    """A signed-in request: its session token, the username, its CSRF token and the browser's address."""

    def __init__(self, token, username, ip, portfolio=None, portfolio_uuid=None):
        self.token = token
        self.username = username
        self.ip = ip
        self.csrf = security.csrf_for(token)
        #: The name of the portfolio this browser chose to show (None: the account's default).
        self.portfolio = portfolio
        #: Its uuid, as the browser's choice holds it (None: a choice from before it did): a rename made elsewhere
        #: is followed (Website.load_portfolios), and another portfolio given its old name is not it.
        self.portfolio_uuid = portfolio_uuid
        #: The name the browser's choice gave the portfolio when it was renamed elsewhere since (a ticket of a page
        #: made before names it so), or None.
        self.renamed_from = None
        #: That name when the portfolio was closed elsewhere since, or None; ``refused``: the commands that act on the
        #: shown portfolio are refused (a form's, or an order ticket's of a page made before), not done to another.
        self.gone = None
        self.refused = False
        #: The account's open portfolios (loaded for a page: the navigation's selector).
        self.portfolios = None
        #: The portfolio this browser chose that is no longer open (closed or renamed elsewhere: the pages show the
        #: default one, and say so): (its name, whether it is known closed), or None.
        self.lost = None

    def shows(self, name):
        """Does this browser show the portfolio ``name`` by its name (not as the default one)?"""
        return self.portfolio is not None and self.portfolio.casefold() == name.casefold()


def client_ip(request):
    return getattr(request.getClientAddress(), "host", "unknown")


def browser(request):
    """What signs in, for the account's sessions list: the browser and its system, from its User-Agent."""
    return fmt.device((request.getHeader(b"user-agent") or b"")[:1000].decode("latin-1"))


def field(request, name, limit=MAX_FIELD):
    """A form field as text ('' if absent); refused if longer than ``limit`` or not UTF-8."""
    values = request.args.get(name.encode())
    if not values:
        return ""
    try:
        value = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{name} is not UTF-8 text")
    if len(value) > limit:
        raise InvalidInput(f"{name} is longer than {limit} characters")
    return value.strip() if "password" not in name else value


#: What of an order placed the ticket keeps for the next one (never its amount or prices).
TICKET_CHOICES = ("side", "type", "time_in_force", "amount_by")
#: The shares a link may fill the ticket in with (``/asset/AAPL?side=sell&qty=10``: a position's Sell).
SHARES_RE = re.compile(r"[0-9]{1,12}(\.[0-9]{1,6})?")
#: What a person is told when this worker cannot reach the master (the error's own words are the operators').
UNREACHABLE = "This server cannot reach the trading engine right now. Try again in a moment."


def sentence(text, order=None):
    """An error message as a sentence in the website's words (``fmt.said``: money as the pages show it, an order
    named as they name it, ``order``): capitalized, with a full stop."""
    text = fmt.said((text or "").strip(), order)
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def redirect(request, where):
    request.setResponseCode(303)
    request.setHeader(b"Location", where.encode("utf-8"))
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    return b""


def refuse(request, where, which, why, form=None):
    """A refused form, answered POST/redirect/GET as a success is: back (303) to ``where``, whose page shows
    ``why`` beside its form ``which`` filled in with ``form`` (what was typed: never a password), once."""
    kept = {k: v for k, v in (form or {}).items() if v not in (None, "")}
    while len(json.dumps(kept)) > MAX_KEPT:
        kept.pop(max(kept, key=lambda k: len(json.dumps(kept[k]))))
    security.set_flash(request, why, "error", w=which, f=kept)
    return redirect(request, where)


def refusal(chrome, *which):
    """The refusal the redirect to this page brought (``refuse``) of one of its forms ``which``: (that form's
    name, why, what was typed), taken from the chrome (the page shows it beside the form, not at the top); else
    (None, None, {})."""
    flash = chrome.flash or {}
    if flash.get("w") not in which:
        return None, None, {}
    chrome.flash = None
    form = flash.get("f")
    form = {k: v for k, v in form.items() if isinstance(v, (str, bool))} if isinstance(form, dict) else {}
    return flash["w"], flash["m"], form


def keys_still_work(answer):
    """What follows a password changed or every session ended, when the account has API keys: they still work
    (a key is not a session), and where to revoke one."""
    keys = answer.get("api_keys") or 0
    if not keys:
        return ""
    return f" {output.keys_still_working(keys)}: revoke any you did not make under API keys on your account page."


def page_before(request):
    """The ``before`` of a paged list (an id to page back from), or None when absent or not a possible id."""
    before = field(request, "before", 20)
    return int(before) if before.isdigit() and 0 < int(before) < 2 ** 62 else None


def referer_path(request):
    """The page of this site this request came from, to go back to after choosing another portfolio ('' if
    none): its path without its query (a page of the old portfolio's list), and the orders page for an order's
    own pages (the order is the old portfolio's)."""
    here = security.origin(request)
    referer = (request.getHeader(b"referer") or b"").decode("latin-1")
    if not referer.startswith(here + "/"):
        return ""
    path = referer[len(here):].split("?", 1)[0].split("#", 1)[0]
    return "/orders" if path.startswith("/orders/") else path


def on_watchlist(symbols, name):
    """What adding ``symbols`` to a watchlist says: true whether each was on it already or not ('AAPL, XOM added'
    said so of one that was there)."""
    return f"{', '.join(symbols)} {'is' if len(symbols) == 1 else 'are'} on your watchlist {name}."


def safe_back(path, default):
    """A same-site path to go back to (never another site: //host or a scheme).  Only printable ASCII but the
    backslash: browsers drop tabs and newlines from a Location, so "/<tab>/host" would read as "//host"."""
    if (path and path.startswith("/") and not path.startswith("//") and len(path) < 300
            and all(33 <= ord(ch) < 127 and ch != "\\" for ch in path)):
        return path
    return default


def html(request, markup, status=200):
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
    return markup.encode("utf-8")


def signed_in():
    """A page for a signed-in person (a GET): without a live session, the sign-in page instead."""

    def decorate(method):
        @functools.wraps(method)
        async def handler(self, request, **kwargs):
            security.headers(request)
            visit = None
            try:
                had_session = security.session_token(request) is not None
                visit = await self.visit(request)
                if visit is None:
                    if had_session:  # it ended (not a visitor who never signed in): the sign-in page says so
                        security.set_flash(request, views.SESSION_ENDED, "error")
                    # Signed in, the visitor is taken back to the page asked for (not the dashboard).
                    wanted = safe_back(request.uri.decode("latin-1"), "/")
                    return redirect(request, "/signin" if wanted == "/" else "/signin?" + urlencode({"next": wanted}))
                await self.load_portfolios(request, visit)
                return await method(self, request, visit, **kwargs)
            except PaperTraderError as e:  # the master unreachable, a session that ended meanwhile...
                return self.failed(request, visit, e)

        return handler

    return decorate


def action(needs_session=True):
    """A state-changing request (a form POST): this site's origin and CSRF token, then (with
    ``needs_session``) a live session."""

    def decorate(method):
        @functools.wraps(method)
        async def handler(self, request, **kwargs):
            security.headers(request)
            try:
                sent = field(request, security.CSRF_FIELD, 128) or \
                    (request.getHeader(security.CSRF_HEADER) or b"").decode("latin-1")
                security.check_csrf(request, sent)
            except (Refused, InvalidInput) as e:
                message = e.message if isinstance(e, Refused) else "This form could not be read."
                chrome = views.Chrome(csrf=security.csrf_token(request))
                self.worker.log.info("website: refused a {method} {path} from {ip}: {why}", method="POST",
                                     path=request.path.decode("latin-1")[:100], ip=client_ip(request),
                                     why=message)
                return html(request, views.error_page(chrome, 403, "Refused", message), 403)
            if not needs_session:
                try:
                    return await method(self, request, **kwargs)
                except PaperTraderError as e:
                    return self.failed(request, None, e)
            visit = None
            try:
                visit = await self.visit(request)
                if visit is None:
                    security.set_flash(request, views.SESSION_ENDED, "error")
                    return redirect(request, "/signin")
                if visit.portfolio_uuid is not None:  # (renamed elsewhere: the form acts on it by its new name)
                    await self.load_portfolios(request, visit, acting=True)
                return await method(self, request, visit, **kwargs)
            except PaperTraderError as e:
                return self.failed(request, visit, e)

        return handler

    return decorate


#: Forms that made an API key remembered at most (see Website.key_forms).
KEY_FORMS = 10_000


class _KeyForm:
    """One sending of the new-key form: the key it made, once its answer is known."""

    def __init__(self):
        self.key_id = None
        self.finished = False
        self._waiting = []

    def made(self):
        """A Deferred firing with the id of the key this sending made (None if it made none)."""
        if self.finished:
            return defer.succeed(self.key_id)
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    def done(self, key_id):
        self.key_id, self.finished = key_id, True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(key_id)


def default_name(portfolios):
    """The name of the default one of ``portfolios`` (a Portfolios answer's list; None, or none marked: None)."""
    return next((p["name"] for p in portfolios or () if p["default"]), None)


class Website:
    app = Klein()

    def __init__(self, worker, settings):
        self.worker = worker
        self.settings = settings
        self.rules = previews.rules(settings)
        #: (username, form id) -> its sending (_KeyForm): a form sent again (a double click, a reload of the
        #: page that showed the secret) makes no second key.  The newest KEY_FORMS only.
        self.key_forms = collections.OrderedDict()

    def providers(self, request):
        """The identity providers this page may offer: the deployment's, when the provider may send the
        person back here (this site on loopback, or an address the operator listed)."""
        if not self.settings.oidc_client_id:
            return []
        callback = security.origin(request) + "/auth/callback"
        loopback = callback.startswith(("http://127.0.0.1:", "http://localhost:", "http://[::1]:"))
        return [self.settings.oidc_name] if loopback or callback in self.settings.oidc_redirect_uris else []

    def resource(self):
        return self.app.resource()

    # --- plumbing ---------------------------------------------------------------------------------

    async def visit(self, request):
        """The signed-in Visit of this request, or None (no cookie, or a session that ended)."""
        token = security.session_token(request)
        if token is None:
            return None
        try:
            username = await self.worker.gateway.session(token, client_ip(request))
        except NotLoggedIn:
            security.clear_cookie(request, security.SESSION_COOKIE)
            return None
        return Visit(token, username, client_ip(request), *security.chosen_portfolio(request))

    async def load_portfolios(self, request, visit, acting=False):
        """The account's open portfolios, for the selector; the chosen one by its name now (renamed elsewhere: the
        browser's choice follows); a chosen one that is gone is forgotten, and the page says so (``acting``: for a
        form's command, which is then refused if it acts on the shown portfolio: never done to another one, nor to
        the default one)."""
        visit.portfolios = (await self.call(visit, commands.Portfolios))["portfolios"]
        if visit.portfolio is None:
            return
        chosen = visit.portfolio
        if visit.portfolio_uuid is not None:
            same = [p for p in visit.portfolios if p["uuid"] == visit.portfolio_uuid]
        else:
            same = [p for p in visit.portfolios if p["name"].casefold() == chosen.casefold()]
        if same:
            visit.portfolio = same[0]["name"]
            if visit.portfolio != chosen or visit.portfolio_uuid is None:  # (renamed, or a choice by name only)
                security.choose_portfolio(request, visit.portfolio, same[0]["uuid"])
            if visit.portfolio.casefold() != chosen.casefold():
                visit.renamed_from = chosen
            visit.portfolio_uuid = same[0]["uuid"]
        elif visit.portfolio_uuid is not None:
            # Closed elsewhere (another browser, the command line): a page shows the default one, and says so; a
            # form's command that would act on the shown portfolio is refused (Website.call), never done to another
            # one given its name since, nor to the default one.
            closed = (await self.call(visit, commands.Portfolios, closed=True))["portfolios"]
            gone = [p for p in closed if p["uuid"] == visit.portfolio_uuid]
            visit.portfolio, visit.gone, visit.refused = None, chosen, acting
            visit.lost = (gone[0]["name"], True) if gone else (chosen, False)
            if not acting:
                security.choose_portfolio(request, None)
        elif not acting:
            # Closed or renamed elsewhere (by a choice from before it held the uuid): the default one, said so.
            security.choose_portfolio(request, None)
            visit.portfolio, visit.lost = None, (chosen, False)

    def call(self, visit, command, **arguments):
        """Pass ``command`` on to the master for ``visit``'s session; fires with the answer.  A command that
        takes a portfolio gets the one this browser shows (unless one is given)."""
        arguments = {k: v for k, v in arguments.items() if v is not None}
        if visit is not None and any(name == b"token" for name, _ in command.arguments):
            arguments["token"] = visit.token
        if (visit is not None and (visit.portfolio is not None or visit.refused)
                and command not in PORTFOLIO_OF_ITS_OWN
                and "portfolio" not in arguments and any(name == b"portfolio" for name, _ in command.arguments)):
            if visit.portfolio is None:  # (the one this browser showed was closed elsewhere)
                name, closed = visit.lost
                return defer.fail(UnknownPortfolio(f"your portfolio {name} was closed elsewhere" if closed else
                                                   f"you have no open portfolio named {name!r} any more"))
            arguments["portfolio"] = visit.portfolio
        ip = visit.ip if visit is not None else "unknown"
        return self.worker.gateway.forward(command, arguments, ip)

    def anonymous(self, request, command, **arguments):
        return self.worker.gateway.forward(command, {k: v for k, v in arguments.items() if v is not None},
                                           client_ip(request))

    async def clock(self, visit):
        """The market clock (None if it cannot be had now); the pages' times are shown in its time zone."""
        try:
            answer = await self.call(visit, commands.Clock)
        except PaperTraderError:
            return None
        if answer.get("timezone") and answer["timezone"] != fmt.zone_name():
            fmt.show_times_in(answer["timezone"])
        return answer

    def chrome(self, request, visit=None, tab=None, clock=None, flash=True):
        """The page's frame; ``flash``: it shows (and so takes) the flash cookie's message (a page another tab's
        session end sent here does not: that message is the other tab's)."""
        portfolios = (visit.portfolios if visit else None) or []
        shown = visit.portfolio if visit else None
        if shown is None:
            shown = default_name(portfolios)
        told = security.take_flash(request) if flash else None
        if told is None and flash and visit is not None and visit.lost is not None:
            name, closed = visit.lost
            told = {"m": f"Your portfolio {name} was closed elsewhere: showing your default portfolio." if closed else
                    f"You have no open portfolio named {name!r} any more (closed or renamed elsewhere): showing your"
                    " default portfolio.", "k": "error"}
        return views.Chrome(csrf=visit.csrf if visit else security.csrf_token(request),
                            username=visit.username if visit else None,
                            flash=told,
                            tab=tab, clock=clock, providers=self.providers(request),
                            portfolios=[p["name"] for p in portfolios], portfolio=shown,
                            update_interval=self.settings.update_interval)

    def failed(self, request, visit, error):
        """A command failed where the page has no better place to say so."""
        if isinstance(error, NotLoggedIn):
            security.clear_cookie(request, security.SESSION_COOKIE)
            security.set_flash(request, views.SESSION_ENDED, "error")
            return redirect(request, "/signin")
        if isinstance(error, UnknownPortfolio) and visit is not None and (visit.portfolio is not None or visit.refused):
            # The portfolio this browser showed was renamed or closed meanwhile: back to the default one.
            security.choose_portfolio(request, None)
            security.set_flash(request, f"{sentence(error.message)} Showing your default portfolio.", "error")
            return redirect(request, "/")
        chrome = self.chrome(request, visit)
        if isinstance(error, MasterUnavailable):
            return html(request, views.error_page(chrome, 503, "Temporarily unavailable", UNREACHABLE), 503)
        if isinstance(error, (UnknownOrder, UnknownSymbol)):
            return html(request, views.error_page(chrome, 404, "Not found", sentence(error.message)), 404)
        return html(request, views.error_page(chrome, 400, "That did not work", sentence(error.message)), 400)

    async def error_chrome(self, request):
        """The page around an error that no route answered: the signed-in header (name, navigation) for a request
        with a live session, as on every other page; the signed-out one without (or if it cannot be checked now)."""
        visit = None
        try:
            visit = await self.visit(request)
            if visit is not None:
                await self.load_portfolios(request, visit)
        except PaperTraderError:
            visit = None
        return self.chrome(request, visit, clock=await self.clock(visit) if visit is not None else None)

    @app.handle_errors(NotFound)
    async def not_found(self, request, failure):
        security.headers(request)
        chrome = await self.error_chrome(request)
        return html(request, views.error_page(chrome, 404, "Not found", "There is no such page here."), 404)

    @app.handle_errors(MethodNotAllowed)
    async def not_allowed(self, request, failure):
        security.headers(request)
        chrome = await self.error_chrome(request)
        return html(request, views.error_page(chrome, 405, "Not allowed", "That is not how this page is used."), 405)

    @app.handle_errors(Exception)
    def unexpected(self, request, failure):
        self.worker.log.failure("website: {method} {path} failed", failure, method=request.method.decode("latin-1"),
                                path=request.path.decode("latin-1")[:200])
        security.headers(request)
        chrome = views.Chrome(csrf=security.csrf_token(request))
        return html(request, views.error_page(chrome, 500, "Something went wrong",
                                              "The server failed to show this page; it has been logged."), 500)

    # --- signing in and out ---------------------------------------------------------------------------

    @app.route("/signin", methods=["GET"])
    async def signin_form(self, request):
        security.headers(request)
        try:
            if await self.visit(request) is not None:
                return redirect(request, safe_back(field(request, "next", 300), "/"))
        except PaperTraderError:
            pass  # the session cannot be checked now: the form, then
        ended = field(request, "session", 8) == "ended"
        # A page whose live connection heard that its session ended sends the browser here so: it says that, and
        # leaves the flash to the tab whose action ended it ("Signed out everywhere", shown there).
        chrome = self.chrome(request, flash=not ended)
        if ended:
            chrome.flash = {"m": views.SESSION_ENDED, "k": "error"}
        username = (chrome.flash or {}).get("u", "")
        _, error, form = refusal(chrome, "signin")
        username = form.get("username", username)
        going = form.get("next") if isinstance(form.get("next"), str) else field(request, "next", 300)
        return html(request, views.signin_page(chrome, username=username if isinstance(username, str) else "",
                                               error=error, going=safe_back(going, "")))

    @app.route("/signin", methods=["POST"])
    @action(needs_session=False)
    async def signin(self, request):
        username = field(request, "username", 64)
        password = field(request, "password")
        remember = field(request, "remember", 8) == "yes"
        going = safe_back(field(request, "next", 300), "/")  # the page asked for before signing in
        try:
            answer = await self.anonymous(request, commands.Login, username=username, password=password,
                                          remember=remember, device=browser(request))
        except BadCredentials:
            return self._signin_again(request, username, "Wrong username or password.", going)
        except MasterUnavailable:
            return self._signin_again(request, username, UNREACHABLE, going)
        except PaperTraderError as e:
            return self._signin_again(request, username, sentence(e.message), going)
        self.start_session(request, answer, remember)
        return redirect(request, going)

    @staticmethod
    def _signin_again(request, username, error, going="/"):
        return refuse(request, "/signin", "signin", error, {"username": username, "next": going})

    def start_session(self, request, answer, remember):
        max_age = None
        if remember:
            max_age = max(0, int(answer["expires"].timestamp() - self.worker.clock.seconds()))
        security.set_cookie(request, security.SESSION_COOKIE, answer["token"], max_age=max_age)
        # A new pre-session secret: forms made before signing in (their CSRF tokens) no longer post as the session.
        security.set_cookie(request, security.PRESESSION_COOKIE, secrets.token_urlsafe(32))

    @app.route("/register", methods=["GET"])
    def register_form(self, request):
        security.headers(request)
        chrome = self.chrome(request)
        _, error, form = refusal(chrome, "register")
        # Where the sign-in page was to lead (an invite link opened before having an account): creating one does.
        going = form.get("next") if isinstance(form.get("next"), str) else field(request, "next", 300)
        return html(request, views.register_page(chrome, form.get("username", ""), form.get("email", ""), error,
                                                 going=safe_back(going, "")))

    @app.route("/register", methods=["POST"])
    @action(needs_session=False)
    async def register(self, request):
        username, email, password = field(request, "username", 64), field(request, "email", 300), \
            field(request, "password")
        going = safe_back(field(request, "next", 300), "/")  # the page asked for before signing in (an invite)
        try:
            made = await self.anonymous(request, commands.Register, username=username, email=email,
                                        password=password)
        except PaperTraderError as e:
            return refuse(request, "/register", "register",
                          UNREACHABLE if isinstance(e, MasterUnavailable) else sentence(e.message),
                          {"username": username, "email": email, "next": going if going != "/" else ""})
        # Signed in at once, as on any broker's site (if that fails, e.g. throttled, the sign-in page asks).
        try:
            answer = await self.anonymous(request, commands.Login, username=username, password=password,
                                          remember=False, device=browser(request))
        except PaperTraderError:
            security.set_flash(request, f"Account {username} created. Sign in to start trading.", "success",
                               u=username)
            return redirect(request, "/signin" if going == "/" else "/signin?" + urlencode({"next": going}))
        self.start_session(request, answer, False)
        security.set_flash(request, f"Welcome, {answer['username']}: your account starts with"
                                    f" {fmt.money(made['cash'])} of paper money."
                                    + (" Find a stock under Trade to buy your first shares." if going == "/" else ""),
                           "success")
        return redirect(request, going)

    @app.route("/signout", methods=["POST"])
    @action(needs_session=False)
    async def signout(self, request):
        token = security.session_token(request)
        if token is not None:
            try:
                await self.anonymous(request, commands.Logout, token=token)
            except NotLoggedIn:
                pass
        security.clear_cookie(request, security.SESSION_COOKIE)
        security.set_flash(request, "You are signed out.", "success")
        return redirect(request, "/signin")

    # --- signing in with an OpenID Connect provider -------------------------------------------------

    @app.route("/auth/<string:provider>/start", methods=["POST"])
    @action(needs_session=False)
    async def provider_start(self, request, provider):
        if provider not in self.providers(request):
            raise ProviderLoginFailed(f"no identity provider {provider[:32]!r} is set up here")
        redirect_uri = security.origin(request) + "/auth/callback"
        try:
            answer = await self.anonymous(request, commands.ProviderStart, provider=provider,
                                          redirect_uri=redirect_uri)
        except PaperTraderError as e:
            return self._signin_again(request, "", sentence(e.message))
        # The sign-in's secret stays in this browser's cookie: the state and code the provider sends back (which
        # may be seen: a history, a proxy's log) finish nothing without it.
        security.set_cookie(request, security.SIGNIN_STATE_COOKIE,
                            f"{provider}.{answer['state']}.{answer['secret']}", max_age=600, same_site="lax")
        chrome = self.chrome(request)
        return html(request, views.redirect_page(chrome, answer["url"], f"Signing in with {provider.capitalize()}",
                                                 "Taking you to your provider's sign-in page..."))

    @app.route("/auth/callback", methods=["GET"])
    async def provider_callback(self, request):
        security.headers(request)
        started = security.cookie(request, security.SIGNIN_STATE_COOKIE) or ""
        security.clear_cookie(request, security.SIGNIN_STATE_COOKIE, same_site="lax")
        provider, _, state = started.partition(".")
        state, _, secret = state.partition(".")
        sent_state = field(request, "state", 200)
        if not state or not secrets.compare_digest(state.encode(), sent_state.encode()):
            return self._signin_again(request, "", "This sign-in was not started in this browser, or took too long."
                                                   " Start again.")
        if field(request, "error", 200):
            return self._signin_again(request, "", f"Signing in with {provider.capitalize()} was canceled.")
        try:
            answer = await self.anonymous(request, commands.ProviderFinish, provider=provider, state=state,
                                          code=field(request, "code", 4096), secret=secret, remember=False,
                                          device=browser(request))
        except PaperTraderError as e:
            return self._signin_again(request, "", sentence(e.message))
        if answer.get("token"):
            self.start_session(request, answer, False)
            # Not a 303: the session cookie is SameSite=Strict, and a redirect at the end of a navigation
            # that began on the provider's site would not carry it.  This page moves on by itself.
            return html(request, views.redirect_page(self.chrome(request), "/", "Signed in",
                                                     f"Welcome back, {answer['username']}."))
        return html(request, views.provider_account_page(self.chrome(request), provider, answer["ticket"],
                                                         answer.get("proposal") or ""))

    @app.route("/auth/finish", methods=["POST"])
    @action(needs_session=False)
    async def provider_account(self, request):
        ticket, username = field(request, "ticket", 200), field(request, "username", 64)
        try:
            if field(request, "action", 10) == "link":
                answer = await self.anonymous(request, commands.ProviderLink, ticket=ticket, username=username,
                                              password=field(request, "password"))
            else:
                answer = await self.anonymous(request, commands.ProviderCreate, ticket=ticket, username=username)
        except BadCredentials:
            return refuse(request, "/auth/finish", "provider", "Wrong username or password.",
                          {"ticket": ticket, "username": username})
        except PaperTraderError as e:
            return refuse(request, "/auth/finish", "provider", sentence(e.message),
                          {"ticket": ticket, "username": username})
        self.start_session(request, answer, False)
        return redirect(request, "/")

    @app.route("/auth/finish", methods=["GET"])
    def provider_account_again(self, request):
        """The form of a new identity again, with why it was refused (its ticket came back in the flash)."""
        security.headers(request)
        chrome = self.chrome(request)
        _, error, form = refusal(chrome, "provider")
        if not isinstance(form.get("ticket"), str):
            return redirect(request, "/signin")
        return html(request, views.provider_account_page(chrome, self.settings.oidc_name, form["ticket"], "", error,
                                                         form.get("username", "")))

    # --- the dashboard -------------------------------------------------------------------------------

    @staticmethod
    def daily(clock):
        """Whether the market moves a session per update (a replay of daily bars): no intraday candles."""
        return bool(clock) and clock.get("step") == "1d"

    def ranges(self, clock):
        return RANGES_DAILY if self.daily(clock) else RANGES_INTRADAY

    async def equity_history(self, visit, clock, chosen):
        """The equity curve of the range ``chosen``; from the portfolio's beginning when that came later than the
        range's start (or for 'all'): a curve (and a change 'since') reaching back before the portfolio existed
        showed days it did not exist (a new account's month was a flat line from a month before it was made).
        Its beginning is when it was made or last reset, in market time (its ``began``: a replay's market time is
        years from the wall clock's ``created``; a game's portfolio: the game's start, if later), or its first trade
        if that came first (a replay moved back);
        for a portfolio made before ``began`` was kept, its first trade, else the whole range."""
        period, timeframe = self.ranges(clock)[chosen]
        first = await self.call(visit, commands.Activities, direction="asc", page_size=1)
        first = first["activities"][0]["time"] if first["activities"] else None
        shown = self.shown_portfolio(visit) or {}
        began = shown.get("began")
        now = (clock or {}).get("time")
        if began is not None and shown.get("game_id") is not None:
            # A game's portfolio, made when its player joined: its curve starts when the game does, if later (a
            # game not started yet is not in sight: from the joining, flat).
            game = await self.game_of(visit, shown["name"])
            if game is not None and began < game["start"] and (now is None or game["start"] <= now):
                began = game["start"]
        if began is not None and now is not None and began > now:
            began = None  # (a replay moved back to before it was made: its beginning is not in sight)
        origin = min((t for t in (first, began) if t is not None), default=None)
        if period is not None or origin is None:
            history = await self.call(visit, commands.PortfolioHistory, period=period or "1M", timeframe=timeframe)
            stamps = history["timestamps"]
            if origin is None or not stamps or origin.timestamp() <= stamps[0]:
                return self.flat_until_now(visit, dict(history, since_start=None, no_trades=first is None), now)
        # From the start of the beginning's bucket (a day's candle is stamped at its open, before a fill at the
        # close), a moment before it: a replay's time stands still between updates, and a curve from the first
        # fill's time to now, that same time, was refused ('the start must come before the end').  A day is the
        # market's (times.day): Sydney's session opens at 23:00 UTC the evening before, and cut at the UTC day a
        # curve beginning later that session (a game starting on a day, its midnight UTC) left out that session's
        # point and started a day late.
        bucket = views.BUCKETS.get(timeframe, 86400)
        if bucket == 86400:
            zone = times.zone((clock or {}).get("timezone") or fmt.zone_name())
            start = times.day_start(origin, zone)

            def bucket_of(moment):
                return times.day(moment, zone)
        else:
            start = datetime.fromtimestamp(origin.timestamp() // bucket * bucket, timezone.utc)

            def bucket_of(moment):
                return moment.timestamp() // bucket
        history = await self.call(visit, commands.PortfolioHistory, timeframe=timeframe,
                                  start=start - timedelta(microseconds=1))
        # (the dashboard then counts the change from the starting cash, and names the first trade when the curve
        # starts with it: views.dashboard_page)
        with_trade = first is not None and bucket_of(first) == bucket_of(origin)
        return self.flat_until_now(
            visit, dict(history, since_start="first trade" if with_trade else "made", no_trades=first is None), now)

    def flat_until_now(self, visit, history, now):
        """A portfolio without a trade and without a point yet (made before the session it is in was played, or
        before any price): its equity now, the cash it started with, so that the chart shows the flat line its note
        speaks of (it showed nothing)."""
        if history["timestamps"] or not history["no_trades"] or now is None:
            return history
        bucket = views.BUCKETS.get(history["timeframe"], 86400)
        stamp = int(now.timestamp()) if bucket == 86400 else int(now.timestamp()) // bucket * bucket
        return dict(history, timestamps=[stamp], equity=[self.starting_cash(visit)])

    def names(self):
        return {q["symbol"]: q.get("name") for q in self.worker.quotes.all()}

    @staticmethod
    def shown_portfolio(visit):
        """The portfolio the pages show (as Portfolios answers it), or None if not known."""
        return next((p for p in visit.portfolios or ()
                     if (p["name"] == visit.portfolio if visit.portfolio is not None else p["default"])), None)

    def starting_cash(self, visit):
        """The shown portfolio's starting cash (for the total P&L)."""
        shown = self.shown_portfolio(visit)
        return shown["starting_cash"] if shown else self.settings.starting_cash

    @app.route("/", methods=["GET"])
    @signed_in()
    async def dashboard(self, request, visit):
        clock = await self.clock(visit)
        ranges = self.ranges(clock)
        chosen = field(request, "range", 8).upper()
        if chosen not in ranges:
            chosen = "1M"
        portfolio, history = await defer.gatherResults(
            [defer.ensureDeferred(self.call(visit, commands.Portfolio)),
             defer.ensureDeferred(self.equity_history(visit, clock, chosen))], consumeErrors=True).addErrback(
            lambda f: f.value.subFailure)
        chrome = self.chrome(request, visit, "dashboard", clock)
        portfolio = dict(portfolio, starting_cash=self.starting_cash(visit))
        return html(request, views.dashboard_page(chrome, portfolio, history, chosen, self.names(),
                                                  list(ranges)))

    # --- assets and the order ticket ------------------------------------------------------------------

    @app.route("/assets", methods=["GET"])
    @signed_in()
    async def assets(self, request, visit):
        query = field(request, "q", 64)
        wanted = query.upper()
        quotes = [q for q in self.worker.quotes.all()
                  if not wanted or wanted in q["symbol"] or wanted in (q.get("name") or "").upper()]
        clock = await self.clock(visit)
        chrome = self.chrome(request, visit, "trade", clock)
        lists = await self.watchlists(visit)
        refused = refusal(chrome, "create", *[f"list:{w['name']}" for w in lists])
        said = None
        if (chrome.flash or {}).get("w") == "watchlists":  # what a change of them did: said beside them
            said, chrome.flash = chrome.flash, None
        card = views.watchlists_card(chrome, lists, {q["symbol"]: q for q in self.worker.quotes.all()}, refused,
                                     said)
        return html(request, views.assets_page(chrome, quotes, query, card,
                                               [s for w in lists for s in w["symbols"]]))

    async def watchlists(self, visit):
        """The account's watchlists, each with its symbols (dicts: name, symbols)."""
        listed = (await self.call(visit, commands.Watchlists))["watchlists"]
        results = await defer.DeferredList([defer.ensureDeferred(self.call(
            visit, commands.GetWatchlist, watchlist_id=w["watchlist_id"])) for w in listed], consumeErrors=True)
        found = []
        for ok, answer in results:
            if ok:
                found.append(dict(name=answer["name"], symbols=answer["symbols"]))
            elif not answer.check(UnknownWatchlist):  # (one deleted meanwhile, elsewhere, is simply not shown)
                answer.raiseException()
        return found

    @staticmethod
    def _symbols_typed(text):
        return [s for s in re.split(r"[\s,]+", text.strip().upper()) if s]

    async def _watchlist_change(self, request, visit, which, form, command, done, **arguments):
        """``command`` on a watchlist; ``done``: what the page then says, in the watchlists' card (in sight and
        focused, so a screen reader hears it).  (Not /assets#watchlists: the browser's jump to a fragment takes
        the focus from the message to the page.)"""
        _, refused = await self.attempt(self.call(visit, command, **arguments),
                                        lambda why: refuse(request, "/assets", which, why, form))
        if refused is not None:
            return refused
        security.set_flash(request, done, "success", w="watchlists")
        return redirect(request, "/assets")

    @app.route("/watchlists", methods=["POST"])
    @action()
    async def create_watchlist(self, request, visit):
        form = {"name": field(request, "name", 64), "symbols": field(request, "symbols", 400)}
        symbols = self._symbols_typed(form["symbols"])
        return await self._watchlist_change(request, visit, "create", form, commands.CreateWatchlist,
                                            f"Watchlist {form['name']} created" +
                                            (f" with {', '.join(symbols)}." if symbols else "."),
                                            name=form["name"], symbols=symbols)

    @app.route("/watchlists/add", methods=["POST"])
    @action()
    async def add_to_watchlist(self, request, visit):
        form = {"name": field(request, "name", 64), "symbols": field(request, "symbols", 400)}
        symbols = self._symbols_typed(form["symbols"])
        back = safe_back(field(request, "back", 300), None)
        if back is not None and symbols:  # from an asset's page: back to it, saying so
            try:
                await self.call(visit, commands.AddToWatchlist, watchlist_name=form["name"], symbols=symbols)
                security.set_flash(request, on_watchlist(symbols, form["name"]), "success")
            except (NotLoggedIn, MasterUnavailable):
                raise
            except PaperTraderError as e:
                security.set_flash(request, sentence(e.message), "error")
            return redirect(request, back)
        if not symbols:
            return refuse(request, "/assets", f"list:{form['name']}", "Type one or more symbols to add.",
                          form)
        return await self._watchlist_change(request, visit, f"list:{form['name']}", form, commands.AddToWatchlist,
                                            on_watchlist(symbols, form["name"]),
                                            watchlist_name=form["name"], symbols=symbols)

    @app.route("/watchlists/remove", methods=["POST"])
    @action()
    async def remove_from_watchlist(self, request, visit):
        name, symbol = field(request, "name", 64), field(request, "symbol", 32)
        if not symbol.strip():
            return refuse(request, "/assets", f"list:{name}", "Choose a symbol to remove.", {})
        return await self._watchlist_change(request, visit, f"list:{name}", {}, commands.RemoveFromWatchlist,
                                            f"{symbol.strip().upper()} removed from your watchlist {name}.",
                                            watchlist_name=name, symbols=[symbol])

    @app.route("/watchlists/delete", methods=["POST"])
    @action()
    async def delete_watchlist(self, request, visit):
        name = field(request, "name", 64)
        return await self._watchlist_change(request, visit, f"list:{name}", {}, commands.DeleteWatchlist,
                                            f"Watchlist {name} deleted.", watchlist_name=name)

    def symbol(self, text):
        symbol = (text or "").strip().upper()[:16]
        if self.worker.quotes.get(symbol) is None:
            raise UnknownSymbol(f"there is no asset {symbol!r} here; search for it under Trade")
        return symbol

    async def page_symbol(self, visit, text):
        """The asset of an asset's page: as ``symbol``, but one the market lists later (a replay's) is said so,
        with the day its prices start."""
        try:
            return self.symbol(text)
        except UnknownSymbol as unknown:
            symbol = (text or "").strip().upper()[:16]
            try:
                found = (await self.call(visit, commands.AssetList, symbol=symbol))["assets"]
            except PaperTraderError:
                raise unknown
            if found and found[0].get("first_day"):
                raise UnknownSymbol(f"{symbol} does not trade yet: its prices start on {found[0]['first_day']} (the"
                                    " market's date is at the top of the page)")
            raise

    async def candles(self, visit, symbol, interval, limit):
        """Candles through the worker's candle cache (shared with AMP clients; valid until the next update)."""
        key = (symbol, limit, interval or "", None, None)
        cached = self.worker.candles.get(key)
        if cached is not None:
            return cached
        answer = await self.call(visit, commands.Candles, symbol=symbol, limit=limit, interval=interval)
        self.worker.candles.put(key, answer)
        return answer

    async def day_candle(self, visit, symbol):
        answer = await self.candles(visit, symbol, "1d", 1)
        return answer["candles"][-1] if answer["candles"] else None

    async def asset_data(self, visit, symbol, interval):
        clock = await self.clock(visit)
        if interval is None or self.daily(clock):
            interval = "1d" if self.daily(clock) else "1m"
        gathered = [self.call(visit, commands.AssetList, symbol=symbol),
                    self.candles(visit, symbol, interval, CANDLE_LIMITS[interval]),
                    self.day_candle(visit, symbol), self.call(visit, commands.Portfolio),
                    self.call(visit, commands.Orders, status="open", symbols=[symbol], limit=OPEN_PAGE),
                    self.call(visit, commands.PortfolioConfiguration)]
        assets, candles, day, portfolio, orders, configuration = await defer.gatherResults(
            [defer.ensureDeferred(c) if not isinstance(c, defer.Deferred) else c for c in gathered],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        asset = assets["assets"][0] if assets["assets"] else {"symbol": symbol}
        # (the ticket says whether the portfolio's trading settings let it trade now, and in fractions)
        return dict(clock=clock, interval=interval, asset=asset, candles=candles["candles"], day=day,
                    portfolio=dict(portfolio, configuration=configuration), orders=list(reversed(orders["orders"])))

    def asset_html(self, request, visit, symbol, data, side="buy", watch="", shares=""):
        """``side`` and ``shares``: the ticket a link asked for (the dashboard's Sell of a position: its shares)."""
        chrome = self.chrome(request, visit, "trade", data["clock"])
        _, error, form = refusal(chrome, "order")
        if not form and isinstance((chrome.flash or {}).get("t"), dict):  # an order placed: the ticket's choices
            form = {k: v for k, v in chrome.flash["t"].items() if k in TICKET_CHOICES and isinstance(v, str)}
        if not form and shares:
            form = {"side": side, "qty": shares}
        side = form.get("side") or side
        client_order_id = form.get("client_order_id")  # the same order, if it is sent again
        form = form or None
        return views.asset_page(chrome, data["asset"], self.worker.quotes.get(symbol), data["candles"],
                                data["interval"], data["day"], data["portfolio"], data["orders"], side=side,
                                form=form, error=error, client_order_id=client_order_id or uuid.uuid4().hex,
                                intervals=["1d"] if self.daily(data["clock"]) else None, watch=watch)

    @app.route("/asset/<string:symbol>", methods=["GET"])
    @signed_in()
    async def asset(self, request, visit, symbol):
        symbol = await self.page_symbol(visit, symbol)
        interval = field(request, "interval", 8) or None
        if interval is not None and interval not in CANDLE_LIMITS:
            interval = None
        data = await self.asset_data(visit, symbol, interval)
        side = field(request, "side", 8) or "buy"
        # A number of shares the link fills the ticket in with (a position's, from the dashboard): a plain number,
        # else nothing (the ticket is empty, as before).
        shares = field(request, "qty", 24)
        if not SHARES_RE.fullmatch(shares):
            shares = ""
        watch = views.watch_form(views.Chrome(csrf=visit.csrf), symbol, await self.watchlists(visit))
        return html(request, self.asset_html(request, visit, symbol, data, side=side, watch=watch, shares=shares))

    @staticmethod
    def ticket_portfolio(request, visit):
        """An order ticket trades the portfolio it names (the one its page showed), not whichever this browser
        shows now (another tab may have changed it)."""
        named = field(request, "portfolio", 64)
        before = visit.renamed_from or visit.gone  # (the ticket of a page made before a rename, or a close, elsewhere)
        if named and not (before is not None and named.casefold() == before.casefold()):
            visit.portfolio, visit.refused = named, False
        elif named and visit.gone is not None:
            visit.refused = True

    async def ticket_by_uuid(self, request, visit):
        """The portfolio an order ticket names by the uuid it carries, whatever its name is now (renamed elsewhere
        since the page was made); closed since, the order is refused (``visit.refused``), never placed in another
        portfolio given its name since (once the browser's choice has forgotten it, the name alone would find
        that one)."""
        named, named_uuid = field(request, "portfolio", 64), field(request, "portfolio_uuid", 64)
        if not (named and named_uuid):
            return
        portfolios = visit.portfolios or (await self.call(visit, commands.Portfolios))["portfolios"]
        same = [p for p in portfolios if p["uuid"] == named_uuid]
        if same:
            visit.portfolio, visit.refused = same[0]["name"], False
        else:
            visit.portfolio, visit.refused, visit.lost = None, True, (named, True)

    async def trading_portfolio(self, visit):
        """The name of the portfolio ``visit``'s commands trade: the one it names, else the account's default
        (None if that cannot be asked now)."""
        if visit.portfolio is not None:
            return visit.portfolio
        try:
            portfolios = (await self.call(visit, commands.Portfolios))["portfolios"]
        except PaperTraderError:
            return None
        return default_name(portfolios)

    @app.route("/asset/<string:symbol>/preview", methods=["GET"])
    @signed_in()
    async def preview(self, request, visit, symbol):
        symbol = self.symbol(symbol)
        form = {name: field(request, name, 32) for name in previews.FIELDS}
        self.ticket_portfolio(request, visit)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        try:
            # (the clock: on a market of daily bars a market order fills at the next session's open, not at the
            # last close the ticket shows; asked alongside, and None if it cannot be had)
            portfolio, configuration, clock = await defer.gatherResults(
                [self.call(visit, commands.Portfolio), self.call(visit, commands.PortfolioConfiguration),
                 defer.ensureDeferred(self.clock(visit))],
                consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        except UnknownPortfolio as e:  # renamed or closed since the page was made: the answer says so
            return previews.as_json({"ok": False, "cost": "—", "after": "—", "buying_power": "—",
                                     "note": f"{sentence(e.message)} Reload the page."})
        return previews.as_json(previews.preview(form, symbol, self.worker.quotes.get(symbol), portfolio,
                                                 self.rules, await self.game_of(visit, portfolio.get("portfolio")),
                                                 configuration, daily=self.daily(clock)))

    async def game_of(self, visit, name):
        """The game (as Games shows it) that ``visit``'s portfolio ``name`` plays in; None for a portfolio outside
        games (asked only for a game's portfolio)."""
        same = [p for p in visit.portfolios or () if name and p["name"].casefold() == name.casefold()]
        if not same or same[0].get("game_id") is None:
            return None
        games = (await self.call(visit, commands.Games))["games"]
        return next((g for g in games if (g.get("portfolio") or "").casefold() == name.casefold()), None)

    @app.route("/asset/<string:symbol>/order", methods=["POST"])
    @action()
    async def place_order(self, request, visit, symbol):
        symbol = self.symbol(symbol)
        form = {name: field(request, name, 32) for name in previews.FIELDS}
        client_order_id = field(request, "client_order_id", 128) or uuid.uuid4().hex
        self.ticket_portfolio(request, visit)
        try:
            await self.ticket_by_uuid(request, visit)
            held = await self.held(visit, symbol) if previews.has_exits(form) else Decimal(0)
            arguments = previews.order_arguments(form, held)
            order = await self.call(visit, commands.PlaceOrder, symbol=symbol, client_order_id=client_order_id,
                                    **arguments)
        except (NotLoggedIn, MasterUnavailable):
            # Sent again from the browser's back button, the form carries the same client order id: whether
            # or not the master made the order, it is made once.
            raise
        except PaperTraderError as e:
            return refuse(request, f"/asset/{symbol}", "order", sentence(e.message),
                          dict(form, client_order_id=client_order_id))
        # The ticket comes back with the choices it was sent with (side, type, time in force, shares or dollars):
        # the next order is often of the same kind; amounts and prices are typed afresh.
        await self.flash_placed(request, visit, order, ticket={k: form[k] for k in TICKET_CHOICES if form.get(k)})
        return redirect(request, f"/asset/{symbol}")

    @app.route("/asset/<string:symbol>/close", methods=["POST"])
    @action()
    async def close_position(self, request, visit, symbol):
        """Sell (or buy back) the whole position at the market: the HTTP API's DELETE /v2/positions/{symbol}; first
        the open orders on the closing side of it are canceled by the master (a stop-loss holding the shares: the
        close would be refused, the button said so, and a beginner met the refusal), as 'Close all' cancels every
        open order; never when the close itself would be refused (trading suspended, a game over)."""
        symbol = self.symbol(symbol)
        try:
            order = await self.call(visit, commands.ClosePosition, symbol=symbol, client_order_id=uuid.uuid4().hex,
                                    cancel_orders=True)
        except InsufficientPosition as e:  # none held, or (a race with a fill) not as many as the sale
            held = any(p["symbol"] == symbol for p in (await self.call(visit, commands.Portfolio))["positions"])
            security.set_flash(request, sentence(e.message) if held else f"You hold no {symbol}: nothing to close.",
                               "error")
            return redirect(request, f"/asset/{symbol}")
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError as e:
            security.set_flash(request, sentence(e.message), "error")
            return redirect(request, f"/asset/{symbol}")
        await self.flash_placed(request, visit, order, order.get("canceled_orders") or 0)
        return redirect(request, f"/asset/{symbol}")

    @app.route("/positions/close-all", methods=["POST"])
    @action()
    async def close_all_positions(self, request, visit):
        try:
            answer = await self.call(visit, commands.CloseAllPositions, cancel_orders=True)
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError as e:  # (trading suspended in the portfolio: nothing was done)
            security.set_flash(request, sentence(e.message), "error")
            return redirect(request, "/")
        orders, failures, canceled = answer["orders"], answer["failures"], answer.get("canceled") or 0
        # (what was done, and only that: it said "your open orders were canceled" when there were none)
        done = [f"{canceled} open order{'s' if canceled != 1 else ''} canceled"] if canceled else []
        if orders:
            done.append(f"{'a market order' if len(orders) == 1 else 'market orders'} placed"
                        f" ({'; '.join(views.order_summary(o) for o in orders)})")
        words = [f"Closing {len(orders)} position{'s' if len(orders) != 1 else ''}"
                 + (": " + " and ".join(done) if done else "") + "."]
        words += [f"{f['symbol']}: {sentence(f['message'])}" for f in failures]
        security.set_flash(request, " ".join(words), "error" if failures else "success")
        return redirect(request, "/")

    async def flash_placed(self, request, visit, order, canceled=0, ticket=None):
        """The flash of an order placed from the website (which portfolio it went to, named: a student who joined a
        game may still be showing another one); ``canceled``: open orders canceled before it (a close)."""
        what = views.order_summary(order)
        if canceled:
            what = (f"{canceled} open {order['symbol']} order{'s' if canceled != 1 else ''} canceled, then "
                    + what[:1].lower() + what[1:])
        name = await self.trading_portfolio(visit)
        if name is not None:
            what += f" in portfolio {name}"
        if order["status"] == "rejected":
            security.set_flash(request, f"{what}: rejected. {sentence(order.get('reason') or '')}", "error")
        else:
            # (o: the order, whose events the page's live connection then writes over this: filled, canceled...)
            security.set_flash(request, f"{what} ({views.order_prices(order)}, {fmt.TIFS[order['time_in_force']]}):"
                                        f" {fmt.STATUS.get(order['status'], order['status'])}." +
                               views.exits_placed(order), "success", o=order["uuid"], t=ticket or {})

    async def held(self, visit, symbol):
        """The quantity of ``symbol`` the portfolio holds (negative: short): whether a ticket's exits close it."""
        portfolio = await self.call(visit, commands.Portfolio)
        return next((p["quantity"] for p in portfolio["positions"] if p["symbol"] == symbol), Decimal(0))

    # --- orders --------------------------------------------------------------------------------------

    @staticmethod
    def order_uuid(text):
        try:
            return str(uuid.UUID(text))
        except ValueError:
            raise UnknownOrder("there is no such order on your account")

    async def order_name(self, visit, order):
        """The order ``order`` (its uuid) as the pages name it ('Buy 1 AAPL'), for a message that names it by its
        number; None if it cannot be read."""
        try:
            return views.order_summary(await self.call(visit, commands.GetOrder, order_uuid=self.order_uuid(order)))
        except PaperTraderError:
            return None

    @app.route("/orders", methods=["GET"])
    @signed_in()
    async def orders(self, request, visit):
        before = page_before(request)

        async def lists():  # the closed ones first: an order that ends meanwhile is never shown in both lists
            closed = await self.call(visit, commands.Orders, status="closed", limit=CLOSED_PAGE, before=before)
            return await self.call(visit, commands.Orders, status="open", limit=OPEN_PAGE), closed

        clock, (open_orders, closed) = await defer.gatherResults(
            [defer.ensureDeferred(self.clock(visit)), defer.ensureDeferred(lists())],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        chrome = self.chrome(request, visit, "orders", clock)
        return html(request, views.orders_page(chrome, list(reversed(open_orders["orders"])),
                                               list(reversed(closed["orders"])), closed.get("next_before")))

    @app.route("/orders/<string:order>", methods=["GET"])
    @signed_in()
    async def order(self, request, visit, order):
        if order.isdigit() and len(order) <= 18:  # the number the command line shows: the page of its order
            found = await self.call(visit, commands.GetOrder, order_id=int(order))
            return redirect(request, f"/orders/{found['uuid']}")
        found = await self.call(visit, commands.GetOrder, order_uuid=self.order_uuid(order))
        group = None
        if found.get("parent_uuid"):  # an exit: its page shows every part of its order, from the first one
            try:
                group = await self.call(visit, commands.GetOrder, order_uuid=found["parent_uuid"])
            except UnknownOrder:
                group = None
        clock = await self.clock(visit)
        return html(request, views.order_page(self.chrome(request, visit, "orders", clock), found, group))

    @app.route("/orders/<string:order>/cancel", methods=["POST"])
    @action()
    async def cancel(self, request, visit, order):
        back = safe_back(field(request, "back", 300), "/orders")
        try:
            canceled = await self.call(visit, commands.CancelOrder, order_uuid=self.order_uuid(order))
        except (OrderNotOpen, UnknownOrder) as e:
            security.set_flash(request, sentence(e.message, await self.order_name(visit, order)), "error")
            return redirect(request, back)
        security.set_flash(request, f"Canceled: {views.order_summary(canceled)} ({views.order_prices(canceled)})." +
                           views.exits_canceled(canceled), "success")
        return redirect(request, back)

    @app.route("/orders/cancel-all", methods=["POST"])
    @action()
    async def cancel_all(self, request, visit):
        answer = await self.call(visit, commands.CancelAllOrders)
        n = len(answer["orders"])
        security.set_flash(request, f"Canceled {n} open order{'s' if n != 1 else ''}.", "success")
        return redirect(request, "/orders")

    @app.route("/orders/<string:order>/replace", methods=["GET"])
    @signed_in()
    async def replace_form(self, request, visit, order):
        found, clock, portfolio = await defer.gatherResults(
            [self.call(visit, commands.GetOrder, order_uuid=self.order_uuid(order)),
             defer.ensureDeferred(self.clock(visit)), defer.ensureDeferred(self.order_portfolio(visit))],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        chrome = self.chrome(request, visit, "orders", clock)  # (the header's market clock, as on every page)
        _, error, form = refusal(chrome, "replace")
        return html(request, views.replace_page(chrome, found, form or None, error,
                                                self.worker.quotes.get(found["symbol"]), portfolio,
                                                await self.order_in_place(visit, found)))

    async def order_in_place(self, visit, order):
        """Of a replaced order, the order in its place now: the last of those that replaced it, one after the other
        (at most REPLACEMENTS_FOLLOWED; None: it was not replaced, or that cannot be asked now)."""
        newest = None
        try:
            for _ in range(REPLACEMENTS_FOLLOWED):
                after = (newest or order).get("replaced_by_uuid")
                if not after:
                    break
                newest = await self.call(visit, commands.GetOrder, order_uuid=after)
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError:
            pass  # (the page still links to the order that replaced it)
        return newest

    async def order_portfolio(self, visit):
        """The Portfolio answer of the portfolio ``visit``'s orders are in (the replace page's preview), or None if
        it cannot be had now (the page is still made, without a preview)."""
        try:
            return await self.call(visit, commands.Portfolio)
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError:
            return None

    @app.route("/orders/<string:order>/replace/preview", methods=["GET"])
    @signed_in()
    async def replace_preview(self, request, visit, order):
        """What the replace page's new order would keep of buying power (JSON, as the ticket's preview)."""
        form = {name: field(request, name, 32) for name in previews.REPLACE_FIELDS}
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        try:
            found, portfolio = await defer.gatherResults(
                [self.call(visit, commands.GetOrder, order_uuid=self.order_uuid(order)),
                 self.call(visit, commands.Portfolio)], consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError as e:  # (the order or the portfolio is gone: the answer says so)
            return previews.as_json({"ok": False, "cost": "—", "after": "—", "buying_power": "—",
                                     "note": f"{sentence(e.message)} Reload the page."})
        return previews.as_json(previews.replace_preview(form, found, self.worker.quotes.get(found["symbol"]),
                                                         portfolio, self.rules))

    @app.route("/orders/<string:order>/replace", methods=["POST"])
    @action()
    async def replace(self, request, visit, order):
        order_uuid = self.order_uuid(order)
        form = {name: field(request, name, 32) for name in ("qty", "limit_price", "stop_price", "trail_by", "trail",
                                                             "time_in_force")}
        trail_key = "trail_price" if form["trail_by"] == "price" else "trail_percent"
        # Typed as people write them, as on the order ticket ('$155.50', '1,000'); a '$' in the shares is refused.
        typed = {k: fmt.typed_number(v) for k, v in form.items() if k in ("qty", "limit_price", "stop_price", "trail")}
        try:
            if "$" in form["qty"]:
                raise InvalidInput("the amount is in shares, not dollars")
            new = await self.call(visit, commands.ReplaceOrder, order_uuid=order_uuid,
                                  quantity=typed["qty"] or None, limit_price=typed["limit_price"] or None,
                                  stop_price=typed["stop_price"] or None, time_in_force=form["time_in_force"] or None,
                                  **{trail_key: typed["trail"] or None})
        except (NotLoggedIn, MasterUnavailable, UnknownOrder):
            raise
        except PaperTraderError as e:
            return refuse(request, f"/orders/{order_uuid}/replace", "replace",
                          sentence(e.message, await self.order_name(visit, order_uuid)), form)
        security.set_flash(request, f"Replaced. New order: {views.order_summary(new)} ({views.order_prices(new)}).",
                           "success")
        return redirect(request, "/orders")

    # --- history ---------------------------------------------------------------------------------------

    @app.route("/history", methods=["GET"])
    @signed_in()
    async def history(self, request, visit):
        after = field(request, "after", 80) or None
        clock, answer = await defer.gatherResults(
            [defer.ensureDeferred(self.clock(visit)),
             self.call(visit, commands.Activities, page_size=HISTORY_PAGE, page_token=after)],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        activities = answer["activities"]
        next_token = activities[-1]["id"] if len(activities) == HISTORY_PAGE else None
        return html(request, views.history_page(self.chrome(request, visit, "history", clock), activities,
                                                next_token, after is None))

    # --- portfolios -----------------------------------------------------------------------------------

    async def portfolios_html(self, request, visit):
        if visit.portfolios is None:
            await self.load_portfolios(request, visit)
        chrome = self.chrome(request, visit, "portfolios", await self.clock(visit))
        _, error, form = refusal(chrome, "portfolio")
        return html(request, views.portfolios_page(chrome, visit.portfolios, form or None, error,
                                                   margin=self.settings.margin_accounts))

    @app.route("/portfolios", methods=["GET"])
    @signed_in()
    async def portfolios(self, request, visit):
        return await self.portfolios_html(request, visit)

    @app.route("/portfolios", methods=["POST"])
    @action()
    async def create_portfolio(self, request, visit):
        form = {"name": field(request, "name", 64), "cash": field(request, "cash", 32),
                "margin": "yes" if field(request, "margin", 8) == "yes" else ""}
        made, refused = await self.attempt(
            self.call(visit, commands.CreatePortfolio, name=form["name"],
                      cash=fmt.typed_number(form["cash"]) or None, margin=bool(form["margin"])),
            lambda why: refuse(request, "/portfolios", "portfolio", why, form))
        if refused is not None:
            return refused
        kind = "Margin portfolio" if made.get("kind") == "margin" else "Portfolio"
        security.set_flash(request, f"{kind} {made['name']} created with {fmt.money(made['cash'])}.", "success")
        return redirect(request, "/portfolios")

    @app.route("/portfolios/use", methods=["POST"])
    @action()
    async def use_portfolio(self, request, visit):
        name = field(request, "name", 64)
        # Back where it was chosen (the selector of every page's header sends no 'back': the page it was on is
        # the Referer, a page of this site, as check_origin made sure).
        back = safe_back(field(request, "back", 300) or referer_path(request), "/")
        await self.load_portfolios(request, visit)
        found = self.named(visit, name)
        if found is None:
            security.set_flash(request, f"You have no open portfolio named {name!r}.", "error")
            return redirect(request, "/portfolios")
        security.choose_portfolio(request, None if found["default"] else found["name"], found["uuid"])
        security.set_flash(request, f"Showing and trading portfolio {found['name']}.", "success")
        return redirect(request, back)

    @staticmethod
    def named(visit, name):
        """The visit's open portfolio named ``name`` (any case), or None."""
        return next((p for p in visit.portfolios or () if p["name"].casefold() == name.casefold()), None)

    async def manage_html(self, request, visit, name):
        if visit.portfolios is None:
            await self.load_portfolios(request, visit)
        found = self.named(visit, name)
        chrome = self.chrome(request, visit, "portfolios", await self.clock(visit))
        if found is None:
            return html(request, views.error_page(chrome, 404, "Not found",
                                                  f"You have no open portfolio named {name!r}."), 404)
        what, error, form = refusal(chrome, "rename", "default", "settings", "close")
        said = None
        if (chrome.flash or {}).get("w") == "settings saved":  # (said beside them)
            said, chrome.flash = chrome.flash, None
        configuration = await self.call(visit, commands.PortfolioConfiguration, portfolio=found["name"])
        return html(request, views.manage_page(chrome, found, form or None, {what: error} if what else None,
                                               configuration, said))

    @staticmethod
    async def attempt(answer, refused):
        """(the answer, None) of a command (``answer``, a Deferred), or, if the master refused it, (None, the answer
        ``refused(why)`` makes: a ``refuse``).  A session that ended or a master out of reach are not refusals: they
        go on."""
        try:
            return await answer, None
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError as e:
            return None, refused(sentence(e.message))

    def managed(self, request, visit, name, command, what, **arguments):
        """``command`` on the portfolio ``name``: its answer, or (a refusal) the manage page saying why."""
        return self.attempt(self.call(visit, command, name=name, **arguments),
                            lambda why: refuse(request, views.manage_link(name), what, why, arguments))

    @app.route("/portfolios/manage", methods=["GET"])
    @signed_in()
    async def manage_form(self, request, visit):
        return await self.manage_html(request, visit, field(request, "name", 64))

    @app.route("/portfolios/rename", methods=["POST"])
    @action()
    async def rename_portfolio(self, request, visit):
        name = field(request, "name", 64)
        renamed, refused = await self.managed(request, visit, name, commands.RenamePortfolio, "rename",
                                              new_name=field(request, "new_name", 64))
        if refused is not None:
            return refused
        if visit.shows(name):
            security.choose_portfolio(request, renamed["name"], renamed["uuid"])  # the pages go on showing it
        security.set_flash(request, f"Portfolio {name} is now called {renamed['name']}.", "success")
        return redirect(request, "/portfolios")

    @app.route("/portfolios/default", methods=["POST"])
    @action()
    async def default_portfolio(self, request, visit):
        name = field(request, "name", 64)
        await self.load_portfolios(request, visit)
        shown = visit.portfolio or default_name(visit.portfolios)
        made, refused = await self.managed(request, visit, name, commands.SetDefaultPortfolio, "default")
        if refused is not None:
            return refused
        # The pages go on showing what they showed: the cookie names it, unless it is the default now.
        same = shown is None or shown.casefold() == made["name"].casefold()
        security.choose_portfolio(request, None if same else shown,
                                  next((p["uuid"] for p in visit.portfolios if p["name"] == shown), None))
        security.set_flash(request, f"Portfolio {made['name']} is now your default: what the command line and"
                                    " the HTTP API trade when they name no portfolio.", "success")
        return redirect(request, "/portfolios")

    @app.route("/portfolios/settings", methods=["POST"])
    @action()
    async def portfolio_settings(self, request, visit):
        """The portfolio's trading settings (its configuration's switches, views.SWITCHES): each box of the form,
        ticked or not (a cash portfolio's form has no long-only box: it never sells short)."""
        name = field(request, "name", 64)
        await self.load_portfolios(request, visit)
        found = self.named(visit, name)
        wanted = {switch: field(request, switch, 4) == "yes" for switch, _, _ in views.SWITCHES}
        if found is not None and found["kind"] != "margin":
            del wanted["no_shorting"]
        # Only what the user changed from what the page showed (the page may be older than a change made elsewhere).
        shown = {switch: field(request, f"shown_{switch}", 4) for switch in wanted}
        sent = {switch: on for switch, on in wanted.items() if shown[switch] not in ("yes", "no")
                or (shown[switch] == "yes") != on}

        def refused(why):
            return refuse(request, views.manage_link(name), "settings", why, wanted)

        before, refusal_page = await self.attempt(
            self.call(visit, commands.PortfolioConfiguration, portfolio=name), refused)
        if refusal_page is None:
            after, refusal_page = await self.attempt(
                self.call(visit, commands.ConfigurePortfolio, portfolio=name, **sent), refused)
        if refusal_page is not None:
            return refusal_page
        changes = [views.SWITCHED[switch][after[switch]] for switch in wanted if before[switch] != after[switch]]
        # Said above the settings (no #settings: the browser's jump to it takes the focus from the message).
        security.set_flash(request, f"Trading settings of {after['portfolio']} saved: {'; '.join(changes)}." if changes
                           else f"Trading settings of {after['portfolio']}: nothing changed.", "success",
                           w="settings saved")
        return redirect(request, views.manage_link(after["portfolio"]))

    @app.route("/portfolios/close", methods=["POST"])
    @action()
    async def close_portfolio(self, request, visit):
        name = field(request, "name", 64)
        if field(request, "confirm", 8) != "yes":
            return redirect(request, views.manage_link(name))
        closed, refused = await self.managed(request, visit, name, commands.ClosePortfolio, "close")
        if refused is not None:
            return refused
        if visit.shows(name):
            security.choose_portfolio(request, None)  # the pages show the default one again
        security.set_flash(request, f"Portfolio {closed['name']} is closed.", "success")
        return redirect(request, "/portfolios")

    @app.route("/portfolios/reset", methods=["GET"])
    @signed_in()
    async def reset_form(self, request, visit):
        name = field(request, "name", 64)
        found = self.named(visit, name)
        chrome = self.chrome(request, visit, "portfolios")
        if found is None:
            return html(request, views.error_page(chrome, 404, "Not found",
                                                  f"You have no open portfolio named {name!r}."), 404)
        return html(request, views.reset_page(chrome, found))

    @app.route("/portfolios/reset", methods=["POST"])
    @action()
    async def reset_portfolio(self, request, visit):
        name = field(request, "name", 64)
        if field(request, "confirm", 8) != "yes":
            return redirect(request, "/portfolios/reset?" + urlencode({"name": name}))
        answer, refused = await self.attempt(self.call(visit, commands.ResetPortfolio, name=name),
                                             lambda why: refuse(request, "/portfolios", "reset", why))
        if refused is not None:
            return refused
        n = answer["canceled"]
        security.set_flash(request, f"Portfolio {answer['name']} starts again with {fmt.money(answer['cash'])}"
                                    f" ({n} open order{'s' if n != 1 else ''} canceled).", "success")
        return redirect(request, "/portfolios")

    # --- games -----------------------------------------------------------------------------------------

    @app.route("/games", methods=["GET"])
    @signed_in()
    async def games(self, request, visit):
        return await self.games_html(request, visit)

    @app.route("/games/join", methods=["POST"])
    @action()
    async def join_game(self, request, visit):
        name, code = field(request, "name", 64), field(request, "code", 128)
        game, refused = await self.attempt(self.call(visit, commands.JoinGame, name=name, code=code or None),
                                           lambda why: refuse(request, "/games", "join", why, {"name": name}))
        if refused is not None:
            return refused
        shown = await self.trading_portfolio(visit)
        security.set_flash(request, f"You play in {game['name']}: your portfolio {game['portfolio']} has"
                                    f" {fmt.money(game['starting_cash'])}." +
                           (f" The pages still show and trade portfolio {shown}: choose \"Show and trade it\" below"
                            " to trade in the game." if shown not in (None, game["portfolio"]) else ""), "success")
        return redirect(request, views.game_link(game["name"]))

    async def games_html(self, request, visit):
        clock, answer = await defer.gatherResults(
            [defer.ensureDeferred(self.clock(visit)), self.call(visit, commands.Games)],
            consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        if visit.portfolios is None:
            await self.load_portfolios(request, visit)
        chrome = self.chrome(request, visit, "games", clock)
        which, error, form = refusal(chrome, "join", "create")
        join = (error, form) if which == "join" else (None, None)
        create = (error, form) if which == "create" else (None, None)
        # A link to join a game (a private game's creator shares it with its code): the form filled in, no more.
        invited = which is None and bool(field(request, "join", 64))
        if invited:
            join = (None, {"name": field(request, "join", 64), "code": field(request, "code", 128)})
        return html(request, views.games_page(chrome, answer["games"], *join, *create, invited=invited,
                                              margin=self.settings.margin_accounts))

    @app.route("/games", methods=["POST"])
    @action()
    async def create_game(self, request, visit):
        form = {name: field(request, name, limit) for name, limit in
                (("name", 64), ("start", 40), ("end", 40), ("cash", 32), ("assets", 4000), ("max_position", 16),
                 ("commission", 64), ("fill_model", 8))}
        for name in ("private", "margin", "allow_short", "show_portfolios"):
            form[name] = field(request, name, 4) == "yes"
        try:
            arguments = dict(name=form["name"], **game_window(form["start"], form["end"], "first day", "last day"),
                             starting_cash=fmt.typed_number(form["cash"]),
                             private=form["private"], show_portfolios=form["show_portfolios"],
                             margin=form["margin"] or form["allow_short"],
                             allow_short=form["allow_short"], commission=form["commission"] or None,
                             fill_model=form["fill_model"] or None,
                             max_position=form["max_position"].strip().rstrip("%") or None,
                             assets=[a.strip().upper() for a in form["assets"].split(",") if a.strip()][:500] or None)
            game = await self.call(visit, commands.CreateGame, **arguments)
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError as e:
            # The market's time is the clock at the top of the page here, not a command to run.
            why = sentence(e.message).replace(" (papertrader clock)", " (the clock at the top of the page)")
            return refuse(request, "/games", "create", why, form)
        # A private game's first invite code goes with the message to the game's page (a cookie of a minute,
        # read once): a reload of that page does not post again.
        security.set_flash(request, f"Game {game['name']} created. Join it to play.", "success",
                           **self.invite(game))
        return redirect(request, views.game_link(game["name"]))

    @staticmethod
    def invite(game):
        """What a flash message carries of a new invite code (nothing if the answer has none)."""
        return {"invite": game["invite_code"], "game": game["name"]} if game.get("invite_code") else {}

    async def game_html(self, request, visit, name):
        name = name[:64]
        try:
            game, board = await defer.gatherResults(
                [self.call(visit, commands.ShowGame, name=name),
                 self.call(visit, commands.GameLeaderboard, name=name, limit=100)],
                consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        except UnknownGame as e:
            return html(request, views.error_page(self.chrome(request, visit, "games"), 404, "Not found",
                                                  sentence(e.message)), 404)
        if visit.portfolios is None:
            await self.load_portfolios(request, visit)
        chrome = self.chrome(request, visit, "games", await self.clock(visit))
        _, error, _ = refusal(chrome, "game")
        flash = chrome.flash or {}
        invite_code = flash.get("invite") if flash.get("game") == game["name"] else None
        if not isinstance(invite_code, str):
            invite_code = None
        return html(request, views.game_page(chrome, game, board, invite_code, error, security.origin(request),
                                             self.rules))

    @app.route("/games/<string:name>", methods=["GET"])
    @signed_in()
    async def game(self, request, visit, name):
        return await self.game_html(request, visit, name)

    @app.route("/games/<string:name>/leaderboard.csv", methods=["GET"])
    @signed_in()
    async def game_leaderboard_csv(self, request, visit, name):
        """The whole leaderboard (``by`` return or sharpe) as a CSV download, for a spreadsheet or a gradebook."""
        by = "sharpe" if request.args.get(b"by") == [b"sharpe"] else "return"
        standings = []
        try:
            while True:
                board = await self.call(visit, commands.GameLeaderboard, name=name[:64], by=by,
                                        offset=len(standings), limit=BOARD_PAGE)
                standings += board["standings"]
                if len(board["standings"]) < BOARD_PAGE:
                    break
        except UnknownGame as e:
            return html(request, views.error_page(self.chrome(request, visit, "games"), 404, "Not found",
                                                  sentence(e.message)), 404)
        request.setHeader(b"Content-Type", b"text/csv; charset=utf-8")
        filename = re.sub(r"[^A-Za-z0-9_.-]+", "-", board["name"]) + f"-leaderboard-by-{by}.csv"
        request.setHeader(b"Content-Disposition", f'attachment; filename="{filename}"'.encode("ascii"))
        return output.standings_csv(standings, board.get("unranked")).encode("utf-8")

    @app.route("/games/<string:name>/players/<string:username>", methods=["GET"])
    @signed_in()
    async def game_player(self, request, visit, name, username):
        """A player's portfolio in a game: its creator's to see, and its players' where the game shows
        portfolios (GamePortfolio decides; a refusal is the same page whoever was asked for)."""
        before = page_before(request)
        try:
            answer = await self.call(visit, commands.GamePortfolio, name=name[:64], username=username[:64],
                                     limit=HISTORY_PAGE, **({"before": before} if before else {}))
        except (UnknownGame, InvalidInput) as e:
            return html(request, views.error_page(self.chrome(request, visit, "games"), 404, "Not found",
                                                  sentence(e.message)), 404)
        except PortfoliosHidden as e:
            return html(request, views.error_page(self.chrome(request, visit, "games"), 403, "Not shown",
                                                  sentence(e.message)), 403)
        if visit.portfolios is None:
            await self.load_portfolios(request, visit)
        chrome = self.chrome(request, visit, "games", await self.clock(visit))
        return html(request, views.game_player_page(chrome, answer, before))

    def manage_game(self, request, visit, name, command, **arguments):
        """``command`` on the game ``name`` (its creator's): its answer, or the game's page saying why not."""
        return self.attempt(self.call(visit, command, name=name[:64], **arguments),
                            lambda why: refuse(request, views.game_link(name[:64]), "game", why))

    @app.route("/games/<string:name>/invite", methods=["POST"])
    @action()
    async def game_invite(self, request, visit, name):
        game, refused = await self.manage_game(request, visit, name, commands.GameInvite)
        if refused is not None:
            return refused
        security.set_flash(request, "A new invite code: the previous one no longer works.", "success",
                           **self.invite(game))
        return redirect(request, views.game_link(game["name"]))

    @app.route("/games/<string:name>/remove", methods=["POST"])
    @action()
    async def game_remove(self, request, visit, name):
        username = field(request, "username", 24)
        game, refused = await self.manage_game(request, visit, name, commands.RemoveGamePlayer, username=username)
        if refused is not None:
            return refused
        security.set_flash(request, f"{username} was removed from {game['name']}.", "success")
        return redirect(request, views.game_link(game["name"]))

    @app.route("/games/<string:name>/end", methods=["POST"])
    @action()
    async def game_end(self, request, visit, name):
        game, refused = await self.manage_game(request, visit, name, commands.EndGame)
        if refused is not None:
            return refused
        if game.get("ended_at") is not None and game["ended_at"] < game["start"]:
            said = "it had not started: no one traded in it."
        elif not game.get("players") and game.get("board_updated") is None:
            said = "trading in it stopped. Nobody played in it: it has no ranking."
        elif game.get("board_updated") is None:  # (the first update after its end ranks it, once)
            said = ("trading in it stopped. No market update ranked it while it ran: the next one makes its final"
                    " ranking, and cancels its open orders.")
        else:
            said = ("trading in it stopped, and its final ranking is the last market update's, below; its open orders"
                    " are canceled at the next update.")
        security.set_flash(request, f"{game['name']} has ended: {said}", "success")
        return redirect(request, views.game_link(game["name"]))

    # --- the account ----------------------------------------------------------------------------------

    def on_account(self, request, visit, what, answer):
        """``attempt`` for the account page: a refusal shows the page with why, beside its ``what`` section."""
        return self.attempt(answer, lambda why: refuse(request, "/account", what, why))

    async def account_html(self, request, visit, new_key=None):
        profile, sessions, keys = await defer.gatherResults(
            [self.call(visit, commands.Profile), self.call(visit, commands.Sessions),
             self.call(visit, commands.ApiKeys)], consumeErrors=True).addErrback(lambda f: f.value.subFailure)
        if visit.portfolios is None:
            await self.load_portfolios(request, visit)
        chrome = self.chrome(request, visit, "account", await self.clock(visit))
        issuers = {self.settings.oidc_issuer.rstrip("/"): self.settings.oidc_name.capitalize()}
        what, error, _ = refusal(chrome, "password", "sessions", "keys", "delete")
        default = default_name(visit.portfolios)
        return html(request, views.account_page(chrome, profile, list(reversed(sessions["sessions"])), keys["keys"],
                                                new_key, {what: error} if what else None, issuers,
                                                key_form=secrets.token_urlsafe(16), default_portfolio=default))

    @app.route("/account", methods=["GET"])
    @signed_in()
    async def account(self, request, visit):
        return await self.account_html(request, visit)

    @app.route("/account/password", methods=["POST"])
    @action()
    async def change_password(self, request, visit):
        try:
            answer = await self.call(visit, commands.ChangePassword, old_password=field(request, "old_password"),
                                     new_password=field(request, "new_password"))
        except BadCredentials:
            return refuse(request, "/account", "password", "The current password is wrong.")
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError as e:
            return refuse(request, "/account", "password", sentence(e.message))
        n = answer["sessions_ended"]
        security.set_flash(request, f"Password changed. {n} other session{'s' if n != 1 else ''} ended."
                           + keys_still_work(answer), "success")
        return redirect(request, "/account")

    @app.route("/account/set-password", methods=["POST"])
    @action()
    async def set_password(self, request, visit):
        password = field(request, "new_password")
        _, refused = await self.on_account(request, visit, "password",
                                           self.call(visit, commands.SetPassword, password=password))
        if refused is not None:
            return refused
        security.set_flash(request, "Password added: you can now sign in with it too.", "success")
        return redirect(request, "/account")

    @app.route("/account/sessions/<string:session_id>/end", methods=["POST"])
    @action()
    async def end_session(self, request, visit, session_id):
        _, refused = await self.on_account(request, visit, "sessions",
                                           self.call(visit, commands.EndSession, session_id=session_id[:32]))
        if refused is not None:
            return refused
        security.set_flash(request, "That session has ended.", "success")
        return redirect(request, "/account")

    @app.route("/account/signout-everywhere", methods=["POST"])
    @action()
    async def signout_everywhere(self, request, visit):
        answer = await self.call(visit, commands.LogoutAll)
        security.clear_cookie(request, security.SESSION_COOKIE)
        n = answer["sessions_ended"]
        security.set_flash(request, f"Signed out everywhere: {n} session{'s' if n != 1 else ''} ended."
                           + keys_still_work(answer), "success")
        return redirect(request, "/signin")

    @app.route("/account/api-keys", methods=["POST"])
    @action()
    async def create_key(self, request, visit):
        form = (visit.username, field(request, "form_id", 64))
        sending = self.key_forms.get(form) if form[1] else None
        if sending is not None:  # sent again: after the first answer, or while it is on its way (a double click)
            made = await sending.made()
            if made is not None:
                security.set_flash(request, f"This form was sent already: it made the key {made}, whose secret was"
                                            " shown once. If you did not copy it, revoke that key and create"
                                            " another.", "error")
                return redirect(request, "/account")
        sending = _KeyForm()
        if form[1]:
            self.key_forms[form] = sending
            while len(self.key_forms) > KEY_FORMS:
                self.key_forms.popitem(last=False)
        key = None
        try:
            name = field(request, "name", 64) or None
            # (none chosen: the default portfolio, as `papertrader api-key create` without --portfolio)
            portfolio = field(request, "key_portfolio", 64) or None
            key, refused = await self.on_account(request, visit, "keys",
                                                 self.call(visit, commands.CreateApiKey, name=name,
                                                           portfolio=portfolio))
        finally:
            if key is None and self.key_forms.get(form) is sending:
                del self.key_forms[form]  # it made no key: sending it again may
            sending.done(key["key_id"] if key is not None else None)
        if refused is not None:
            return refused
        # Shown in this answer only (never stored, never in a URL; the page is not cached).
        return await self.account_html(request, visit, new_key=key)

    @app.route("/account/api-keys/<string:key_id>/revoke", methods=["POST"])
    @action()
    async def revoke_key(self, request, visit, key_id):
        _, refused = await self.on_account(request, visit, "keys",
                                           self.call(visit, commands.RevokeApiKey, key_id=key_id[:64]))
        if refused is not None:
            return refused
        security.set_flash(request, f"Key {key_id[:64]} revoked.", "success")
        return redirect(request, "/account")

    @app.route("/account/profile", methods=["POST"])
    @action()
    async def set_profile(self, request, visit):
        public = field(request, "public", 4) == "yes"
        await self.call(visit, commands.SetProfile, public_portfolio=public)
        security.set_flash(request, "Other users can now see your positions." if public else
                           "Your positions are now hidden from other users.", "success")
        return redirect(request, "/account")

    @app.route("/account/delete", methods=["POST"])
    @action()
    async def delete_account(self, request, visit):
        try:
            await self.call(visit, commands.DeleteAccount, password=field(request, "password"))
        except BadCredentials:
            return refuse(request, "/account", "delete", "The password is wrong.")
        except (NotLoggedIn, MasterUnavailable):
            raise
        except PaperTraderError as e:
            return refuse(request, "/account", "delete", sentence(e.message))
        security.clear_cookie(request, security.SESSION_COOKIE)
        security.set_flash(request, "Your account has been deleted.", "success")
        return redirect(request, "/signin")

