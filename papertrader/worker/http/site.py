"""The worker's HTTP listener: TLS with the worker's certificate (or one the operator gives), or plain
TCP on loopback only; one twisted.web Site serving the REST API, the streams and the website.

Every answer of the REST API (``/v1/...``, ``/v2/...``) is JSON (errors too: ``{"code": <int>,
"message": <text>}``), never a redirect or an HTML page; the other paths are the website's
(papertrader/worker/web/).  A request body is at most ``MAX_BODY`` bytes; headers say ``nosniff``,
``no-store`` and deny framing.

A plain HTTP listener (loopback only) answers only requests that name a loopback host (``localhost``,
``127.x.x.x``, ``[::1]``, any port): another Host is a page that another site's name was made to point at this
machine (DNS rebinding), answered 421 without being served.  (Over TLS a browser would not get that far: the
certificate names the worker's host, not the other site.)

On a TLS listener, a request in plain HTTP (``http://`` where ``https://`` was meant) is answered, in plain
HTTP, with the API's JSON 400 naming the ``https://`` address to use, instead of an empty reply; on a plain
one, a TLS handshake (``https://`` where ``http://`` was meant) is answered at once the same way (the client
reports a TLS error at once, instead of waiting for the idle timeout).
"""

import json
import re

from twisted.internet import endpoints
from twisted.internet.interfaces import IReactorSSL, IReactorTCP
from twisted.protocols import policies, tls as tls_protocols
from twisted.web import http, resource, server
from twisted.web.iweb import IAccessLogFormatter
from zope.interface import implementer, provider

from papertrader import tls
from papertrader.guard import is_tls


MAX_BODY = 64 * 1024
#: What a connection answered at once (HTTP to the HTTPS port, or the reverse) may still send before it is cut.
MAX_DRAIN = 1024 * 1024


class HttpEndpointError(ValueError):
    """An --http endpoint that may not be used (plain TCP off loopback, or malformed)."""


def endpoint(reactor, description, cert_path):
    """The listening endpoint of ``--http``: a port number (TLS with ``cert_path``), or a strports
    description; ``tcp:`` (plain HTTP) only on a loopback interface."""
    description = str(description).strip()
    if description.isdigit():  # (with the queue of every TLS port of ours: tls.BACKLOG connections)
        description = (f"ssl:{description}:privateKey={_escape(cert_path)}:certKey={_escape(cert_path)}"
                       f":backlog={tls.BACKLOG}")
    kind = description.split(":", 1)[0]
    if kind == "tcp":
        interface = None
        for part in description.split(":")[1:]:
            if part.startswith("interface="):
                interface = part[len("interface="):].replace("\\:", ":")
        if not tls.is_loopback(interface):
            raise HttpEndpointError("plain HTTP (tcp:) is allowed on loopback only: add interface=127.0.0.1, or use"
                                    " ssl: (the default for a bare port number)")
    elif kind != "ssl":
        raise HttpEndpointError(f"--http: a port number, or an ssl: or tcp: strports description, not {kind!r}")
    try:
        return endpoints.serverFromString(_HintingReactor(reactor), description)
    except Exception as e:
        raise HttpEndpointError(f"--http {description!r}: {e}")


def _escape(path):
    return path.replace("\\", "\\\\").replace(":", "\\:")


@implementer(IReactorSSL, IReactorTCP)
class _HintingReactor:
    """The reactor, for the endpoint: it listens as the reactor's own listenTCP and listenSSL do (listenSSL: TLS
    over TCP), with a look at each connection's first bytes in front (``_FirstBytes``)."""

    def __init__(self, reactor):
        self._reactor = reactor

    def listenSSL(self, port, factory, contextFactory, backlog=50, interface=""):
        tls_factory = tls_protocols.TLSMemoryBIOFactory(tls.strict(contextFactory), False, factory)
        return self._reactor.listenTCP(port, _FirstBytesFactory(tls_factory, plain_to_tls), backlog, interface)

    def listenTCP(self, port, factory, backlog=50, interface=""):
        return self._reactor.listenTCP(port, _FirstBytesFactory(factory, tls_to_plain), backlog, interface)

    def __getattr__(self, name):
        return getattr(self._reactor, name)


#: What may follow ``https://`` in the hint (a host, its port, a path): anything else is left out of it.
_HOST = re.compile(rb"^[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?$")
_TARGET = re.compile(rb"^/[\x21-\x7e]{0,1023}$")


