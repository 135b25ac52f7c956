"""Worker management on the master: registrations (GPG fingerprints) and live links.

Only a registered worker that proves it holds its registered key is linked.
The list given to clients is the linked workers with their public address.
"""

from dataclasses import dataclass, field
from datetime import datetime

from twisted.internet import defer, threads

from papertrader.times import iso, utc


@dataclass
class LinkedWorker:
    name: str
    host: str
    port: int
    version: str
    protocol: object
    since: datetime
    commands: int = field(default=0)


class Workers:
    """Registered workers (database + keyring) and the ones linked right now."""

    def __init__(self, db, keyring, clock, log):
        self.db = db
        self.keyring = keyring
        self.clock = clock
        self.log = log
        self.linked = {}

    @defer.inlineCallbacks
    def register(self, name, public_key_armor):
        """Import a worker's public key and record its fingerprint (replacing an older one)."""
        fingerprint = yield threads.deferToThread(self.keyring.import_key, public_key_armor)
        yield self.db.run(self._upsert, name, fingerprint)
        self.log.info("worker {name} registered with key {fingerprint}", name=name, fingerprint=fingerprint)
        return fingerprint

    def _upsert(self, cursor, name, fingerprint):
        cursor.execute(self.db.sql("DELETE FROM workers WHERE name = ? OR fingerprint = ?"), (name, fingerprint))
        cursor.execute(
            self.db.sql("INSERT INTO workers (name, fingerprint, created) VALUES (?, ?, ?)"),
            (name, fingerprint, iso(utc(self.clock.seconds()))),
        )

    @defer.inlineCallbacks
    def fingerprint(self, name):
        rows = yield self.db.query("SELECT fingerprint FROM workers WHERE name = ?", (name,))
        return rows[0][0] if rows else None

    @defer.inlineCallbacks
    def registered(self):
        rows = yield self.db.query("SELECT name, fingerprint, created FROM workers ORDER BY name")
        return [dict(name=r[0], fingerprint=r[1], created=r[2]) for r in rows]

    def verify(self, challenge, signature, fingerprint):
        """Fires True if ``signature`` of ``challenge`` was made by ``fingerprint``'s key."""
        return threads.deferToThread(self.keyring.verify, challenge, signature, fingerprint)

    def link(self, name, host, port, version, protocol):
        old = self.linked.get(name)
        if old is not None and old.protocol is not protocol:
            self.log.warn("worker {name} connected again; dropping its older link", name=name)
            old.protocol.transport.loseConnection()
        self.linked[name] = LinkedWorker(name, host, port, version, protocol, utc(self.clock.seconds()))
        self.log.info("worker {name} linked, serving clients at {host}:{port}", name=name, host=host, port=port)

    def unlink(self, name, protocol):
        current = self.linked.get(name)
        if current is not None and current.protocol is protocol:
            del self.linked[name]
            self.log.info("worker {name} disconnected", name=name)

    def listing(self):
        return [dict(name=w.name, host=w.host, port=w.port) for w in sorted(self.linked.values(), key=lambda w: w.name)]

    def broadcast(self, command, **kwargs):
        """Send ``command`` to every linked worker; a failing link is logged, not fatal."""
        for worker in list(self.linked.values()):
            d = worker.protocol.callRemote(command, **kwargs)
            if d is not None:
                d.addErrback(lambda f, name=worker.name: self.log.warn(
                    "could not tell worker {name}: {error}", name=name, error=f.getErrorMessage()))

