"""Admin consoles: Twisted manholes on the master and the workers.

Nothing listens unless ``--manhole ENDPOINT`` is given.  Two kinds:

- **telnet**, only on loopback or a Unix socket (``--manhole 2049`` means
  ``tcp:2049:interface=127.0.0.1``).  Log in as ``admin`` with the password in
  ``DATA_DIR/manhole.passwd`` (random, created on first use, readable by the
  owner only): other local users cannot get in.
- **SSH**, when ``--manhole-keys AUTHORIZED_KEYS`` is given: any interface,
  public-key login only (any user name), host key kept in
  ``DATA_DIR/manhole_host_key``.

The console's namespace is a set of plain functions (see ``help()``) that print
readable tables; see papertrader/master/console.py and worker/console.py.
"""

import os
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.application import strports
from twisted.conch import manhole_ssh, manhole_tap
from twisted.conch.checkers import SSHPublicKeyChecker
from twisted.conch.ssh import keys
from twisted.cred import portal
from zope.interface import implementer

from twisted.conch.checkers import IAuthorizedKeysDB

LOOPBACK = ("127.0.0.1", "::1", "localhost")
PASSWD = "manhole.passwd"
HOST_KEY = "manhole_host_key"


class ManholeError(ValueError):
    """A --manhole setting that would open the console unsafely or cannot be used."""


def telnet_description(listen):
    """A strports description for a telnet manhole, refusing anything but loopback or a Unix socket."""
    listen = str(listen).strip()
    if listen.isdigit():
        return f"tcp:{listen}:interface=127.0.0.1"
    kind, _, rest = listen.partition(":")
    if kind == "unix":
        return listen
    if kind == "tcp":
        params = dict(p.split("=", 1) for p in rest.split(":") if "=" in p)
        if params.get("interface") in LOOPBACK:
            return listen
    raise ManholeError(
        f"a telnet manhole listens only on loopback: use a port number, tcp:PORT:interface=127.0.0.1 or"
        f" unix:PATH, or give --manhole-keys for an SSH manhole (got {listen!r})")


def _password_file(data_dir):
    path = os.path.join(data_dir, PASSWD)
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"admin:{secrets.token_urlsafe(18)}\n")
    return path


def _host_key(data_dir):
    path = os.path.join(data_dir, HOST_KEY)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return keys.Key.fromString(f.read())
    key = ed25519.Ed25519PrivateKey.generate()
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                             serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return keys.Key.fromString(data)


@implementer(IAuthorizedKeysDB)
class AuthorizedKeysFile:
    """The keys of one authorized_keys file, for any user name; re-read at each login."""

    def __init__(self, path):
        self.path = path

    def getAuthorizedKeys(self, username):
        try:
            with open(self.path, "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            return []
        found = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith(b"#"):
                try:
                    found.append(keys.Key.fromString(line))
                except Exception:
                    continue
        return found


def manhole_service(listen, namespace, data_dir, authorized_keys=None):
    """The manhole service for ``listen`` (see the module docstring)."""
    if authorized_keys:
        if not os.path.exists(authorized_keys):
            raise ManholeError(f"--manhole-keys: {authorized_keys} does not exist")
        listen = str(listen)
        if listen.isdigit():
            listen = f"tcp:{listen}"
        realm = manhole_ssh.TerminalRealm()
        realm.chainedProtocolFactory = manhole_tap.chainedProtocolFactory(namespace)
        factory = manhole_ssh.ConchFactory(
            portal.Portal(realm, [SSHPublicKeyChecker(AuthorizedKeysFile(authorized_keys))]))
        key = _host_key(data_dir)
        factory.publicKeys = {key.sshType(): key.public()}
        factory.privateKeys = {key.sshType(): key}
        return strports.service(listen, factory)
    return manhole_tap.makeService({
        "telnetPort": telnet_description(listen),
        "sshPort": None,
        "namespace": namespace,
        "passwd": _password_file(data_dir),
    })


def help_text(namespace):
    """One line per console function: its call and the first line of its docstring."""
    import inspect

    rows = []
    for name, value in sorted(namespace.items()):
        if callable(value) and not name.startswith("_") and getattr(value, "__doc__", None) and \
                getattr(value, "__module__", "").startswith("papertrader."):
            try:
                signature = str(inspect.signature(value))
            except (TypeError, ValueError):
                signature = "()"
            rows.append((name + signature, value.__doc__.strip().splitlines()[0]))
    width = max(len(call) for call, _ in rows)
    return "\n".join(f"{call:<{width}}  {doc}" for call, doc in rows)


class Table(list):
    """A list of dicts that shows itself as a table (the console prints results with repr)."""

    def __init__(self, rows, columns):
        super().__init__(rows)
        self.columns = columns

    def __repr__(self):
        from papertrader.client.output import table

        return table(list(self), self.columns) if self else "(none)"


class Record(dict):
    """A dict that shows itself as 'key: value' lines."""

    def __repr__(self):
        from papertrader.client.output import fields

        return fields(self, list(self)) if self else "(nothing)"


class Text(str):
    """A string the console shows as text, not as a quoted repr."""

    def __repr__(self):
        return str(self)
