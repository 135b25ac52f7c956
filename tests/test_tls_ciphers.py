"""What the TLS listeners offer: in TLS 1.2, ECDHE with AEAD ciphers only (the security review found CBC with
SHA-1 accepted); TLS 1.3.  (TLS 1.0 and 1.1 are off in OpenSSL's defaults on both sides here: this machine's
client cannot offer them, so they are not tested.)  Real listeners, real handshakes (Python's ssl module, in a thread)."""

import socket
import ssl
import warnings

import pytest
import pytest_twisted
from twisted.internet import protocol, reactor, threads

from papertrader import tls
from papertrader.master import files
from papertrader.worker.http.site import endpoint as http_endpoint
from tests.conftest import bounded


def handshake(port, maximum, ciphers=None):
    """The cipher a TLS handshake with 127.0.0.1:``port`` agrees, at most TLS ``maximum``; None if refused."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (an old version, offered on purpose)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = maximum
    if ciphers:
        context.set_ciphers(ciphers)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw) as secure:
                return secure.cipher()[0]
    except (ssl.SSLError, ConnectionError):
        return None


@pytest.mark.parametrize("which", ["amp", "https"])
@pytest_twisted.ensureDeferred
async def test_tls_listeners_offer_aead_ciphers_only(tmp_path, which):
    files.ensure_master_files(str(tmp_path))
    cert = str(tmp_path / "master.pem")
    description = f"ssl:0:interface=127.0.0.1:privateKey={cert}:certKey={cert}"
    make = tls.server_endpoint if which == "amp" else http_endpoint
    listening = await make(reactor, description, cert).listen(protocol.Factory.forProtocol(protocol.Protocol))
    port = listening.getHost().port
    try:
        async def agreed(maximum, ciphers=None):
            return await bounded(threads.deferToThread(handshake, port, maximum, ciphers), "a handshake")

        assert await agreed(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA") is None  # CBC, SHA-1
        assert await agreed(ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES256-SHA384") is None  # CBC
        assert await agreed(ssl.TLSVersion.TLSv1_2) in ("ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-GCM-SHA256",
                                                        "ECDHE-ECDSA-CHACHA20-POLY1305")
        assert (await agreed(ssl.TLSVersion.TLSv1_3)).startswith("TLS_")
    finally:
        await listening.stopListening()
