"""Worker management on the master: registrations, live links, heartbeats, kick/allow/revoke.

A worker's *registration* (database + keyring) holds its key fingerprint, the
operator's decision about it (``registered``, ``kicked``, ``revoked``) and an
optional allow-list of addresses.  Only a registered worker that proves it
holds its key, from an allowed address, is *linked*.  The master sends every
linked worker a heartbeat each ``heartbeat_interval``; one silent for
``heartbeat_misses`` intervals is marked down and dropped.  The list given to
clients is the linked, healthy workers with their load.
"""

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

from twisted.application import service
from twisted.internet import defer, task

from papertrader import commands, pools, times, tls
from papertrader.errors import InvalidInput, Throttled, WorkerRefused
from papertrader.throttle import Throttle
from papertrader.times import iso, utc

REGISTERED, KICKED, REVOKED = "registered", "kicked", "revoked"


@dataclass
class LinkedWorker:
    name: str
    region: str
    host: str
    port: int
    version: str
    address: str
    protocol: object
    since: datetime
    last_heartbeat: datetime
    clients: int = 0
    sessions: int = 0
    commands: int = 0
    commands_per_second: Decimal = field(default_factory=lambda: Decimal("0.0"))
    #: Heartbeats in a row still unanswered when the next one was due, with nothing else heard from the worker
    #: meanwhile (a busy worker's answer waits behind the commands it passes on: they prove it alive).
    missed: int = 0
    awaiting: bool = False
    #: The count of boxes its connection had received at the last heartbeat.
    boxes: int = 0
    #: Usernames whose order events this worker's clients watch.
    watching: set = field(default_factory=set)


def parse_allowed(text):
    """Parse a comma-separated allow-list of addresses/networks; None means anywhere."""
    if not text:
        return None
    networks = []
    for item in text.split(","):
        item = item.strip()
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise InvalidInput(f"{item!r} is not an IP address or network")
    return networks or None


def allowed_text(text):
    """An allow-list as stored and shown: each network once, in the order given, an address alone without its
    prefix length ('203.0.113.7,10.1.0.0/16'); None (any address) for none."""
    networks = parse_allowed(text)
    if networks is None:
        return None
    items = []
    for network in networks:
        item = str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)
        if item not in items:
            items.append(item)
    return ",".join(items)


def address_allowed(allowed_text, address):
    networks = parse_allowed(allowed_text)
    if networks is None:
        return True
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def disconnect(protocol, grace=5.0):
    """Close a worker's connection; abort it if the peer has not finished closing within ``grace`` seconds.

    A dropped worker is refused at once whatever happens (``worker_only`` checks the live link);
    the abort only makes sure a peer that stopped reading cannot keep the socket forever.
    """
    transport = protocol.transport
    if transport is None:
        return
    transport.loseConnection()
    from twisted.internet import reactor

    def abort():
        if protocol.transport is not None:
            protocol.transport.abortConnection()

    reactor.callLater(grace, abort)


