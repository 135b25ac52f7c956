"""What a master keeps in its data dir, and how a worker's bundle is made.

    DIR/ca.pem, DIR/ca-key.pem   the deployment's certificate authority
    DIR/master.pem               the master's TLS key and certificate
    DIR/gnupg/                   the keyring of registered workers' public keys
    DIR/papertrader.db           the SQLite database (unless --database is given)
    DIR/logs/master.log          the master's log file
    DIR/master.port              the port the master listens on (written at each start)
    DIR/database.url             the --database URL the master last started with (none: SQLite in DIR), for
                                 papertrader-admin (owner-only: a URL may hold a password)
    DIR/workers/NAME/            a worker bundle made by register-worker (and by the cluster)
"""

import datetime
import os
import shutil

from papertrader import gpgkeys, tls
from papertrader.tls import CertificateAuthority

MASTER_CERT = "master.pem"
WORKER_CERT = "worker.pem"
PORT_FILE = "master.port"
DATABASE_FILE = "database.url"
#: What every master's data dir holds from its first start on (papertrader-admin checks for them).
MASTER_FILES = (tls.CA_CERT, tls.CA_KEY, MASTER_CERT)


#: A certificate that expires within this is issued again when its owner starts (a master's, each start).
RENEW_BEFORE = datetime.timedelta(days=30)
#: A master whose CA expires within this says so in its log at each start (the CA is not renewed by itself).
CA_WARNING = datetime.timedelta(days=365)


def _ensure_cert(ca, common_name, hostnames, path):
    """Issue ``path`` unless it exists, is signed by ``ca`` (not by a CA it replaced), already covers
    ``hostnames`` (names it had are kept), names its key and its CA's (key identifiers), and is not about to
    expire (RENEW_BEFORE; it never outlives the CA, which is not renewed here)."""
    cert = tls.read_certificate(path) if os.path.exists(path) else None
    have = tls.hostnames_of(cert) if cert is not None else []
    wanted = tls.default_hostnames(list(hostnames) + have)
    expiring = False
    if cert is not None:
        ends, now = cert.not_valid_after_utc, datetime.datetime.now(datetime.timezone.utc)
        expiring = ends - now < RENEW_BEFORE and ca.cert.not_valid_after_utc - ends > datetime.timedelta(days=1)
    if (cert is None or not set(wanted) <= set(have) or expiring or not tls.issued_by(cert, ca)
            or not tls.has_key_identifiers(cert)):  # (made before certificates carried them: strict verifiers)
        ca.issue(common_name, wanted, path)


def ensure_master_files(data_dir, hostnames=()):
    """Create the CA and the master's certificate on first use; return the CA.

    A host name not yet in the master's certificate gets it reissued, keeping the names it had.
    """
    make_private_dir(data_dir)
    ca = CertificateAuthority.ensure(data_dir)
    _ensure_cert(ca, "PaperTrader master", hostnames, os.path.join(data_dir, MASTER_CERT))
    return ca


def is_master_dir(data_dir):
    """True if ``data_dir`` is a master's data dir (it holds the CA and the master's certificate)."""
    return os.path.isdir(data_dir) and all(os.path.isfile(os.path.join(data_dir, name)) for name in MASTER_FILES)


def record_port(data_dir, port):
    """Note the port the master listens on, for papertrader-admin's hints (written atomically)."""
    tls.write_private(os.path.join(data_dir, PORT_FILE), f"{int(port)}\n".encode())


def recorded_port(data_dir):
    """The port the master last listened on, or None if unknown."""
    try:
        with open(os.path.join(data_dir, PORT_FILE), encoding="ascii") as f:
            port = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return port if 0 < port < 65536 else None


def record_database(data_dir, url):
    """Note the --database URL the master started with (None: the SQLite database in DIR), so that
    papertrader-admin works on the master's database without being told again."""
    path = os.path.join(data_dir, DATABASE_FILE)
    if url is None:
        if os.path.exists(path):
            os.unlink(path)
        return
    tls.write_private(path, f"{url}\n".encode())


def recorded_database(data_dir):
    """The --database URL the master last started with, or None (SQLite in DIR, or not known)."""
    try:
        with open(os.path.join(data_dir, DATABASE_FILE), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


class DatabaseSwitch(ValueError):
    """A --database that is not the database this data dir's master last used (a usage mistake: nothing is copied
    from one database to another)."""


def database_to_use(data_dir, url, new_database=False):
    """The database a master of ``data_dir`` starts with (None: SQLite in the data dir): ``url`` (--database), else
    the one it last started with.  A ``url`` naming another database than that one, while that one exists, is
    refused (nothing is copied: the master would start without its accounts, workers and orders) unless
    ``new_database``."""
    from papertrader.master.db import Database, redact, same_database

    default = Database.default_url(data_dir)
    previous = recorded_database(data_dir)
    if url is None:
        return previous
    url = url.strip()
    wanted = None if same_database(url, default, data_dir) else url
    if same_database(url, previous or default, data_dir):
        return previous  # (as it was first written)
    if new_database:
        return wanted
    if previous is None and not os.path.exists(os.path.join(data_dir, "papertrader.db")):
        return wanted  # a new data dir (or one whose master never started): nothing to leave behind
    before = (f"the SQLite database in it ({os.path.join(data_dir, 'papertrader.db')})" if previous is None
              else redact(previous))
    back = "without --database" if previous is None else f"with --database {redact(previous)} (or without it)"
    raise DatabaseSwitch(
        f"--database: this data dir's master last used {before}; {redact(url)} is another database, and nothing is"
        f" copied from one to the other: the master would start on what that one holds (nothing, if it is new),"
        f" without the accounts, workers and orders of the one it last used. Start the master {back}; to move to"
        f" it, stop the master and run papertrader-admin --data-dir DIR copy-database --to URL; or give"
        f" --new-database to start on {redact(url)} as it is")


def make_private_dir(path):
    """Create ``path`` (if needed) readable by its owner only: the database, logs and keys inside it
    are then closed to other local users whatever their own modes."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


def keyring_dir(data_dir):
    return os.path.join(data_dir, "gnupg")


def worker_dir(data_dir, name):
    return os.path.join(data_dir, "workers", name)


def may_hold_bundle(path):
    """Whether a worker bundle may be written in ``path``: an empty directory, or a bundle already (its data dir
    copied back, with its logs), never a directory holding other things (a home, /tmp, a master's data dir)."""
    if not os.path.isdir(path):
        return False
    entries = os.listdir(path)
    if not entries:
        return True
    return os.path.isfile(os.path.join(path, WORKER_CERT)) and os.path.isdir(os.path.join(path, "gnupg"))


def make_worker_bundle(master_dir, name, hostnames, out_dir):
    """Create (or reuse) worker ``name``'s data dir: CA, TLS certificate, GPG key.

    Returns the worker's public key armor, to be registered with the master.
    """
    ca = ensure_master_files(master_dir)
    make_private_dir(out_dir)
    shutil.copyfile(os.path.join(master_dir, tls.CA_CERT), os.path.join(out_dir, tls.CA_CERT))
    _ensure_cert(ca, f"PaperTrader worker {name}", hostnames, os.path.join(out_dir, WORKER_CERT))
    home = os.path.join(out_dir, "gnupg")
    _fingerprint, armor = gpgkeys.create_key(home, name)
    gpgkeys.stop_agent(home)
    return armor
