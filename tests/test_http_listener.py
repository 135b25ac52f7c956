"""The HTTP listener's first look at a connection (papertrader/worker/http/site.py): a request in the other
protocol (plain HTTP to the HTTPS port, TLS to the plain one) is answered at once, in a way its client can read.
The same over real sockets, with a large body: tests/test_connection_limits.py."""

from twisted.internet import protocol
from twisted.internet.testing import StringTransport


class _HalfClosing(StringTransport):
    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


def test_a_connection_answered_at_once_is_half_closed_and_cut_past_the_drain_limit():
    """HTTP to the HTTPS port: the 400 and a FIN, what the client still sends read and dropped (closing with it
    unread would reset the connection before the client reads the answer), but no more than MAX_DRAIN bytes;
    the protocol inside (TLS) writes nothing more."""
    from papertrader.worker.http.site import MAX_DRAIN, _FirstBytesFactory, plain_to_tls

    inner = protocol.Factory.forProtocol(protocol.Protocol)
    connection = _FirstBytesFactory(inner, plain_to_tls).buildProtocol(None)
    transport = _HalfClosing()
    connection.makeConnection(transport)
    head = b"POST /v2/orders HTTP/1.1\r\nHost: localhost\r\n\r\n"
    connection.dataReceived(head)
    assert transport.value().startswith(b"HTTP/1.1 400 ") and transport.write_closed
    assert not transport.disconnecting and not transport.disconnected
    connection.wrappedProtocol.transport.write(b"from the protocol inside")
    assert b"inside" not in transport.value()
    connection.dataReceived(b"x" * (MAX_DRAIN - len(head)))
    assert not transport.disconnected
    connection.dataReceived(b"x")
    assert transport.disconnected  # aborted

    # Without half-closing (a transport that cannot), closed at once as before.
    transport = StringTransport()
    connection = _FirstBytesFactory(inner, plain_to_tls).buildProtocol(None)
    connection.makeConnection(transport)
    connection.dataReceived(head)
    assert transport.value().startswith(b"HTTP/1.1 400 ") and transport.disconnecting


def test_an_https_port_given_as_a_number_queues_as_many_connections_as_the_other_tls_ports(tmp_path):
    """A class arriving at once (hundreds of browsers) waits in the kernel's queue, not in TCP retransmissions:
    the website's port queues tls.BACKLOG connections, as the master's and workers' AMP ports (Twisted's
    default is 50)."""
    from twisted.internet import reactor

    from papertrader import tls
    from papertrader.worker.http.site import endpoint

    from papertrader.master import files

    files.ensure_master_files(str(tmp_path))
    assert endpoint(reactor, "2060", str(tmp_path / "master.pem"))._backlog == tls.BACKLOG == 1024