class Workers:
    """Registered workers (database + keyring) and the ones linked right now."""

    def __init__(self, db, keyring, clock, log):
        self.db = db
        self.keyring = keyring
        self.clock = clock
        self.log = log
        self.linked = {}
        #: name -> (times its link was replaced by another of it, the addresses, when that was last said).
        self._twins = {}
        #: Names kicked or revoked by this process: refused at link time even if the database write of the
        #: decision and a handshake's check of it crossed (a pool of several connections on PostgreSQL).
        self.barred = set()
        #: Per worker name, the kicks and revokes begun and done (odd: one in progress), so that a handshake can
        #: tell a bar it read the registration after (then the database has the last word: the worker may have
        #: been registered again, or allowed, by papertrader-admin) from one that came during it.
        self._bars = {}
        # A worker name that keeps being refused from one address (revoked, kicked, misconfigured, a wrong
        # key) is slowed down; its address only when it keeps failing under many names (guessing), so a
        # healthy worker on the same host is never kept waiting by a broken one.
        self.refusals = Throttle(clock, free=10, ceiling=600, window=600.0, cap=60.0)
        #: The last refusal of each worker name since it last linked: (when, why), for the operator's listing.
        self.last_refused = {}
        self.address_refusals = Throttle(clock, free=100, ceiling=6000, window=600.0, cap=60.0)
        #: Per worker name, the changes of its allowed addresses begun and done by this process (odd: one in
        #: progress), and the newest list it wrote: a handshake that read the registration before a change links
        #: only from an address the new list allows (see ``link``).
        self._readdressed = {}
        self._allowed = {}

    def now(self):
        return utc(self.clock.seconds())

    # --- registrations ------------------------------------------------------

    @defer.inlineCallbacks
    def register(self, name, public_key_armor, allowed_ips=None, replace=False):
        """Import a worker's public key and record its fingerprint.  A worker registered already keeps its
        registration with the same key (its hosts or ``allowed_ips`` changed; without ``allowed_ips`` it keeps
        its own); a new key replaces its registration only with ``replace`` (the running worker is refused
        until it has the new bundle), else InvalidInput says so and changes nothing."""
        parse_allowed(allowed_ips)
        # The key is imported once the registration is accepted: a refused one leaves the keyring as it was.
        fingerprint = yield pools.GPG.run(self.keyring.fingerprint_of, public_key_armor)
        rows = yield self.db.query("SELECT name, state FROM workers WHERE fingerprint = ?", (fingerprint,))
        if rows and rows[0][1] == REVOKED:
            raise InvalidInput(f"key {fingerprint} was revoked (worker {rows[0][0]!r}): give the worker a new key:"
                               f" 'register-worker {rows[0][0]} --out NEW_DIR' (a directory that does not exist yet;"
                               " or remove the old bundle directory first), then copy that bundle to the worker")
        if rows and rows[0][0] != name:
            raise InvalidInput(f"key {fingerprint} is already registered to worker {rows[0][0]!r}")
        before = yield self.registration(name)
        if before is not None and before["state"] != REVOKED:
            if before["fingerprint"] != fingerprint and not replace:
                raise InvalidInput(
                    f"worker {name!r} is already registered, with key {before['fingerprint']}, and this bundle has"
                    f" a new key: to copy its bundle again, use the directory that holds it (DATA_DIR/workers/{name}"
                    " unless it was made with --out; once copied to the worker's machine, its data dir there: copy"
                    " it back and give it as --out); to give it a new key, add --replace (replace=True in the"
                    " console; a worker running with the old bundle keeps its link until it reconnects)")
            if allowed_ips is None:
                allowed_ips = before["allowed_ips"]
        imported = yield pools.GPG.run(self.keyring.import_key, public_key_armor)
        if imported != fingerprint:
            raise InvalidInput("the bundle's public key could not be read: make a new bundle")
        # A kicked worker registered again with its key (a new host, new addresses) stays kicked until allowed.
        state = KICKED if before is not None and before["state"] == KICKED and \
            before["fingerprint"] == fingerprint else REGISTERED
        yield self.db.run(self._upsert, name, fingerprint, allowed_ips or None, state)
        if state == REGISTERED:
            self.barred.discard(name)
        self.log.info("worker {name} registered with key {fingerprint}{kicked}", name=name, fingerprint=fingerprint,
                      kicked=" (still kicked: allow it to let it connect)" if state == KICKED else "")
        if before is not None and before["fingerprint"] != fingerprint:  # replaced (or revoked before): out it goes
            yield pools.GPG.run(self.keyring.delete_key, before["fingerprint"])
        return fingerprint

    def _upsert(self, cursor, name, fingerprint, allowed_ips, state=REGISTERED):
        cursor.execute(self.db.sql("DELETE FROM workers WHERE name = ?"), (name,))
        cursor.execute(
            self.db.sql("INSERT INTO workers (name, fingerprint, created, state, allowed_ips) VALUES (?, ?, ?, ?, ?)"),
            (name, fingerprint, iso(self.now()), state, allowed_ips),
        )

    @defer.inlineCallbacks
    def registration(self, name):
        rows = yield self.db.query(
            "SELECT name, fingerprint, created, state, allowed_ips FROM workers WHERE name = ?", (name,))
        if not rows:
            return None
        return dict(zip(("name", "fingerprint", "created", "state", "allowed_ips"), rows[0]))

    @defer.inlineCallbacks
    def registered(self):
        rows = yield self.db.query(
            "SELECT name, fingerprint, created, state, allowed_ips FROM workers ORDER BY name")
        return [dict(zip(("name", "fingerprint", "created", "state", "allowed_ips"), r)) for r in rows]

    # --- the handshake ------------------------------------------------------

    @defer.inlineCallbacks
    def admit(self, name, address):
        """The registration of a worker allowed to try the handshake from ``address``, or WorkerRefused."""
        try:
            self.address_refusals.check(address)
        except Throttled:
            raise WorkerRefused("too many refused handshakes from this address; wait and try again")
        try:
            self.refusals.check((name, address))
        except Throttled:
            raise WorkerRefused(f"too many refused handshakes for worker {name!r} from this address; wait and try"
                                " again")
        bars = self._bars.get(name, 0)  # (before the registration is read: see link)
        readdressed = self._readdressed.get(name, 0)
        try:
            reg = yield self._admissible(name, address)
        except WorkerRefused as e:
            self.refused(name, address, e.message)
            raise
        return dict(reg, bars=bars, readdressed=readdressed)

    def refused(self, name, address, why="refused"):
        """Count a refused handshake against this worker name from this address (and, loosely, the address);
        what ``overview`` shows of it until the worker links."""
        self.refusals.failed((name, address))
        self.address_refusals.failed(address)
        if len(self.last_refused) < 10_000 or name in self.last_refused:
            self.last_refused[name] = (self.now(), f"{why} (from {address})"[:300])

    @defer.inlineCallbacks
    def _admissible(self, name, address):
        reg = yield self.registration(name)
        if reg is None:
            self.log.warn("refused unregistered worker {name!r} from {address}", name=name, address=address)
            raise WorkerRefused(f"worker {name!r} is not registered with this master")
        if reg["state"] == REVOKED:
            self.log.warn("refused revoked worker {name!r} from {address}", name=name, address=address)
            raise WorkerRefused(f"worker {name!r} has been revoked")
        if reg["state"] == KICKED:
            self.log.warn("refused kicked worker {name!r} from {address}", name=name, address=address)
            raise WorkerRefused(f"worker {name!r} was kicked; an operator must allow it again")
        if not address_allowed(reg["allowed_ips"], address):
            self.log.warn("refused worker {name!r} from {address}: not in its allowed addresses",
                          name=name, address=address)
            raise WorkerRefused(f"worker {name!r} may not connect from {address}")
        return reg

    def verify(self, challenge, signature, fingerprint):
        """Fires (True, None) if ``signature`` of ``challenge`` was made by ``fingerprint``'s key, else (False, why):
        see gpgkeys.Keyring.verify."""
        return pools.GPG.run(self.keyring.verify, challenge, signature, fingerprint)

    #: A worker whose link replaces its own link this many times within TWINS_WINDOW seconds is said to run twice.
    TWINS = 3
    TWINS_WINDOW = 60.0

    def _replaced(self, name, before, now):
        """A worker's link was replaced by a new one of it: once or twice, a reconnect after a cut; again and
        again, two processes running with one bundle, each knocking the other off (said once a window)."""
        seconds = self.clock.seconds()
        times, addresses, said = self._twins.get(name, ([], set(), None))
        times = [t for t in times if seconds - t < self.TWINS_WINDOW] + [seconds]
        addresses = (addresses if len(times) > 1 else set()) | {before, now}
        if len(times) >= self.TWINS and (said is None or seconds - said >= self.TWINS_WINDOW):
            self.log.error("worker {name} replaced its own link {n} times in {window:.0f} s (from {addresses}): two"
                           " processes are probably running with its bundle, each taking the link from the other;"
                           " stop one (clients are sent to each in turn meanwhile)", name=name, n=len(times),
                           window=self.TWINS_WINDOW, addresses=", ".join(sorted(str(a) for a in addresses)))
            said = seconds
        self._twins[name] = (times, addresses, said)
        while len(self._twins) > 10_000:  # (bounded: the oldest names go)
            self._twins.pop(next(iter(self._twins)))

    def link(self, name, region, host, port, version, address, protocol, bars=None, readdressed=None):
        """Link a worker whose handshake succeeded; ``bars`` and ``readdressed``: the counts of its kicks and
        revokes, and of the changes of its allowed addresses, when its registration was last read (``admit``)."""
        if readdressed is not None and readdressed != self._readdressed.get(name, 0) and \
                not address_allowed(self._allowed.get(name), address):
            # Its addresses were changed since that reading (or are being changed), and no longer allow this one.
            self.log.warn("refused worker {name!r} from {address}: not in its allowed addresses (changed during its"
                          " handshake)", name=name, address=address)
            self.refused(name, address, f"worker {name!r} may not connect from {address}")
            raise WorkerRefused(f"worker {name!r} may not connect from {address}")
        if name in self.barred:
            if bars is not None and bars % 2 == 0 and bars == self._bars.get(name, 0):
                # Barred before that reading, which said it may connect: registered again or allowed since, on
                # the database (papertrader-admin): the database has the last word.
                self.barred.discard(name)
            else:  # kicked or revoked while it was shaking hands
                self.log.warn("refused worker {name!r} from {address}: kicked or revoked during its handshake",
                              name=name, address=address)
                self.refused(name, address, "kicked or revoked during its handshake")
                raise WorkerRefused(f"worker {name!r} was kicked or revoked")
        old = self.linked.get(name)
        if old is not None and old.protocol is not protocol:
            self.log.warn("worker {name} connected again; dropping its older link", name=name)
            if getattr(old.protocol, "transport", None) is not None:  # told why, on the worker's machine too
                old.protocol.callRemote(commands.LinkReplaced, address=address)
            disconnect(old.protocol)
            self._replaced(name, old.address, address)
        now = self.now()
        self.last_refused.pop(name, None)
        self.linked[name] = LinkedWorker(name, region, host, port, version, address, protocol, now, now)
        self.log.info("worker {name} linked ({region}), serving clients at {address}",
                      name=name, region=region, address=tls.address_text(host, port))

    def unlink(self, name, protocol):
        current = self.linked.get(name)
        if current is not None and current.protocol is protocol:
            del self.linked[name]
            self.log.info("worker {name} disconnected", name=name)

    def listing(self):
        """What clients are given: linked, healthy workers, least loaded first."""
        healthy = [w for w in self.linked.values() if w.missed == 0]
        return [dict(name=w.name, region=w.region, host=w.host, port=w.port, load=w.clients)
                for w in sorted(healthy, key=lambda w: (w.clients, w.name))]

    def broadcast(self, command, **kwargs):
        """Send ``command`` to every linked worker; a failing link is logged, not fatal."""
        for worker in list(self.linked.values()):
            d = worker.protocol.callRemote(command, **kwargs)
            if d is not None:
                d.addErrback(lambda f, name=worker.name: self.log.warn(
                    "could not tell worker {name}: {error}", name=name, error=f.getErrorMessage()))

    def watching(self, name, usernames, action):
        """Record which accounts' order events a worker's clients watch (``replace``, ``add``, ``remove``)."""
        linked = self.linked.get(name)
        if linked is None:
            return
        if action == "replace":
            linked.watching = set(usernames)
        elif action == "add":
            linked.watching.update(usernames)
        elif action == "remove":
            linked.watching.difference_update(usernames)

    def push_order_events(self, events):
        """Send each (username, event) to the workers whose clients watch that account."""
        for worker in list(self.linked.values()):
            mine = [dict(event, username=username, order=[event["order"]]) for username, event in events
                    if username in worker.watching]
            if not mine:  # (most pushes: no client of this worker watches these accounts)
                continue
            for chunk in commands.chunks(commands.OrderEvents, "events", mine):
                d = worker.protocol.callRemote(commands.OrderEvents, events=chunk)
                if d is not None:
                    d.addErrback(lambda f, name=worker.name: self.log.warn(
                        "could not push order events to worker {name}: {error}", name=name,
                        error=f.getErrorMessage()))

    # --- an operator's decisions -------------------------------------------

    @defer.inlineCallbacks
    def _set_state(self, name, state):
        reg = yield self._known(name)
        yield self.db.execute("UPDATE workers SET state = ? WHERE name = ?", (state, name))
        return reg

    def _drop(self, name, reason):
        linked = self.linked.pop(name, None)
        if linked is not None:
            if linked.protocol.transport is not None:
                linked.protocol.callRemote(commands.Kicked, reason=reason)
            disconnect(linked.protocol)
        return linked is not None

    def _bar(self, name):
        """A kick or revoke begins (the count turns odd) or is written (even again)."""
        _count_change(self._bars, name)

    @defer.inlineCallbacks
    def kick(self, name):
        """Disconnect a worker now and refuse it until :meth:`allow`.  Fires True if it was connected."""
        if (yield self.registration(name)) is not None:
            self.barred.add(name)
        self._bar(name)
        try:
            yield self._set_state(name, KICKED)
        finally:
            self._bar(name)
        dropped = self._drop(name, "kicked by an operator")
        self.log.warn("worker {name} kicked{what}", name=name, what=" and disconnected" if dropped else "")
        return dropped

    @defer.inlineCallbacks
    def _known(self, name, revoked_fix=None):
        """The registration of ``name``, or InvalidInput if there is none; with ``revoked_fix`` (more arguments of
        register-worker), a revoked one is refused too, naming the command that gives the worker a new key."""
        reg = yield self.registration(name)
        if reg is None:
            raise InvalidInput(f"no worker named {name!r} is registered")
        if revoked_fix is not None and reg["state"] == REVOKED:
            raise InvalidInput(f"worker {name!r} was revoked: its key never links again; give the worker a new key:"
                               f" 'register-worker {name} --out NEW_DIR{revoked_fix}' (a directory that does not"
                               " exist yet), then copy that bundle to the worker")
        return reg

    @defer.inlineCallbacks
    def allow(self, name):
        """Let a kicked worker connect again.  Fires True if it had been kicked."""
        reg = yield self._known(name, revoked_fix="")
        yield self._set_state(name, REGISTERED)
        self.barred.discard(name)
        self.log.info("worker {name} allowed to connect", name=name)
        return reg["state"] == KICKED

    @defer.inlineCallbacks
    def revoke(self, name):
        """Remove a worker's registration for good: its key is deleted and it is refused from now on.  Fires
        False if it was revoked already (nothing is done again)."""
        known = yield self.registration(name)
        if known is not None and known["state"] == REVOKED:
            return False
        if known is not None:
            self.barred.add(name)
        self._bar(name)
        try:
            reg = yield self._set_state(name, REVOKED)
        finally:
            self._bar(name)
        self._drop(name, "revoked by an operator")
        yield pools.GPG.run(self.keyring.delete_key, reg["fingerprint"])
        self.log.warn("worker {name} revoked (key {fingerprint} deleted)", name=name, fingerprint=reg["fingerprint"])
        return True

    @defer.inlineCallbacks
    def allowed_addresses(self, name):
        """A registered worker's allowed addresses as ``allowed_text`` gives them (None: any), or InvalidInput."""
        reg = yield self._known(name)
        return allowed_text(reg["allowed_ips"])

    @defer.inlineCallbacks
    def set_allowed(self, name, allowed_ips):
        """Set the addresses a registered worker may connect from (``allowed_ips``: "10.0.0.7,10.1.0.0/16", or
        None for any address).  A worker linked from an address no longer allowed is disconnected at once, as a
        kick does (it is refused from there when it comes back); a handshake under way is refused at its end (see
        ``link``).  Fires {name, before, after, disconnected, address}: ``address``, the one it was linked from."""
        after = allowed_text(allowed_ips)  # (InvalidInput for a bad network, before anything is read or written)
        reg = yield self._known(name, revoked_fix=" --allow-ip NET")
        before = allowed_text(reg["allowed_ips"])
        self._allowed[name] = after
        self._readdress(name)
        try:
            yield self.db.execute("UPDATE workers SET allowed_ips = ? WHERE name = ?", (after, name))
        finally:
            self._readdress(name)
        linked = self.linked.get(name)
        address = linked.address if linked is not None else None
        dropped = linked is not None and not address_allowed(after, address) and self._drop(
            name, f"cut off by an operator: {address} is no longer among its allowed addresses")
        self.log.info("worker {name} may connect from: {after} (was: {before})", name=name,
                      after=shown_allowed(after), before=shown_allowed(before))
        if dropped:
            self.log.warn("worker {name} disconnected: it was linked from {address}, which is no longer among its"
                          " allowed addresses", name=name, address=address)
        return {"name": name, "before": before, "after": after, "disconnected": bool(dropped), "address": address}

    def _readdress(self, name):
        """A change of a worker's allowed addresses begins (the count turns odd) or is written (even again)."""
        for gone in _count_change(self._readdressed, name):
            self._allowed.pop(gone, None)

    # --- heartbeats ---------------------------------------------------------

    def heartbeat(self, interval, misses):
        """One round: mark down the silent, ask the others.  Returns when all answers are in."""
        rounds = []
        for worker in list(self.linked.values()):
            boxes = getattr(worker.protocol, "boxes", 0)
            if worker.awaiting and boxes == worker.boxes:
                worker.missed += 1  # the last heartbeat is still unanswered, and nothing came: late (and unlisted)
            worker.boxes = boxes
            if worker.missed >= misses:
                self.log.warn("worker {name} missed {n} heartbeats: marked down", name=worker.name, n=misses)
                self.linked.pop(worker.name, None)
                disconnect(worker.protocol)
                continue
            worker.awaiting = True
            d = worker.protocol.callRemote(commands.Heartbeat)
            d.addCallback(self._answered, worker, interval)
            d.addErrback(lambda f, name=worker.name: self.log.warn(
                "heartbeat to {name} failed: {error}", name=name, error=f.getErrorMessage()))
            rounds.append(d)
        return defer.DeferredList(rounds)

    def _answered(self, answer, worker, interval):
        now = self.now()
        elapsed = max((now - worker.last_heartbeat).total_seconds(), interval)
        done = max(answer["commands"] - worker.commands, 0)
        worker.commands_per_second = (Decimal(done) / Decimal(str(elapsed))).quantize(Decimal("0.1"))
        worker.commands = answer["commands"]
        worker.clients = answer["clients"]
        worker.sessions = answer["sessions"]
        worker.last_heartbeat = now
        worker.missed = 0
        worker.awaiting = False

    # --- information --------------------------------------------------------

    @defer.inlineCallbacks
    def overview(self):
        """Every registered or linked worker, with its state and live figures."""
        rows = {r["name"]: r for r in (yield self.registered())}
        out = []
        for name in sorted(set(rows) | set(self.linked)):
            reg = rows.get(name, {})
            item = dict(name=name, state=reg.get("state", "unregistered"), fingerprint=reg.get("fingerprint", ""))
            linked = self.linked.get(name)
            if linked is not None:
                item.update(state="connected" if linked.missed == 0 else "late", region=linked.region,
                            host=linked.host, port=linked.port, since=linked.since,
                            last_heartbeat=linked.last_heartbeat, clients=linked.clients,
                            commands_per_second=linked.commands_per_second, version=linked.version,
                            address=linked.address)
            elif name in self.last_refused:  # registered, but turned away when it last tried
                when, why = self.last_refused[name]
                item.update(refused=refusal_text(when, why), refused_at=when)
            out.append(item)
        return out

    def status(self, name, log_entries=20):
        """Ask a linked worker for its state and newest log entries (over AMP)."""
        linked = self.linked.get(name)
        if linked is None:
            return defer.fail(InvalidInput(f"worker {name!r} is not connected"))
        return linked.protocol.callRemote(commands.WorkerStatus, log_entries=log_entries)


