"""A local stand-in for a market data provider: twisted.web on 127.0.0.1 serving recorded answers.

Each path gets a queue of answers (status, headers, body) -- the last one repeats --,
``HANG`` (the request is held open and never answered) or a :class:`Partial` answer (the
headers and the start of the body, then silence).  Every request is recorded with its
path, query and headers, and tests can wait (with a timeout) for the n-th one to arrive.
Also :class:`ClockedReactor`: the real reactor for sockets and a ``task.Clock`` for time, so
a test drives back-off, Retry-After and timeouts of a source that really speaks HTTP.
"""

import json
import pathlib
from dataclasses import dataclass, field

from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.python.failure import Failure
from twisted.web import resource, server
from papertrader.market import http

FIXTURES = pathlib.Path(__file__).parent / "fixtures" / "providers"
HANG = object()
PHRASES = {429: b"Too Many Requests"}  # twisted.web knows no phrase for 429
WAIT = 10  # seconds any wait in these tests may take before it fails


def fixture(name):
    return (FIXTURES / name).read_bytes()


def fixture_json(name):
    return json.loads(fixture(name))


def answer(body, status=200, headers=None, content_type="application/json; charset=utf-8"):
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return (status, dict({"Content-Type": content_type}, **(headers or {})), body)


@dataclass(frozen=True)
class Partial:
    """Send the status, the headers (announcing ``length`` bytes) and ``start``, then nothing more."""

    start: bytes
    length: int
    status: int = 200


@dataclass
class Seen:
    path: str
    args: dict  # name -> [values] (str)
    headers: dict  # lower-case name -> [values] (str)
    #: fires with "finished" when the answer was sent, "lost" when the connection closed before
    lost: defer.Deferred = field(default=None, repr=False)

    def arg(self, name):
        values = self.args.get(name)
        return values[0] if values else None


class Provider(resource.Resource):
    """Recorded answers by path: a list, the last one repeating; an answer may be a callable(Seen) making one."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.answers = {}
        self.seen = []
        self._waiters = []
        self.held = []
        self.port = None

    async def start(self):
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server.Site(self))
        return f"http://127.0.0.1:{self.port.getHost().port}"

    async def stop(self):
        for request in self.held:
            if not request.finished and request.channel is not None:
                request.channel.transport.abortConnection()
        await self.port.stopListening()

    def on(self, path, *answers):
        self.answers[path] = list(answers)

    def requests(self, path=None):
        return [s for s in self.seen if path is None or s.path == path]

    def wait_for_requests(self, n):
        """A Deferred firing once ``n`` requests have arrived (fails after WAIT seconds)."""
        d = defer.Deferred()
        self._waiters.append((n, d))
        self._wake()
        return d.addTimeout(WAIT, reactor)

    def _wake(self):
        for n, d in list(self._waiters):
            if len(self.seen) >= n:
                self._waiters.remove((n, d))
                d.callback(self.seen[n - 1])

    def render_GET(self, request):
        path = request.path.decode()
        headers = request.requestHeaders.getAllRawHeaders()
        seen = Seen(path, {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()},
                    {k.decode().lower(): [v.decode() for v in vs] for k, vs in headers},
                    request.notifyFinish().addBoth(lambda r: "lost" if isinstance(r, Failure) else "finished"))
        self.seen.append(seen)
        reactor.callLater(0, self._wake)
        queue = self.answers.get(path)
        if queue is None:
            request.setResponseCode(404)
            return b'{"message": "not found"}'
        choice = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(choice):
            choice = choice(seen)
        if choice is HANG:
            self.held.append(request)
            return server.NOT_DONE_YET
        if isinstance(choice, Partial):
            request.setResponseCode(choice.status)
            request.setHeader("Content-Type", "application/json")
            request.setHeader("Content-Length", str(choice.length))
            request.write(choice.start)
            self.held.append(request)
            return server.NOT_DONE_YET
        status, headers, body = choice
        request.setResponseCode(status, PHRASES.get(status))
        for name, value in headers.items():
            request.setHeader(name, value)
        return body


class ClockedReactor(http.ClockedReactor):
    """The real reactor for I/O and a task.Clock for time; tests can wait for a call to be scheduled."""

    def __init__(self, clock, real=reactor):
        super().__init__(clock, real)
        self._waiters = []

    def callLater(self, delay, f, *args, **kwargs):
        call = super().callLater(delay, f, *args, **kwargs)
        for wanted, d in list(self._waiters):
            if wanted == delay:
                self._waiters.remove((wanted, d))
                d.callback(call)
        return call

    def wait_for_call(self, delay):
        """A Deferred firing once something schedules a call ``delay`` seconds ahead (fails after WAIT s)."""
        d = defer.Deferred()
        self._waiters.append((delay, d))
        return d.addTimeout(WAIT, self._real)

