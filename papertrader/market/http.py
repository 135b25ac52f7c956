"""What every live market data provider over HTTP shares: timeouts, back-off, rate limits, one log line per outage.

A :class:`ProviderHTTP` is one provider host as the sources see it:

- every request goes through treq with a deadline of ``timeout`` seconds for the
  whole exchange (connection, answer and body), and a cap on the body's size, so a
  hung or flooding provider never stalls the market update loop;
- an *attempt* (one ``fetch``, ``assets`` or ``corporate_actions``, however many
  requests it makes) either succeeds or fails as a whole with
  :class:`SourceUnavailable`: a timeout, a refused or lost connection, a 5xx or any
  other unexpected status, or a malformed body (:class:`answers.Malformed`);
- after a failure the host is left alone for 1 s, then 2 s, 4 s ... at most
  ``MAX_BACKOFF`` (60 s) after each further failure: an attempt in between fails at
  once, without a request;
- a 429 stops requests until its ``Retry-After`` (seconds or an HTTP date), else its
  ``X-RateLimit-Reset`` (Unix seconds, what Alpaca documents), else for
  ``RATE_LIMIT_FALLBACK`` seconds -- never longer than ``MAX_RATE_LIMIT_WAIT``;
- :attr:`state` is ``"ok"``, ``"unavailable: <reason>"`` or ``"rate limited until
  <time>"`` for the console, and each change of state is logged once
  (``"alpaca: unavailable: HTTP 503 ..."`` ... ``"alpaca: back after 42 s"``), not once
  per update;
- credentials live only in the request headers; every reason is scrubbed of them
  before it reaches a log line, ``state`` or an exception.

All timing uses the injected reactor (``seconds``, ``callLater``), so tests drive
back-off and rate limits with a ``task.Clock``.
"""

import email.utils
import re

import treq.client
from twisted.internet import defer, error
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, ResponseFailed
from twisted.web.http import PotentialDataLoss
from zope.interface import directlyProvides, providedBy

from papertrader import __version__
from papertrader.market.answers import Malformed
from papertrader.market.sources import SourceUnavailable
from papertrader.times import utc

MAX_BACKOFF = 60.0
RATE_LIMIT_FALLBACK = 60.0
MAX_RATE_LIMIT_WAIT = 3600.0
#: Largest body read from a provider (a bigger one is a malformed answer).
MAX_BODY = 16 * 1024 * 1024
#: Largest error body read to say what went wrong.
MAX_ERROR_BODY = 64 * 1024
#: How many distinct "unknown symbol" (etc.) notes are remembered, so each is logged once.
MAX_NOTES = 10_000
USER_AGENT = f"PaperTrader/{__version__} (+self-hosted paper trading)"


class RateLimited(SourceUnavailable):
    def __init__(self, reason, until):
        super().__init__(reason)
        self.until = until


class BodyTooLarge(Exception):
    pass


class _Body(Protocol):
    """Collects a response body up to ``limit`` bytes; cancelling it aborts the connection."""

    def __init__(self, finished, limit):
        self.finished = finished
        self.limit = limit
        self.parts = []
        self.size = 0

    def dataReceived(self, data):
        if self.finished is None:
            return
        self.size += len(data)
        if self.size > self.limit:
            finished, self.finished = self.finished, None
            self.abort()
            finished.errback(BodyTooLarge(f"the answer is larger than {self.limit} bytes"))
            return
        self.parts.append(data)

    def connectionLost(self, reason=None):
        finished, self.finished = self.finished, None
        if finished is None:
            return
        if reason is None or reason.check(ResponseDone, PotentialDataLoss):
            finished.callback(b"".join(self.parts))
        else:
            finished.errback(reason)

    def abort(self):
        transport = self.transport
        if transport is not None:
            (getattr(transport, "abortConnection", None) or transport.loseConnection)()


def read_body(response, limit):
    """A Deferred firing with the whole body (bytes), at most ``limit`` bytes; cancel aborts the connection."""
    protocol = _Body(None, limit)

    def cancel(_):
        protocol.finished = None  # the Deferred fails with CancelledError; the lost connection is expected
        protocol.abort()
    d = defer.Deferred(cancel)
    protocol.finished = d
    response.deliverBody(protocol)
    return d