def _count_change(counts, name, most=10_000):
    """One more change of ``name`` in ``counts`` (one begins: the count turns odd; it is written: even again); at
    most ``most`` names are kept, the oldest go.  Returns the names that went."""
    counts[name] = counts.get(name, 0) + 1
    gone = []
    while len(counts) > most:
        oldest = next(iter(counts))
        del counts[oldest]
        gone.append(oldest)
    return gone


def shown_allowed(text):
    """Allowed addresses for a person: '203.0.113.7, 10.1.0.0/16', or 'any address'."""
    return ", ".join(text.split(",")) if text else "any address"


def allowed_change_text(name, answer, changed):
    """What ``allow-ip`` (papertrader-admin, the console) says of an AdminAllowIp ``answer``; ``changed``: a change
    was asked (else the addresses were only read)."""
    before, after = answer.get("before"), answer.get("after")
    text = f"worker {name} may connect from: {shown_allowed(after)}"
    if changed:
        text += " (unchanged)" if before == after else f" (was: {shown_allowed(before)})"
    if answer.get("disconnected"):
        text += (f"\nit was connected from {answer.get('address')}, which is no longer allowed: disconnected, and"
                 " refused from there from now on")
    return text


def refusal_text(when, why):
    """A refused worker's ``refused``, as overview gives it: its time in UTC, then why ('2024-03-08 14:30:00 bad
    signature (from 10.0.0.7)'); papertrader-admin shows the time in the market's zone instead."""
    return f"{when.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S} {why}"


