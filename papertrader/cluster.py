"""The whole platform in one process: a master and N workers, for a first run or a laptop.

The workers still reach the master over TLS AMP on loopback and prove
themselves with GPG, through the same code as separate processes.  On first
run everything is created in DIR (CA, certificates, GPG keys, registrations);
later runs reuse it.
"""

import os

from twisted.application import service
from twisted.internet import defer
from twisted.python import usage

from papertrader import gpgkeys, tls
from papertrader.master import files
from papertrader.master.service import DEFAULT_PORT as MASTER_PORT
from papertrader.master.service import Master, check_database_url
from papertrader.options import USAGE_MISTAKES, SettingsOptions, usage_message
from papertrader.services import StagedService, usage_exit
from papertrader.worker.service import DEFAULT_PORT as WORKER_PORT
from papertrader.worker.service import Worker

#: The first worker's HTTP API port of a cluster (the others follow it).
HTTP_PORT = 2060


class Options(SettingsOptions):
    command = "papertrader-cluster"
    synopsis = "--data-dir DIR [--workers N] [--master-port 2048] [--worker-port 2050]"
    longdesc = "Run a master and N workers in one process (workers on consecutive ports)."
    optParameters = [
        ["master-port", None, str(MASTER_PORT), "The master's port."],
        ["worker-port", None, str(WORKER_PORT), "The first worker's port; the others follow it."],
        ["database", None, None, "postgresql://... (default: SQLite in DIR)."],
        ["interface", None, "127.0.0.1", "Address every port listens on (0.0.0.0 for all)."],
        ["host", None, None, "Host name or address other machines reach this one by: added to the master's and"
                             " the workers' certificates, and the workers tell clients to use it (default: none;"
                             " localhost only)."],
        ["manhole", None, None, "Open the master's admin console on this endpoint (see the README)."],
        ["manhole-keys", None, None, "authorized_keys file: makes the manhole SSH with these public keys."],
        ["http-port", None, str(HTTP_PORT), "The first worker's HTTP API port (the others follow it; plain HTTP on a"
                                            " loopback --interface, else TLS with each worker's certificate); off:"
                                            " none."],
    ]

    optFlags = [["new-database", None, "Start on a --database other than the one this data dir's master last used, as"
                                       " it is (nothing is copied between them: see copy-database)."]]

    def postOptions(self):
        super().postOptions()
        for key in ("master-port", "worker-port"):
            try:
                self[key] = int(self[key])
            except ValueError:
                raise usage.UsageError(f"--{key} must be a port number")
        if self["http-port"] == "off":
            self["http-port"] = None
        else:
            try:
                self["http-port"] = int(self["http-port"])
            except ValueError:
                raise usage.UsageError("--http-port must be a port number, or off")
        for key in ("master-port", "worker-port", "http-port"):
            if self[key] is not None and not 0 <= self[key] <= 65535:
                raise usage.UsageError(f"--{key} {self[key]}: a port number is from 0 to 65535")
        check_database_url(self["database"])
        if self["host"] is not None:
            try:
                tls.check_hostname(self["host"], port_from="--master-port and --worker-port set them")
            except ValueError as e:
                raise usage.UsageError(str(e))


def _one_address(interface):
    """The address listened on if it is one address that certificates do not name anyway (not every address,
    not localhost, 127.0.0.1 or ::1), else None."""
    if interface in ("0.0.0.0", "::", "") or interface in tls.default_hostnames():
        return None
    return interface


def worker_names(count):
    return [f"worker{i}" for i in range(1, count + 1)]


class Cluster(StagedService):
    what = "cluster"

    def __init__(self, data_dir, settings, reactor, master_port=MASTER_PORT, worker_port=WORKER_PORT,
                 database=None, interface="127.0.0.1", clock=None, manhole=None, manhole_keys=None, http_port=None,
                 host=None, market_plan=None, config_path=None, new_database=False):
        super().__init__()
        gpgkeys.check_installed()
        # The names in the certificates: --host, and the address listened on if it is one address (the
        # workers in this process reach the master there, clients may too).
        hostnames = tuple(dict.fromkeys(n for n in (host, _one_address(interface)) if n))
        self.master = Master(data_dir, settings, reactor, database=database,
                             listen=tls.listen_description(master_port, interface,
                                                           os.path.join(data_dir, files.MASTER_CERT)),
                             clock=clock, manhole=manhole, manhole_keys=manhole_keys, hostnames=hostnames,
                             market_plan=market_plan, new_database=new_database)
        self.master.config_path = self.config_path = config_path  # named in the logs' first lines
        self.master.setServiceParent(self)
        self.log = self.master.log
        self.reactor = reactor
        self.settings = settings
        self.interface = interface
        self.host = host
        self.worker_port = worker_port
        self.http_port = http_port
        self.clock = clock
        self.bundles = {}
        for name in worker_names(settings.workers):
            self.bundles[name] = files.make_worker_bundle(data_dir, name, hostnames, files.worker_dir(data_dir, name))
        self.data_dir = data_dir
        self.workers = []

    @defer.inlineCallbacks
    def _start(self):
        self.master.startService()
        master_port = yield self.master.whenReady()
        for index, (name, armor) in enumerate(self.bundles.items()):
            if (yield self.master.workers.registration(name)) is None:
                yield self.master.workers.register(name, armor)  # first run; later runs keep kicks and revokes
            directory = files.worker_dir(self.data_dir, name)
            port = self.worker_port + index if self.worker_port else 0
            cert = os.path.join(directory, files.WORKER_CERT)
            worker = Worker(directory, name, (self._master_host(), master_port), self.settings, self.reactor,
                            listen=tls.listen_description(port, self.interface, cert), clock=self.clock,
                            http=self._http(index, cert), public_host=self._master_host() if self.host is None
                            else self.host)
            worker.config_path = self.config_path
            self.workers.append(worker)
            worker.setServiceParent(self)
        try:
            ports = yield defer.gatherResults([w.whenReady() for w in self.workers], consumeErrors=True)
        except defer.FirstError as e:
            e.subFailure.raiseException()
        return ports

    def _master_host(self):
        """Where the workers reach the master in this process, and clients reach the workers without --host:
        loopback, unless they listen on one address only."""
        return _one_address(self.interface) or "localhost"

    def _http(self, index, cert):
        """A worker's --http: plain HTTP on a loopback interface (alpaca-py works unchanged), else TLS."""
        if self.http_port is None:
            return None
        port = self.http_port + index if self.http_port else 0
        if tls.is_loopback(self.interface):
            return f"tcp:{port}:interface={self.interface}"
        return tls.listen_description(port, self.interface, cert)

    @defer.inlineCallbacks
    def _stop(self):
        for worker in self.workers:
            if worker.running:
                yield worker.stopService()
        yield self.master.stopService()
        service.Service.stopService(self)


def makeService(options, reactor=None):
    if reactor is None:
        from twisted.internet import reactor
    try:
        cluster = Cluster(options["data-dir"], options.settings, reactor, master_port=options["master-port"],
                          worker_port=options["worker-port"], database=options["database"],
                          interface=options["interface"], manhole=options["manhole"],
                          manhole_keys=options["manhole-keys"], http_port=options["http-port"], host=options["host"],
                          market_plan=options.market_plan, config_path=options.config_path,
                          new_database=bool(options["new-database"]))
    except USAGE_MISTAKES as e:
        usage_exit(Options.command, usage_message(e))
    cluster.exit_on_failure = reactor
    return cluster
