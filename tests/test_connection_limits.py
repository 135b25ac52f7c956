"""Connection abuse at every listener of a live cluster (papertrader/guard.py), over real loopback sockets.

Many connections from one address, a peer that opens TCP and never starts (or never finishes) its TLS
handshake, one that sends half an AMP box and stalls, one that never reads its answers: each is cut off at its
documented limit, and a client from another address (127.0.0.2), or a well-behaved one, goes on unaffected.
The guards' timers run on a task.Clock the test moves: no sleeping.
"""

import json
import os
import socket
import ssl
import struct
from dataclasses import replace

import pytest
import pytest_twisted
from twisted.internet import defer, protocol, task
from twisted.internet import ssl as tssl
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS

from papertrader import commands
from tests.conftest import _reactor, bounded, start_cluster, until, wait_for_log
from tests.fuzz_helpers import RawPeer, Tracebacks, close
from tests.http_helpers import in_thread

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

CAP = 4
OTHER = "127.0.0.2"


@pytest.fixture(autouse=True)
def no_tracebacks():
    """Cutting connections off logs a line, never a traceback."""
    with Tracebacks() as tracebacks:
        yield
    assert tracebacks.failures == []


@pytest_twisted.async_yield_fixture
async def limited(tmp_path, settings, database_url):
    """A cluster (one worker, with its HTTP API) whose listeners allow CAP connections an address, 64 kB of
    unread output, and whose guards run on a task.Clock of their own."""
    clock = task.Clock()
    more = dict(workers=1, max_connections_per_address=CAP, max_unsent_bytes=65_536)
    d = await start_cluster(tmp_path, replace(settings, **more), database_url, clock, http_port=0)
    d.guard_clock = task.Clock()
    for factory in guards(d).values():
        factory.clock = d.guard_clock
    yield d
    await d.cluster.stopService()


def guards(d):
    worker = d.cluster.workers[0]
    return {"worker": worker.listener.factory, "master": d.master.listener.factory, "http": worker.http.factory}


def port_of(d, which):
    worker = d.cluster.workers[0]
    listener = {"worker": worker.listener, "master": d.master.listener, "http": worker.http}[which]
    return listener.port.getHost().port


class Tcp(protocol.Protocol):
    """A bare TCP connection: records what it received and when it was closed."""

    def __init__(self):
        self.received = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.closed.callback(None)

    @property
    def open(self):
        return not self.closed.called


async def tcp(port, source="127.0.0.1"):
    endpoint = TCP4ClientEndpoint(_reactor(), "127.0.0.1", port, bindAddress=(source, 0))
    return await bounded(connectProtocol(endpoint, Tcp()), f"a TCP connection from {source}")


async def amp_client(d, port, source="127.0.0.1", peer=RawPeer):
    """An AMP client (a ``peer``) over TLS from ``source`` (its handshake finished: it has answered a command)."""
    with open(os.path.join(d.data_dir, "ca.pem"), "rb") as f:
        trust = tssl.Certificate.loadPEM(f.read())
    endpoint = wrapClientTLS(tssl.optionsForClientTLS("localhost", trustRoot=trust),
                             TCP4ClientEndpoint(_reactor(), "127.0.0.1", port, bindAddress=(source, 0)))
    return await bounded(connectProtocol(endpoint, peer()), f"a TLS connection from {source}")


async def served(d, client, which):
    """The listener answers a normal request on ``client``'s connection."""
    command = commands.ListWorkers if which == "master" else commands.Assets
    answer = await bounded(client.callRemote(command), f"{command.__name__} on the {which} listener")
    assert answer


async def listener_settles(factory, host, count):
    await until(lambda: factory.connections(host) == count, f"{count} connections from {host}")


@pytest.mark.parametrize("which", ["worker", "master", "http"])
@pytest_twisted.ensureDeferred
async def test_connections_beyond_the_cap_of_an_address_are_closed_at_once(limited, which):
    d = limited
    factory, port = guards(d)[which], port_of(d, which)
    await until(lambda: factory.connections("127.0.0.1") == 0 or which == "master", "set-up connections to end")
    base = factory.connections("127.0.0.1")  # the master's: its workers' links
    held = [await tcp(port) for _ in range(CAP - base)]
    await listener_settles(factory, "127.0.0.1", CAP)
    warned = wait_for_log(d.cluster.workers[0].logs if which != "master" else d.master.logs, "the most one address")
    extra = await tcp(port)
    await bounded(extra.closed, "the connection over the cap to be closed")
    await warned
    assert factory.refused == 1 and all(c.open for c in held)
    # Another address is served meanwhile; so is this one once it has a connection fewer.
    if which != "http":
        other = await amp_client(d, port, OTHER)
        await served(d, other, which)
        await close(other)
    else:
        status = await in_thread(http_status, port, OTHER)
        assert status == 401
    held[0].transport.loseConnection()
    await held[0].closed
    await listener_settles(factory, "127.0.0.1", CAP - 1)
    again = await tcp(port)
    assert again.open
    for c in held[1:] + [again]:
        c.transport.loseConnection()
        await bounded(c.closed, "a held connection to close")