def worker_rows(rows, zone):
    """The workers as a person's listing shows them (papertrader-admin's, the console's): a refusal's time in
    ``zone`` too, as the other times (overview says it in UTC, then why: '2024-03-08 14:30:00 bad signature (from
    ...)', and when, ``refused_at``)."""
    shown = []
    for row in rows:
        at, text = row.get("refused_at"), row.get("refused") or ""
        prefix = refusal_text(at, "") if at is not None else None
        if prefix and text.startswith(prefix):
            row = dict(row, refused=f"{times.local(at, zone, seconds=True)} {text[len(prefix):]}")
        shown.append(row)
    return shown


class WorkerMonitor(service.Service):
    """Heartbeats every ``interval`` seconds (a LoopingCall on ``clock``)."""

    def __init__(self, workers, interval, misses, clock, log):
        self.workers = workers
        self.interval = interval
        self.misses = misses
        self.log = log
        self.busy = None
        self._loop = task.LoopingCall(self.beat)
        self._loop.clock = clock

    def beat(self):
        try:
            self.busy = self.workers.heartbeat(self.interval, self.misses)
        except Exception:
            self.log.failure("heartbeat round failed")
            self.busy = defer.succeed(None)
        return None  # do not wait for slow workers before the next round

    def startService(self):
        super().startService()
        self._loop.start(self.interval, now=False)

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()
