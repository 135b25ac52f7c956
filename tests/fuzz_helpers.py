"""Shared by the fuzz tests: hypothesis run in a thread against a live cluster, raw AMP boxes, hostile values.

hypothesis drives a synchronous test function; the cluster lives on the reactor.  ``run_in_thread`` runs the
``@given`` function in a thread (so hypothesis shrinks and replays as usual), and each example calls back into
the reactor with ``on_reactor`` (bounded): the reactor keeps serving the cluster meanwhile.
"""

from decimal import Decimal

from hypothesis import strategies as st
from twisted.internet import defer, threads
from twisted.logger import globalLogPublisher
from twisted.protocols import amp

from papertrader import commands, tls
from papertrader.errors import ALL_ERRORS, ServerError
from tests.conftest import WAIT, _reactor, bounded

#: Every documented error code, as AMP carries it; ``server_error`` is documented too, but hostile input
#: must never cause one (it means a bug), so the fuzz tests leave it out.
TYPED = set(ALL_ERRORS.values()) - {ALL_ERRORS[ServerError]}


def on_reactor(function, *args, timeout=WAIT):
    """From the hypothesis thread: run ``function`` (a coroutine function) on the reactor; its result."""

    def call():
        return bounded(defer.ensureDeferred(function(*args)), getattr(function, "__name__", "a call"), timeout)

    return threads.blockingCallFromThread(_reactor(), call)


def run_in_thread(test, *args, timeout=300):
    """Run a (hypothesis) test function in a thread while the reactor runs; fails the test with its error."""
    return bounded(threads.deferToThread(test, *args), f"the fuzz test {test.__name__}", timeout)


class Tracebacks:
    """Collects every failure (traceback) anything logs while active: Twisted's own, and our LogSystems'
    (they forward to the global publisher)."""

    def __init__(self):
        self.failures = []

    def __call__(self, event):
        if event.get("log_failure") is not None:
            self.failures.append(event["log_failure"].getTraceback())

    def __enter__(self):
        globalLogPublisher.addObserver(self)
        return self

    def __exit__(self, *exc):
        globalLogPublisher.removeObserver(self)


class RawPeer(amp.AMP):
    """A peer that sends boxes as given (``send``) and records whether its connection was lost."""

    def __init__(self):
        super().__init__()
        self.closed = defer.Deferred()
        self.notices = []

    def connectionLost(self, reason):
        super().connectionLost(reason)
        if not self.closed.called:
            self.closed.callback(None)

    def send(self, name, fields):
        """Send command ``name`` (bytes) with ``fields`` (bytes -> bytes): ("ok", box) or ("error", code,
        description) as the server answered."""
        d = self._sendBoxCommand(name, amp.AmpBox(fields))

        def answered(box):
            return ("ok", box)

        def failed(failure):
            failure.trap(amp.RemoteAmpError)
            return ("error", failure.value.errorCode, failure.value.description)

        return d.addCallbacks(answered, failed)

    @commands.Notice.responder
    def notice(self, code, message):
        self.notices.append(code)
        return {}

    @commands.Tick.responder
    def tick(self, **quote):
        return {}

    @commands.OrderEvent.responder
    def order_event(self, **event):
        return {}

    def raw(self, data):
        self.transport.write(data)


async def connect(deployment, port):
    """A RawPeer connected over TLS (trusting the deployment's CA) to ``port`` on loopback."""
    from twisted.internet.endpoints import connectProtocol

    with open(f"{deployment.data_dir}/ca.pem", "rb") as f:
        ca = f.read()
    endpoint = tls.client_endpoint(_reactor(), "localhost", port, ca)
    peer = await bounded(connectProtocol(endpoint, RawPeer()), f"a TLS connection to port {port}")
    return peer


async def close(peer):
    if peer.transport is not None and not peer.closed.called:
        peer.transport.loseConnection()
    await bounded(peer.closed, "the connection to close")


# --- hostile values ---------------------------------------------------------------------------------------