def http_status(port, source):
    """The status of GET /v2/account without a key from ``source`` (blocking; run in a thread).  The test
    cluster's HTTP API is plain HTTP on loopback; over TLS the guard sits inside TLS as for AMP."""
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as s:
        s.sendall(b"GET /v2/account HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return int(s.recv(100).split()[1])


@pytest.mark.parametrize("which", ["worker", "master"])
@pytest.mark.parametrize("hello", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
                         ids=["silent", "half-a-client-hello"])
@pytest_twisted.ensureDeferred
async def test_a_tls_handshake_that_does_not_finish_is_cut(limited, which, hello):
    d = limited
    port = port_of(d, which)
    stalled = await tcp(port)
    stalled.transport.write(hello)
    client = await amp_client(d, port)  # its handshake is done: no timer left for it
    await served(d, client, which)
    await until(lambda: guards(d)[which].connections("127.0.0.1") >= 2, "the server to see both")
    d.guard_clock.advance(9.9)
    assert stalled.open
    d.guard_clock.advance(0.2)
    await bounded(stalled.closed, "the stalled handshake to be cut")
    assert guards(d)[which].cut["handshake"] == 1
    await served(d, client, which)
    await close(client)


@pytest_twisted.ensureDeferred
async def test_half_a_box_and_silence_is_idle_but_a_watcher_is_not(limited):
    d = limited
    port = port_of(d, "worker")
    stalled = await amp_client(d, port)
    await served(d, stalled, "worker")
    stalled.transport.write(b"\x00\x08_command\x00\x06Ass")  # half a box, then nothing
    watcher = await amp_client(d, port)
    assert (await bounded(watcher.callRemote(commands.Watch, symbols=["AAPL"]), "Watch"))["symbols"] == ["AAPL"]
    busy = await amp_client(d, port)
    await served(d, busy, "worker")  # (its TLS handshake is over before the clock moves)
    for _ in range(3):
        d.guard_clock.advance(200)
        await served(d, busy, "worker")  # a command now and then keeps a connection alive
    # 600 s: the stalled one has been quiet for more than idle_timeout (300 s) since its half box.
    await bounded(stalled.closed, "the stalled connection to be cut as idle")
    assert not watcher.closed.called and not busy.closed.called
    assert guards(d)["worker"].cut["idle"] == 1
    d.guard_clock.advance(1000)
    assert not watcher.closed.called  # a watcher waits for pushes: never idle
    await served(d, watcher, "worker")
    for client in (watcher, busy):
        await close(client)


@pytest_twisted.ensureDeferred
async def test_an_idle_connection_lasts_exactly_the_idle_timeout(limited):
    d = limited
    client = await amp_client(d, port_of(d, "worker"))
    await served(d, client, "worker")
    d.guard_clock.advance(299)
    await served(d, client, "worker")  # its clock starts again
    d.guard_clock.advance(299)
    assert not client.closed.called
    d.guard_clock.advance(2)
    await bounded(client.closed, "the idle connection to be cut")


def flood_without_reading(port, ca_path, requests):
    """Send ``requests`` Assets commands over TLS and never read an answer (blocking; in a thread): the number
    sent before the server cut the connection (or all of them)."""
    context = ssl.create_default_context(cafile=ca_path)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.settimeout(20)
    raw.connect(("127.0.0.1", port))
    s = context.wrap_socket(raw, server_hostname="localhost")
    try:
        for n in range(requests):
            tag = str(n).encode()
            box = b"".join(struct.pack(">H", len(k)) + k + struct.pack(">H", len(v)) + v
                           for k, v in ((b"_command", b"Assets"), (b"_ask", tag))) + b"\x00\x00"
            try:
                s.sendall(box * 50)
            except OSError:
                return n * 50
        return requests * 50
    finally:
        raw.close()


@pytest_twisted.ensureDeferred
async def test_a_client_that_never_reads_is_cut_when_its_unread_output_passes_the_limit(limited):
    d = limited
    port = port_of(d, "worker")
    other = await amp_client(d, port, OTHER)
    cut = wait_for_log(d.cluster.workers[0].logs, "bytes of output unread", timeout=60)
    sent = await in_thread(flood_without_reading, port, os.path.join(d.data_dir, "ca.pem"), 20_000,
                           what="a client that never reads", timeout=60)
    await cut
    assert sent < 20_000 * 50  # the server closed the connection before the client had sent everything
    assert guards(d)["worker"].cut["unsent"] == 1
    await served(d, other, "worker")
    await close(other)


@pytest_twisted.ensureDeferred
async def test_the_master_cuts_a_stalled_peer_but_never_a_linked_worker(limited):
    d = limited
    stalled = await amp_client(d, port_of(d, "master"))
    await served(d, stalled, "master")
    stalled.transport.write(b"\x00\x08_command\x00\x0bListWor")  # half a box, then nothing
    worker = d.cluster.workers[0]
    link = worker.link.proven
    d.guard_clock.advance(301)
    await bounded(stalled.closed, "the stalled peer to be cut as idle")
    d.guard_clock.advance(3000)  # no heartbeat in all that time (the cluster's clock stands still)
    assert worker.link.proven is link and worker.name in d.master.workers.linked
    assert guards(d)["master"].cut["idle"] == 1


@pytest_twisted.ensureDeferred
async def test_the_master_lets_a_linked_worker_fall_far_more_behind_than_a_client_before_cutting_it(limited):
    """A worker busy with a burst of orders reads its link late: the master's answers and pushes waited unread
    beyond max_unsent_bytes (1 MiB) and the master cut the link, turning every order in flight into an unknown
    outcome (bench_load, 2026-12-03: 3,719 of them).  A linked worker (whose silence the heartbeats judge) may
    leave 64 times as much unread."""
    d = limited
    worker = d.cluster.workers[0]
    link = worker.link.proven
    link.transport.pauseProducing()  # the worker reads nothing of its link for a while
    try:
        master_side = d.master.workers.linked[worker.name].protocol
        guard = master_side.transport
        for _ in range(2000):  # until the socket's buffers are full and 4 times max_unsent_bytes waits unread
            if guard._output.paused and guard._output.unsent > 4 * 65_536 or guard._cut_reason is not None:
                break
            for _ in range(100):
                d.master.send_snapshot(master_side)
            await task.deferLater(_reactor(), 0, lambda: None)
        assert guards(d)["master"].cut["unsent"] == 0, guard._cut_reason
        assert guard._output.paused and guard._output.unsent > 4 * 65_536, "the link's buffers never filled"
        assert worker.name in d.master.workers.linked
    finally:
        link.transport.resumeProducing()
    await until(lambda: not guard._output.paused, "the worker to read its link again")
    assert worker.link.proven is link and guards(d)["master"].cut["unsent"] == 0


GET_ROOT = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


def read_until(s, marker):
    """What the socket ``s`` gives until ``marker`` (or its end)."""
    received = b""
    while marker not in received:
        chunk = s.recv(4096)
        if not chunk:
            break
        received += chunk
    return received


def over_tls(port, ca_path, request, marker, alpn=None):
    """Send ``request`` over TLS (trusting ``ca_path``) and read the answer until ``marker`` (blocking; in a
    thread); with ``alpn``, offering those protocols (as every browser, curl and requests do) and checking the
    server chose HTTP/1.1."""
    context = ssl.create_default_context(cafile=ca_path)
    if alpn:
        context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == ("http/1.1" if alpn else None)
            s.sendall(request)
            return read_until(s, marker)


def live_upgrade_status(port, ca_path, origin):
    """The status line of the website's WebSocket handshake (GET /live) over TLS from ``origin``."""
    request = (f"GET /live HTTP/1.1\r\nHost: localhost:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               f"Origin: {origin}\r\n\r\n").encode()
    return over_tls(port, ca_path, request, b"\r\n").split(b"\r\n")[0].decode("latin-1")


def https_headers(port, ca_path, alpn=None):
    """The headers of GET / over TLS."""
    return over_tls(port, ca_path, GET_ROOT, b"\r\n\r\n", alpn).split(b"\r\n\r\n")[0].decode("latin-1").lower()


@pytest_twisted.ensureDeferred
async def test_the_https_listener_cuts_a_stalled_handshake_and_still_knows_it_is_secure(limited):
    from papertrader.master.files import WORKER_CERT
    from papertrader.tls import _escape
    from papertrader.worker.http.service import http_service

    d = limited
    worker = d.cluster.workers[0]
    cert = os.path.join(worker.data_dir, WORKER_CERT)
    service = http_service(worker, _reactor(), f"ssl:0:interface=127.0.0.1:privateKey={_escape(cert)}:"
                                               f"certKey={_escape(cert)}", cert, d.master.settings)
    service.factory.clock = d.guard_clock
    service.startService()
    try:
        port = await bounded(service.whenListening(), "the HTTPS listener")
        stalled = await tcp(port)
        head = await in_thread(https_headers, port, os.path.join(d.data_dir, "ca.pem"), what="GET / over TLS")
        assert "strict-transport-security" in head  # the website still sees TLS through the guard
        for offered in (["http/1.1"], ["h2", "http/1.1"]):  # requests and curl; browsers
            head = await in_thread(https_headers, port, os.path.join(d.data_dir, "ca.pem"), offered,
                                   what=f"GET / over TLS offering ALPN {offered}")
            assert head.startswith("http/1.1 ") and "strict-transport-security" in head
        # The website's live connection: from its own https origin, accepted; from its http twin, refused.
        ca = os.path.join(d.data_dir, "ca.pem")
        status = await in_thread(live_upgrade_status, port, ca, f"https://localhost:{port}", what="wss /live")
        assert status.startswith("HTTP/1.1 101"), status
        status = await in_thread(live_upgrade_status, port, ca, f"http://localhost:{port}", what="wss /live")
        assert status.startswith("HTTP/1.1 403"), status
        plain = await in_thread(https_headers_plain, port_of(d, "http"), what="GET / over plain HTTP")
        assert "strict-transport-security" not in plain
        # http:// where https:// was meant: told so, in plain HTTP, instead of an empty reply.
        answer = await in_thread(plain_answer, port, f"GET /v2/account?x=1 HTTP/1.1\r\nHost: localhost:{port}\r\n"
                                 "\r\n".encode(), what="GET over plain HTTP to the HTTPS port")
        assert answer.startswith(b"HTTP/1.1 400 ") and b"application/json" in answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
            "code": 40010000, "message": f"this port speaks HTTPS, not plain HTTP: use https://localhost:{port}"
                                         "/v2/account?x=1"}
        answer = await in_thread(plain_answer, port, b"POST /v2/orders HTTP/1.1\r\nHost: <script>\r\n\r\n{}",
                                 what="a POST with a hostile Host over plain HTTP to the HTTPS port")
        assert answer.endswith(b"not plain HTTP: use https:// instead of http://\"}")
        # A POST with a body larger than a socket's buffers still reads the answer, not "connection reset".
        body = b"x" * (512 * 1024)
        answer = await in_thread(plain_answer, port, b"POST /v2/orders HTTP/1.1\r\nHost: localhost\r\n"
                                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
                                 what="a 512 kB POST over plain HTTP to the HTTPS port")
        assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(b"use https://localhost/v2/orders\"}")
        # And https:// where http:// was meant (the quick start's plain port): told at once, not after a minute.
        answer = await in_thread(plain_answer, port_of(d, "http"), b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                                 what="a TLS handshake to the plain HTTP port")
        assert answer.startswith(b"HTTP/1.1 400 ") and answer.endswith(
            b'"this port speaks plain HTTP, not HTTPS: use http:// instead of https://"}')
        with pytest.raises(ssl.SSLError):  # a real TLS client fails at once (a timeout would be socket.timeout)
            await in_thread(https_headers, port_of(d, "http"), ca, what="GET / over TLS to the plain HTTP port")
        await until(lambda: service.factory.connections("127.0.0.1") == 1, "the HTTPS requests' connections to end")
        d.guard_clock.advance(10.1)
        await bounded(stalled.closed, "the stalled HTTPS handshake to be cut")
    finally:
        await service.stopService()


def plain_answer(port, request):
    """All a plain-HTTP ``request`` to ``port`` is answered with, until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        return read_until(s, b"\0never sent")


def https_headers_plain(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(GET_ROOT)
        return read_until(s, b"\r\n\r\n").split(b"\r\n\r\n")[0].decode("latin-1").lower()

