"""TLS for every link: a private certificate authority, issued certificates, endpoints.

A deployment has one CA (kept with the master).  The master and each worker get
a certificate signed by it; clients and workers trust only that CA, and check
the peer's host name with service-identity (through Twisted's TLS options).
"""

import datetime
import ipaddress
import os
import re

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import ssl
from twisted.internet.endpoints import HostnameEndpoint, serverFromString, wrapClientTLS
from twisted.internet.interfaces import IReactorSSL
from twisted.protocols import policies
from zope.interface import implementer

CA_CERT = "ca.pem"
CA_KEY = "ca-key.pem"
VALIDITY = datetime.timedelta(days=3650)


def write_private(path, data: bytes):
    """Write a file readable by its owner only, atomically."""
    _write(path, data, 0o600)


def _write_public(path, data: bytes):
    """Write a file others may read (a certificate), atomically."""
    _write(path, data, 0o666)  # (less the umask, as open() makes files)


def _write(path, data, mode):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)  # (a full disk: nothing half-written is left behind)
        except OSError:
            pass
        e.filename = path
        raise


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "PaperTrader"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hostnames):
    names = []
    for host in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _ca_certificate(key, name, not_before, not_after):
    """The CA's self-signed certificate.  With its key identifier (and so its certificates with their issuer's):
    strict verifiers refuse a chain without them ("Missing Authority Key Identifier", "Missing Subject Key
    Identifier"), as Python 3.13's ssl.create_default_context does, and urllib3 (requests, alpaca-py) on it."""
    identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(identifier, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(identifier), critical=False)
        .sign(key, hashes.SHA256())
    )


def has_key_identifiers(cert):
    """Whether ``cert`` names its own key and its issuer's (a CA's: its own), as strict verifiers require."""
    try:
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        issuer = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return False
    return issuer.key_identifier is not None