#: Text numbers and words that break naive parsers.
SPECIAL_TEXT = [
    "", " ", "0", "-0", "+1", "-1", "1e3", "1E-400", "1e999999999", "-1e999999999", "NaN", "nan", "-NaN", "sNaN",
    "Infinity", "-Infinity", "inf", "1_000", "0x10", "1.", ".5", "1.0000001", "99999999999999999999999999999",
    "１２", "١٢", "1\u00a0000", "1,5", "12abc", "\x00", "AAPL\x00", "aapl", "AAPL ", "../../etc/passwd", "%s%n",
    "' OR 1=1 --", "\"; DROP TABLE orders; --", "<script>", "\u202eLPAA", "\ufeffAAPL", "😀", "a" * 300,
    "2024-01-01", "9999-12-31T23:59:59Z", "day", "gtc", "market", "limit", "buy", "sell", "AAPL", "MSFT",
]

numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63), 10**30]),
)


def huge_text():
    """Strings up to AMP's 65,535 bytes once encoded (1-3 bytes a character)."""
    return st.builds(lambda ch, n: ch * n, st.sampled_from(["x", "é", "€", "\u0000", " "]),
                     st.integers(min_value=1000, max_value=21_000))


texts = st.one_of(st.sampled_from(SPECIAL_TEXT), st.text(max_size=40), huge_text(),
                  st.decimals(allow_nan=True, allow_infinity=True).map(str),
                  st.from_regex(r"-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,12})?", fullmatch=True))

raw_bytes = st.one_of(
    st.binary(max_size=64),
    st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"T", b"F", b"true", b"-",
                     b"\x00" * 10, b"2024-13-45T99:99:99.000000+25:00", b"1" * 5000, b"\x00\x05hello",
                     b"\x00\x01x\x00\x00"]),
    st.integers(min_value=1, max_value=65_535).map(lambda n: b"\xff" * n),
)


def _typed(argument):
    """A strategy of values of ``argument``'s type (hostile ones), serialized as AMP would."""
    if isinstance(argument, amp.Boolean):
        values = st.booleans()
    elif isinstance(argument, amp.Integer):
        values = numbers
    elif isinstance(argument, amp.Unicode):
        values = texts
    elif isinstance(argument, amp.Decimal):
        values = st.one_of(st.decimals(allow_nan=True, allow_infinity=True),
                           st.sampled_from([Decimal("1e999999"), Decimal("-0"), Decimal("sNaN")]))
    elif isinstance(argument, amp.DateTime):
        from datetime import timezone

        values = st.datetimes(timezones=st.just(timezone.utc))
    elif isinstance(argument, amp.ListOf):
        values = st.lists(_typed_value(argument.elementType), max_size=250)
    else:
        return None

    def serialize(value):
        try:
            out = argument.toString(value)
        except Exception:
            return None
        return out if len(out) <= 0xFFFF else None

    return values.map(serialize).filter(lambda v: v is not None)


def _typed_value(argument):
    """Values (not yet serialized) for a list's elements."""
    if isinstance(argument, amp.Unicode):
        return st.one_of(st.sampled_from(SPECIAL_TEXT[:40]), st.text(max_size=20))
    if isinstance(argument, amp.Integer):
        return numbers
    return st.text(max_size=10)


@st.composite
def boxes(draw, command, token=None):
    """The argument fields of a hostile ``command``: each argument missing, of its type but hostile, or
    raw bytes; sometimes ``token`` (a real session) for its token; sometimes unknown extra keys."""
    fields = {}
    # Half the boxes have every argument of its type (to get past AMP's parsing into the commands).
    modes = ["typed", "typed", "typed", "raw", "missing"] if draw(st.booleans()) else ["typed"]
    for name, argument in command.arguments:
        mode = draw(st.sampled_from(modes))
        if name == b"token" and token is not None and draw(st.booleans()):
            fields[name] = token.encode()
            continue
        if mode == "missing":
            continue
        typed = _typed(argument)
        if mode == "raw" or typed is None:
            fields[name] = draw(raw_bytes)
        else:
            fields[name] = draw(typed)
    for _ in range(draw(st.integers(min_value=0, max_value=2))):
        key = draw(st.binary(min_size=1, max_size=40).filter(lambda k: not k.startswith(b"_")))
        fields.setdefault(key, draw(raw_bytes))
    return fields


def unknown_names(known):
    return st.one_of(st.binary(min_size=1, max_size=300), st.sampled_from([b"ListWorkers", b"WorkerHello",
                                                                           b"Heartbeat", b"QuotesTick", b"Kicked",
                                                                           b"Tick", b"Notice"])).filter(
        lambda name: name not in known and not name.startswith(b"_"))