def retry_after(headers, now):
    """When a 429 lets us try again (reactor seconds), from Retry-After, X-RateLimit-Reset, or the fallback."""
    value = headers.getRawHeaders(b"retry-after", [None])[-1]
    until = None
    if value is not None:
        text = value.decode("latin-1").strip()
        if re.fullmatch(r"[0-9]{1,10}", text):
            until = now + int(text)
        else:
            try:
                until = email.utils.parsedate_to_datetime(text).timestamp()
            except (TypeError, ValueError, IndexError, OverflowError):
                until = None
    if until is None:
        reset = headers.getRawHeaders(b"x-ratelimit-reset", [None])[-1]
        if reset is not None and re.fullmatch(rb"\s*[0-9]{1,12}\s*", reset):
            until = float(int(reset))
    if until is None:
        until = now + RATE_LIMIT_FALLBACK
    return min(max(until, now + 1), now + MAX_RATE_LIMIT_WAIT)


def _error_text(body):
    """A short, printable hint from an error body: its JSON "message", else its text without markup."""
    text = body[:4096].decode("utf-8", "replace")
    match = re.search(r'"message"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    if match:
        text = match.group(1)
    else:
        title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE | re.DOTALL)
        text = title.group(1) if title else re.sub(r"<[^>]*>", " ", text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return text[:120]


class ProviderHTTP:
    """One provider host: requests with deadlines, attempts with back-off, rate limits and a state."""

    def __init__(self, name, reactor=None, timeout=10.0, log=None, headers=None, secrets=(),
                 max_body=MAX_BODY, user_agent=USER_AGENT, refused_hint=None):
        """``refused_hint``: what to check when the provider answers 401 or 403 (its keys), said with it."""
        self.refused_hint = refused_hint
        if reactor is None:
            from twisted.internet import reactor
        if not timeout or timeout <= 0:
            raise ValueError("a provider needs a positive timeout")
        self.name = name
        self.reactor = reactor
        self.timeout = float(timeout)
        self.log = log or Logger(namespace=f"papertrader.market.{name}")
        self.max_body = max_body
        self._headers = {"User-Agent": [user_agent], "Accept": ["application/json, text/plain, */*"]}
        self._headers.update({k: [v] for k, v in (headers or {}).items()})
        self._secrets = [s for s in secrets if s]
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        # A fetch sends its batches at once (500 symbols = 5 requests to Alpaca): keep them all alive,
        # so the next update reuses the connections instead of a TLS handshake each.
        self.pool.maxPersistentPerHost = 10
        # treq's HTTPClient keeps a cookie jar across requests (some hosts need their load-balancer cookie).
        self.client = treq.client.HTTPClient(Agent(reactor, pool=self.pool, connectTimeout=self.timeout))
        #: "ok", "unavailable: <reason>" or "rate limited until <time>" -- for the console and ``clock``.
        self.state = "ok"
        self.requests = 0
        self._failures = 0
        self._down_since = None
        self._blocked_until = None
        self._noted = set()

    def __repr__(self):
        return f"<ProviderHTTP {self.name} {self.state}>"

    # --- what may be said ---------------------------------------------------------------

    def scrub(self, text):
        """``text`` without any credential in it."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def note_once(self, key, format, **fields):
        """Log a warning the first time ``key`` is met (an unknown symbol, a known quirk...)."""
        if key in self._noted or len(self._noted) >= MAX_NOTES:
            return
        self._noted.add(key)
        self.log.warn(format, **{k: self.scrub(v) if isinstance(v, str) else v for k, v in fields.items()})

    # --- attempts: back-off, rate limits, state -------------------------------------------

    def attempt(self, operation, *args, **kwargs):
        """Run ``operation`` (a function returning a Deferred that makes this host's requests) as one attempt.

        Fires with its result, or fails with SourceUnavailable -- at once, without a request,
        while the host is backing off or rate limited.
        """
        now = self.reactor.seconds()
        if self._blocked_until is not None and now < self._blocked_until:
            wait = self._blocked_until - now
            return defer.fail(SourceUnavailable(f"{self.name}: {self.state} (next try in {wait:.0f} s)"))
        d = defer.maybeDeferred(operation, *args, **kwargs)
        d.addCallbacks(self._succeeded, self._failed)
        return d

    def _succeeded(self, result):
        if self.state != "ok":
            down = self.reactor.seconds() - self._down_since
            self.log.info("{name}: back after {seconds} s", name=self.name, seconds=round(down))
        self.state = "ok"
        self._failures = 0
        self._down_since = None
        self._blocked_until = None
        return result

    def _failed(self, failure):
        now = self.reactor.seconds()
        was = self.state
        if self._down_since is None:
            self._down_since = now
        if failure.check(RateLimited):
            until = failure.value.until
            reason = self.scrub(str(failure.value))
            self._blocked_until = until
            self.state = f"rate limited until {utc(until).strftime('%Y-%m-%d %H:%M:%S')} UTC"
            if not was.startswith("rate limited"):
                self.log.warn("{name}: {state} ({reason})", name=self.name, state=self.state, reason=reason)
            raise SourceUnavailable(f"{self.name}: {self.state} ({reason})")
        else:
            if failure.check(SourceUnavailable):
                reason = self.scrub(str(failure.value))
            else:  # a bug of ours, not the provider's: keep the traceback for the developer, once
                reason = self.scrub(f"unexpected {type(failure.value).__name__}: {failure.value}")
                self.note_once(("bug", type(failure.value)), "{name}: unexpected error while reading an answer: "
                               "{reason}", name=self.name, reason=reason)
            self._failures += 1
            delay = min(MAX_BACKOFF, 2.0 ** (self._failures - 1))
            self._blocked_until = now + delay
            self.state = f"unavailable: {reason}"
            if not was.startswith("unavailable"):
                self.log.warn("{name}: unavailable: {reason}", name=self.name, reason=reason)
        raise SourceUnavailable(f"{self.name}: {self.state}")

    # --- requests -------------------------------------------------------------------------

    def get_json(self, url, params, what, load, max_body=None):
        """GET ``url`` (within the deadline) and fire with ``load(body)``; fails with SourceUnavailable."""
        return self.get(url, params, what, max_body).addCallback(load)

    def get(self, url, params, what, max_body=None):
        """GET ``url`` and fire with its body (bytes) if the status is 200; every other outcome fails
        with SourceUnavailable (RateLimited for a 429) whose message names ``what`` and never a credential."""
        self.requests += 1
        d = self._get(url, params, what, max_body or self.max_body)
        d.addTimeout(self.timeout, self.reactor)
        d.addErrback(self._reason, what)
        return d

    @defer.inlineCallbacks
    def _get(self, url, params, what, max_body):
        response = yield self.client.get(url, params=params, headers=self._headers, timeout=self.timeout,
                                         reactor=self.reactor, allow_redirects=False, unbuffered=True)
        if response.code == 200:
            return (yield read_body(response, max_body))
        body = b""
        try:
            body = yield read_body(response, MAX_ERROR_BODY)
        except BodyTooLarge:
            pass
        status = f"HTTP {response.code} {response.phrase.decode('latin-1', 'replace')}".strip()
        hint = _error_text(body)
        reason = f"{status} for {what}" + (f": {hint}" if hint else "")
        if response.code in (401, 403) and self.refused_hint:
            reason += f" ({self.refused_hint})"
        if response.code == 429:
            raise RateLimited(self.scrub(reason), retry_after(response.headers, self.reactor.seconds()))
        raise SourceUnavailable(self.scrub(reason))

    def _reason(self, failure, what):
        """Every way a request can fail, as a SourceUnavailable with a reason a person can act on."""
        if failure.check(SourceUnavailable):
            return failure
        if failure.check(BodyTooLarge):
            raise Malformed(f"{what}: {failure.value}")
        if failure.check(defer.TimeoutError, defer.CancelledError, error.TimeoutError):
            raise SourceUnavailable(f"no answer for {what} within {self.timeout:g} s")
        if failure.check(ResponseFailed) and any(
                f.check(defer.CancelledError, defer.TimeoutError) for f in failure.value.reasons):
            raise SourceUnavailable(f"no answer for {what} within {self.timeout:g} s")
        if failure.check(error.ConnectError, error.DNSLookupError):
            raise SourceUnavailable(self.scrub(f"cannot connect for {what}: {failure.getErrorMessage()}"))
        if failure.check(ResponseFailed):
            reasons = "; ".join(f.getErrorMessage() for f in failure.value.reasons)
            raise SourceUnavailable(self.scrub(f"the connection failed during {what}: {reasons}"))
        if failure.check(error.ConnectionLost, error.ConnectionDone):
            raise SourceUnavailable(f"the connection was lost during {what}")
        return failure  # a bug: _failed logs it once and still reports SourceUnavailable

    def close(self):
        """Close the kept-alive connections (when the source stops)."""
        return self.pool.closeCachedConnections()


def batches(items, size):
    """``items`` in lists of at most ``size``."""
    items = list(items)
    return [items[i:i + size] for i in range(0, len(items), size)]


class ClockedReactor:
    """A reactor for I/O that tells time by another clock (``seconds``, ``callLater``): a master whose
    market runs on an injected clock gives its HTTP sources the same time (tests use a task.Clock)."""

    def __init__(self, clock, real):
        self._clock = clock
        self._real = real
        directlyProvides(self, *providedBy(real))

    def seconds(self):
        return self._clock.seconds()

    def callLater(self, delay, f, *args, **kwargs):
        return self._clock.callLater(delay, f, *args, **kwargs)

    def getDelayedCalls(self):
        return self._clock.getDelayedCalls()

    def __getattr__(self, name):
        return getattr(self._real, name)