class CertificateAuthority:
    """The deployment's CA: signs the master's and workers' certificates."""

    def __init__(self, key, cert):
        self.key = key
        self.cert = cert

    @classmethod
    def ensure(cls, directory):
        """Load the CA kept in ``directory``, creating it on first use.  A CA certificate made before they carried
        key identifiers is made again with them (the same key, name and validity: what it signed stays signed by
        it), which strict verifiers (Python 3.13's default) require."""
        cert_path = os.path.join(directory, CA_CERT)
        key_path = os.path.join(directory, CA_KEY)
        if os.path.exists(cert_path) and os.path.exists(key_path):
            with open(key_path, "rb") as f:
                key = serialization.load_pem_private_key(f.read(), None)
            with open(cert_path, "rb") as f:
                cert = x509.load_pem_x509_certificate(f.read())
            if not has_key_identifiers(cert):
                cert = _ca_certificate(key, cert.subject, cert.not_valid_before_utc, cert.not_valid_after_utc)
                _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
            return cls(key, cert)
        os.makedirs(directory, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = _ca_certificate(key, _name("PaperTrader CA"), now - datetime.timedelta(minutes=5), now + VALIDITY)
        write_private(key_path, key.private_bytes(serialization.Encoding.PEM,
                                                   serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
        _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return cls(key, cert)

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name, hostnames, path):
        """Write a new key and a certificate for ``hostnames`` to ``path`` (PEM, 0600)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(min(now + VALIDITY, self.cert.not_valid_after_utc))  # never past its CA's
            .add_extension(_san(hostnames), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
                                                  x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        write_private(
            path,
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
            + cert.public_bytes(serialization.Encoding.PEM),
        )


def expires(pem):
    """When a PEM certificate (bytes) stops being valid (UTC)."""
    return x509.load_pem_x509_certificate(pem).not_valid_after_utc


def read_certificate(path):
    """The certificate in the PEM file ``path`` (a key and a certificate, or a certificate)."""
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def issued_by(cert, ca):
    """Whether ``cert`` (an x509 certificate) was signed by ``ca`` (a CertificateAuthority)."""
    try:
        cert.verify_directly_issued_by(ca.cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def worker_name_of(path):
    """The worker a bundle's certificate (PEM file) was made for (its common name, 'PaperTrader worker NAME'), or
    None if it does not say."""
    names = read_certificate(path).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    prefix = "PaperTrader worker "
    if names and isinstance(names[0].value, str) and names[0].value.startswith(prefix):
        return names[0].value[len(prefix):]
    return None


def certificate_hostnames(path):
    """The DNS names and IP addresses a PEM certificate file is valid for."""
    return hostnames_of(read_certificate(path))


def hostnames_of(cert):
    """The DNS names and IP addresses ``cert`` (an x509 certificate) is valid for."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.DNSName) + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]


_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def check_hostname(host, option="--host", port_from="--port sets it"):
    """``host`` if it is an IP address or a DNS name a certificate can be valid for, else ValueError saying so
    (``option``: how the operator gave it; ``port_from``: what sets the port, for a name given with one)."""
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if host and len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        return host
    head = f"{option}: {host!r} is not a host name or IP address: "
    if "://" in host:
        raise ValueError(head + f"give the name alone, without '{host.split('://', 1)[0]}://'")
    name, colon, port = host.rpartition(":")
    if colon and name and ":" not in name and port.isdigit():
        raise ValueError(head + f"give the name alone, without the port ({port_from})")
    raise ValueError(head + "letters, digits, '-' and '_' in labels of at most 63 separated by dots (such as"
                     " eu1.example.com), or an address (203.0.113.7, 2001:db8::7)")


def default_hostnames(extra=()):
    """Names a certificate is valid for: loopback plus the ones asked for."""
    names = ["localhost", "127.0.0.1", "::1"]
    for host in extra:
        if host and host not in names:
            names.append(host)
    return names


def _escape(value):
    return value.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


#: Connections the kernel queues for a listener before it accepts them (Twisted's default is 50, less than the
#: clients that may reconnect at once after a worker restarts; a connection that finds the queue full waits
#: for a TCP retransmission, a second or more).  The kernel caps it at net.core.somaxconn.
BACKLOG = 1024


def is_loopback(interface):
    """Whether an interface (an address or a name) is this machine's loopback: only this machine reaches it."""
    if not interface:
        return False
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        return interface == "localhost"


def listen_description(port, interface, cert_path):
    """The strports description of a TLS listener on ``interface:port`` with ``cert_path``."""
    path = _escape(cert_path)
    return f"ssl:{int(port)}:interface={_escape(interface)}:privateKey={path}:certKey={path}:backlog={BACKLOG}"


#: The TLS 1.2 cipher suites servers offer: ECDHE key exchange with AEAD encryption only (no CBC, no SHA-1 MAC, no
#: RSA key exchange: forward secret and authenticated).  TLS 1.3's own suites are all AEAD; older versions are off.
CIPHERS = b"ECDHE+AESGCM:ECDHE+CHACHA20"


def strict(context_factory):
    """A listener's ``context_factory`` (its one OpenSSL context) offering CIPHERS only; returned."""
    context_factory.getContext().set_cipher_list(CIPHERS)
    return context_factory


@implementer(IReactorSSL)
class _StrictReactor:
    """The reactor, for a TLS listener's endpoint: its listenSSL, with CIPHERS only."""

    def __init__(self, reactor):
        self._reactor = reactor

    def listenSSL(self, port, factory, contextFactory, backlog=50, interface=""):
        return self._reactor.listenSSL(port, factory, strict(contextFactory), backlog, interface)

    def __getattr__(self, name):
        return getattr(self._reactor, name)


def server_endpoint(reactor, listen, cert_path):
    """A TLS server endpoint: ``listen`` is a port number or a strports description.

    A bare port (``2048``) listens on every interface with ``cert_path`` (and a queue of BACKLOG connections);
    a description (``ssl:2048:interface=127.0.0.1:privateKey=...``) is used as given, with ``cert_path`` when it
    names no ``privateKey``; any other kind (``tcp:``,
    ``unix:``) is refused (ValueError): the trading protocol, passwords and all, is never served unencrypted.
    """
    listen = check_listen(listen)
    path = _escape(cert_path)
    if listen.isdigit():
        listen = f"ssl:{listen}:privateKey={path}:certKey={path}:backlog={BACKLOG}"
    elif "privateKey=" not in listen:  # (an interface chosen, say: the daemon's own key and certificate, not
        listen += f":privateKey={path}:certKey={path}"  # Twisted's default ./server.pem)
        if "backlog=" not in listen:
            listen += f":backlog={BACKLOG}"
    return serverFromString(_StrictReactor(reactor), listen)


def check_listen(listen):
    """``listen`` (stripped) if it is a port number or an ``ssl:`` description, else ValueError saying so."""
    listen = str(listen).strip()
    if not listen.isdigit() and listen.split(":", 1)[0] != "ssl":
        raise ValueError("a port number or an ssl: description: clients and workers speak to it over TLS only")
    if listen.isdigit() and not 0 <= int(listen) <= 65535:
        raise ValueError("a port number is from 0 to 65535")
    return listen


def client_endpoint(reactor, host, port, ca_pem: bytes, timeout=10):
    """A TLS client endpoint to ``host:port`` trusting only our CA, checking the host name."""
    options = ssl.optionsForClientTLS(host, trustRoot=ssl.Certificate.loadPEM(ca_pem))
    return wrapClientTLS(options, HostnameEndpoint(reactor, host, port, timeout=timeout))


def no_delay(transport):
    """Turn off Nagle's algorithm on the TCP connection under ``transport`` (TLS included).

    AMP sends small boxes and waits for answers; with Nagle on, a small answer written while TLS
    session tickets are unacknowledged waits for the peer's delayed ACK (about 40 ms).
    """
    while transport is not None:
        if hasattr(transport, "setTcpNoDelay"):
            transport.setTcpNoDelay(True)
            return
        transport = getattr(transport, "transport", None)


def tcp_under(transport):
    """The TCP connection under ``transport`` (TLS's and the guard's wrappers walked through), or None."""
    while isinstance(transport, policies.ProtocolWrapper):  # (TLS: it passes attributes on, but keeps ones set)
        transport = transport.transport
    return transport if hasattr(transport, "doRead") and hasattr(transport, "doWrite") else None


def serve_now(transport):
    """Send what waits to go out on the TLS connection ``transport`` and read what has come in, now, as the reactor
    does when the connection's turn comes (papertrader/worker/link.py ``MasterLink.between``).  False if there is
    no connection to serve (gone, closing).

    Twisted's TLS gathers a turn's writes and encrypts them at the start of the next turn (its
    BufferingTLSTransport: without it, nothing waits there); the socket then takes them when the reactor finds it
    writable.  What the socket says besides data (the connection ended, an error) is left for the reactor's next
    turn, which finds it again; an exception of the protocols above (a bug) closes the connection, as the reactor
    would."""
    connection = tcp_under(transport)
    if connection is None or not connection.connected or connection.disconnecting:
        return False
    try:
        gathered = getattr(transport, "_aggregator", None)
        if gathered is not None:
            gathered.flush()
        connection.doWrite()  # (nothing waiting: it stops asking the reactor to write, as the reactor's call would)
        connection.doRead()
    except Exception:
        connection.abortConnection()
        raise
    return True


def read_at_most(transport, size):
    """Let the TCP connection under ``transport`` (TLS included) read up to ``size`` bytes each time it is ready.

    Twisted reads 64 KiB at a time, once per turn of the reactor.  A link that carries the answers and pushes of
    thousands of clients falls behind that way when a turn is long (a worker serving 3,000 clients: a turn of about
    a second, 400 KB waiting on the link); reading what is there in one go keeps its answers from queueing behind
    themselves.  (A read of more than 64 KiB costs about 25 us more, for the larger buffer.)
    """
    connection = tcp_under(transport)
    if connection is not None:
        connection.bufferSize = size


def address_text(host, port):
    """``host:port`` as a person writes it (``[v6]:port`` for an IPv6 address: what ``parse_hostport`` reads)."""
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def parse_hostport(text, default_port=None):
    """Split ``HOST:PORT`` (``[v6]:PORT`` for IPv6); raise ValueError if malformed."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = text, ""
    if not port:
        if default_port is None:
            raise ValueError(f"{text!r} is not HOST:PORT")
        port = default_port
    try:
        port = int(port)
    except ValueError:
        raise ValueError(f"{text!r}: port is not a number")
    if not host or not 0 < port < 65536:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host, port
