"""The website's guards: its cookies, CSRF tokens, the Origin check and the security headers.

- The session is the master's session token in the cookie ``__Host-pt_session``: HttpOnly (no script
  reads it), Secure, SameSite=Strict (no other site's page or link sends it), Path=/ and no Domain (the
  ``__Host-`` prefix makes the browser insist on all of that).  It never appears in a page, a URL or a log.
- Every state-changing request (POST) carries a CSRF token in a form field (or the ``X-CSRF-Token``
  header) that must equal the one derived from the request's own cookie: SHA-256 of the session token
  when signed in, else of a random pre-session cookie (so sign-in and registration are protected too).
  A page of another site cannot read the token, and cannot make the browser send the cookie anyway.
  The token is derived, not stored, so every worker accepts the forms of every other one.
- A POST must show it comes from this site's own pages, before anything else: its ``Origin`` must be this
  site's; a POST without one (a browser that sends none) must have a ``Referer`` on this site; one with
  neither is refused.
- Every answer says: a Content-Security-Policy with scripts and styles from this site only (no inline
  script or style, no eval), no framing, no MIME sniffing, no referrer to other sites, no caching of
  pages.
- Which portfolio the pages show is the cookie ``__Host-pt_portfolio``: the portfolio's name only (never a
  secret), HttpOnly, SameSite=Strict; it is set by a CSRF-checked POST.
"""

import base64
import hashlib
import hmac
import json
import re
import secrets
from urllib.parse import quote, unquote

SESSION_COOKIE = b"__Host-pt_session"
#: The portfolio the pages show and trade: its NAME (URL-quoted) and ``:UUID``, never a secret.
PORTFOLIO_COOKIE = b"__Host-pt_portfolio"
PRESESSION_COOKIE = b"__Host-pt_pre"
FLASH_COOKIE = b"__Host-pt_flash"
#: The state of a provider sign-in in progress; SameSite=Lax, because the provider sends the browser
#: back with a top-level navigation from its own site (and the state must then be there).
SIGNIN_STATE_COOKIE = b"__Host-pt_oidc"
CSRF_FIELD = "csrf"
CSRF_HEADER = b"X-CSRF-Token"

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self';"
       " font-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

PAGE_HEADERS = {
    b"Content-Security-Policy": CSP.encode(),
    b"X-Content-Type-Options": b"nosniff",
    b"X-Frame-Options": b"DENY",
    b"Referrer-Policy": b"same-origin",
    b"Cross-Origin-Opener-Policy": b"same-origin",
    b"Cross-Origin-Resource-Policy": b"same-origin",
    b"Permissions-Policy": b"camera=(), microphone=(), geolocation=(), payment=()",
}


class Refused(Exception):
    """A request the guards turn away (bad CSRF token, foreign origin): status and a message for people."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


#: What a request refused for where it came from is told.
FOREIGN = "This request came from another site and was refused."


def headers(request, cache=False):
    """Set the security headers on ``request`` (``cache``: a static file that may be kept)."""
    for name, value in PAGE_HEADERS.items():
        request.setHeader(name, value)
    if request.isSecure():
        request.setHeader(b"Strict-Transport-Security", b"max-age=31536000")
    request.setHeader(b"Cache-Control", b"public, max-age=86400" if cache else b"no-store")


#: The longest cookie value read (a session token, a portfolio's name...), and the flash message's (a refusal with
#: what was typed in its form: browsers keep cookies of up to 4096 bytes, name and attributes included).
MAX_COOKIE = 512
MAX_FLASH = 3800


def cookie(request, name, limit=MAX_COOKIE):
    value = request.getCookie(name)
    if not value or len(value) > limit:
        return None
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        return None


def set_cookie(request, name, value, max_age=None, same_site="strict"):
    request.addCookie(name, value.encode("ascii"), path=b"/", secure=True, httpOnly=True, sameSite=same_site,
                      max_age=None if max_age is None else str(int(max_age)).encode())


def clear_cookie(request, name, same_site="strict"):
    request.addCookie(name, b"", path=b"/", secure=True, httpOnly=True, sameSite=same_site, max_age=b"0")


def chosen_portfolio(request):
    """The portfolio this browser chose to show: (its name, its uuid or None), or (None, None): the account's
    default."""
    return portfolio_choice(cookie(request, PORTFOLIO_COOKIE))


def portfolio_choice(value):
    """(name, uuid) of a portfolio cookie's value: ``NAME`` quoted, then ``:UUID`` (the uuid follows a rename made
    elsewhere; a cookie from before it held the name only: (name, None)); (None, None) if none."""
    if not value:
        return None, None
    name, _, uuid = value.partition(":")
    uuid = uuid if re.fullmatch(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", uuid) else None
    name = unquote(name)[:64]
    return (name, uuid) if name else (None, None)


def choose_portfolio(request, name, uuid=None):
    """Show and trade ``name`` (whose uuid is ``uuid``) from now on in this browser (None: the default portfolio)."""
    if name is None:
        clear_cookie(request, PORTFOLIO_COOKIE)
    else:
        set_cookie(request, PORTFOLIO_COOKIE, quote(name, safe="") + (f":{uuid}" if uuid else ""))


def session_token(request):
    """The session cookie's token; None when there is none, or it holds an API key's credentials (``apikey:``):
    a browser signs in with a password or a provider, never with a program's key."""
    return session_value(cookie(request, SESSION_COOKIE))