def plain_to_tls(data):
    """The answer to ``data``, the first bytes a client sent to a TLS port, if they start a plain HTTP request
    (a TLS handshake starts with 0x16; an HTTP request with its method's letters), else None."""
    if not data[:1].isalpha():
        return None
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    parts = head[0].split(b" ")
    target = parts[1] if len(parts) == 3 and _TARGET.match(parts[1]) else b"/"
    host = None
    for line in head[1:101]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"host" and _HOST.match(value.strip()):
            host = value.strip()
            break
    where = ("https://" + (host + target).decode("ascii")) if host else "https:// instead of http://"
    return _bad_request(f"this port speaks HTTPS, not plain HTTP: use {where}")


def tls_to_plain(data):
    """The answer to ``data``, the first bytes a client sent to a plain HTTP port, if they start a TLS handshake,
    else None."""
    if data[:1] != b"\x16":
        return None
    return _bad_request("this port speaks plain HTTP, not HTTPS: use http:// instead of https://")


def _bad_request(message):
    body = json.dumps({"code": 40010000, "message": message}, separators=(",", ":")).encode()
    return (b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (len(body), body))


class _FirstBytes(policies.ProtocolWrapper):
    """In front of a connection: its first bytes, if they are of the other protocol (``factory.answer``: a plain
    HTTP request to a TLS port, a TLS handshake to a plain one), are answered and the connection closed; anything
    else goes on to the protocol inside.  That protocol (the TLS, and the connection guard) is made when the
    connection opens, so the guard's per-address cap and handshake timeout hold for a peer that never speaks as
    for any other."""

    _first = True
    #: Once answered: None, or the bytes of the client's request still to be read and dropped.
    _draining = None

    def dataReceived(self, data):
        if self._draining is not None:
            self._draining -= len(data)
            if self._draining < 0:
                self.transport.abortConnection()
            return
        if self._first:
            self._first = False
            answer = self.factory.answer(data)
            if answer is not None:
                self._answered(answer, len(data))
                return
        self.wrappedProtocol.dataReceived(data)

    def _answered(self, answer, read):
        """Answer, then end the connection the way that lets the client read the answer: half closed (the
        answer and a FIN), the rest of what it sends read and dropped until it closes, at most ``MAX_DRAIN``
        bytes in all (a socket closed with unread bytes resets the connection, and the client, still sending a
        request's body, sees "connection reset" instead of the answer).  The protocol inside writes nothing
        more; its own timeouts (the guard's handshake or idle timeout) still end a client that never closes."""
        self.write = self.writeSequence = lambda data: None
        self._draining = MAX_DRAIN - read
        self.transport.write(answer)
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is None:
            self.transport.loseConnection()
        else:
            half_close()


class _FirstBytesFactory(policies.WrappingFactory):
    protocol = _FirstBytes
    noisy = False

    def __init__(self, wrapped, answer):
        super().__init__(wrapped)
        self.answer = answer

    def buildProtocol(self, addr):
        wrapped = self.wrappedFactory.buildProtocol(addr)
        return None if wrapped is None else self.protocol(self, wrapped)


#: Path prefixes of the Alpaca-compatible REST API (and of Alpaca's beta APIs, news, crypto and options data:
#: not served, answered by the API's JSON 404, not the website's page).
API_PREFIXES = ("/v1/", "/v2/", "/v1beta1/", "/v1beta2/", "/v1beta3/")


def loopback_host(host):
    """Whether a Host header (``name``, ``name:port``, ``[v6]:port``) names this machine's loopback."""
    host = host.strip()
    if host.startswith(b"["):
        name = host[1:].split(b"]", 1)[0]
    else:
        name = host.rsplit(b":", 1)[0] if host.count(b":") == 1 else host
    try:
        return tls.is_loopback(name.decode("ascii").lower().rstrip("."))
    except UnicodeDecodeError:
        return False