def session_value(token):
    return None if token is None or token.startswith("apikey:") else token


def csrf_for(secret):
    """The CSRF token of a session token (or of a pre-session cookie)."""
    return hashlib.sha256(b"papertrader csrf\0" + secret.encode("ascii")).hexdigest()


def presession(request):
    """This browser's pre-session secret (made and set on first use)."""
    value = cookie(request, PRESESSION_COOKIE)
    if value is None:
        value = getattr(request, "_pt_pre", None)
    if value is None:
        value = secrets.token_urlsafe(32)
        set_cookie(request, PRESESSION_COOKIE, value)
        request._pt_pre = value
    return value


def csrf_token(request, token=None):
    """The token forms of this page carry: from the session, else from the pre-session cookie."""
    return csrf_for(token if token is not None else presession(request))


def origin(request):
    """This site's origin as the browser names it: scheme://host[:port] from the Host header."""
    host = (request.getHeader(b"host") or b"").decode("latin-1").strip()
    return f"{'https' if request.isSecure() else 'http'}://{host}"


def check_origin(request):
    """Refuse a state-changing request unless it shows it came from this site's own page: its ``Origin`` is
    this site's; or, from a browser that sends no ``Origin``, its ``Referer`` is a page of this site (our
    ``Referrer-Policy: same-origin`` sends one to this site).  A request naming neither is refused too."""
    here = origin(request)
    sent = request.getHeader(b"origin")
    if sent is not None:
        if sent.decode("latin-1") != here:
            raise Refused(403, FOREIGN)
        return
    if (request.getHeader(b"sec-fetch-site") or b"same-origin") not in (b"same-origin", b"none"):
        raise Refused(403, FOREIGN)
    referer = (request.getHeader(b"referer") or b"").decode("latin-1")
    if referer != here and not referer.startswith(here + "/"):
        raise Refused(403, FOREIGN)


def check_csrf(request, sent):
    """Refuse a POST whose CSRF token is not this browser's."""
    check_origin(request)
    token = session_token(request)
    secrets_ = [s for s in (token, cookie(request, PRESESSION_COOKIE)) if s]
    if not sent or not secrets_:
        raise Refused(403, "This form has expired or your browser refused our cookies: reload the page and try"
                           " again (cookies must be allowed for this site).")
    if not any(hmac.compare_digest(csrf_for(s), sent) for s in secrets_):
        raise Refused(403, "This form has expired (you may have signed in or out in another tab): reload the page"
                           " and try again.")


def set_flash(request, message, kind="info", **more):
    """A message for the next page (after a redirect), in a short-lived cookie of at most MAX_FLASH bytes: the
    message (its first 400 characters) always; of ``more`` (what was typed in a refused form: ``f``), the
    longest values are left out until it fits."""
    more = {k: (dict(v) if isinstance(v, dict) else v) for k, v in more.items()}

    def encoded():
        data = json.dumps(dict(more, m=message[:400], k=kind), separators=(",", ":"), ensure_ascii=False)
        return base64.urlsafe_b64encode(data.encode("utf-8")).decode("ascii")

    value = encoded()
    while len(value) > MAX_FLASH and isinstance(more.get("f"), dict) and more["f"]:
        typed = more["f"]
        typed.pop(max(typed, key=lambda k: len(json.dumps(typed[k], ensure_ascii=False))))
        value = encoded()
    set_cookie(request, FLASH_COOKIE, value, max_age=60)


def take_flash(request):
    """The flash message for this page (and forget it): a dict with ``m`` (text) and ``k`` (kind), or None."""
    raw = cookie(request, FLASH_COOKIE, MAX_FLASH)
    if raw is None:
        return None
    clear_cookie(request, FLASH_COOKIE)
    try:
        data = json.loads(base64.urlsafe_b64decode(raw.encode("ascii")).decode("utf-8"))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("m"), str):
        return None
    return data