class _Misdirected(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setResponseCode(421)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        return json.dumps({"code": 42110000, "message": "this plain HTTP port answers only to a loopback address:"
                           " use http://127.0.0.1 or http://localhost with its port"}).encode()


class _NoStream(resource.Resource):
    """A WebSocket upgrade to the root or an API path that is no stream: a client given the worker's address
    without its stream's path (``url_override="ws://HOST:PORT"``) would otherwise get the website's home page,
    which alpaca-py reports as 'server rejected WebSocket connection: HTTP 200' and retries forever."""

    isLeaf = True

    def __init__(self, path):
        super().__init__()
        self.path = path

    def render(self, request):
        from papertrader.worker.http.rest import error_body, respond

        message = (f"no WebSocket stream at {self.path}: the streams are /stream (trade updates), /v2/iex and"
                   " /v2/sip (market data)")
        return respond(request, 404, error_body(40410000, message))


def _upgrade(request):
    return (request.getHeader(b"upgrade") or b"").lower() == b"websocket"


#: The API's prefixes without their last slash ("/v2"): an API path too, not the website's.
API_ROOTS = tuple(prefix.rstrip("/") for prefix in API_PREFIXES)


class Root(resource.Resource):
    """``/stream``, ``/v2/iex`` and ``/v2/sip`` are WebSockets; ``/v1/...`` and ``/v2/...`` the REST API;
    everything else the website (when there is one; else the REST API's JSON 404).  A WebSocket upgrade to
    ``/`` or an API path that is no stream is refused (_NoStream)."""

    def __init__(self, rest, streams=None, web=None):
        super().__init__()
        self.rest = rest
        self.streams = streams or {}
        self.web = web

    def getChildWithDefault(self, name, request):
        host = request.getHeader(b"host")
        if host is not None and not request.isSecure() and not loopback_host(host):
            return _Misdirected()
        path = request.path.decode("latin-1")
        stream = self.streams.get(path)
        if stream is not None:
            return stream
        if _upgrade(request) and (path == "/" or path in API_ROOTS or path.startswith(API_PREFIXES)):
            return _NoStream(path)
        request.postpath.insert(0, request.prepath.pop())
        if self.web is None or path.startswith(API_PREFIXES):
            return self.rest
        return self.web


class Request(server.Request):
    """Keeps at most MAX_BODY bytes of a body (the rest is dropped, and the request answered 413)."""

    too_large = False
    _received = 0

    def gotLength(self, length):
        if length is not None and length > MAX_BODY:
            self.too_large = True
            length = 0  # kept in memory: nothing of it will be stored
        super().gotLength(length)

    def handleContentChunk(self, data):
        self._received += len(data)
        if self.too_large or self._received > MAX_BODY:
            self.too_large = True
            return
        super().handleContentChunk(data)


#: What twisted.web answers itself, before any resource, to a request it cannot parse (a malformed request
#: line, a line or all headers over 16 kB, more than 500 headers, a bad Content-Length or chunk): JSON too.
BAD_REQUEST = b'{"code":40010000,"message":"malformed HTTP request, or its request line or headers are too long"}'


class Channel(http.HTTPChannel):
    """twisted.web's HTTP/1.1 channel, whose own refusals are the API's JSON errors instead of an empty 400."""

    def _respondToBadRequestAndDisconnect(self):
        self.transport.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json; charset=utf-8\r\n"
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(BAD_REQUEST), BAD_REQUEST))
        self.loseConnection()

    def isSecure(self):
        """Over TLS (the connection guard in between hides it from autobahn: papertrader/guard.py)."""
        return is_tls(self.transport)

    def lineLengthExceeded(self, line):
        """A request line or header line over 16 kB (LineReceiver would just close the connection)."""
        self._respondToBadRequestAndDisconnect()


#: Seconds an HTTP connection may stay idle.
IDLE_TIMEOUT = 60


def _without_query(text):
    return text.split(b"?", 1)[0]


@provider(IAccessLogFormatter)
def access_line(timestamp, request):
    """twisted.web's combined log line without query strings (of the request or its Referer): they may carry
    what must not be kept in a log (a provider's sign-in code and state, a private game's invite code)."""
    address = request.getClientAddress()
    text = http._escape  # (twisted.web's own: the combined log's escaping)
    return '"%s" - - %s "%s %s %s" %d %s "%s" "%s"' % (
        getattr(address, "host", "-"), timestamp, text(request.method), text(_without_query(request.uri)),
        text(request.clientproto), request.code, request.sentLength or "-",
        text(_without_query(request.getHeader(b"referer") or b"-")), text(request.getHeader(b"user-agent") or b"-"))


def site(rest_resource, streams=None, web_resource=None):
    web = server.Site(Root(rest_resource, streams, web_resource), timeout=IDLE_TIMEOUT, logFormatter=access_line)
    web.protocol = lambda: http._GenericHTTPChannelProtocol(Channel())
    web.requestFactory = Request
    web.displayTracebacks = False
    web.noisy = False
    return web

