"""The master's AMP protocol over an in-memory transport (twisted.test.iosim), with a real Master behind it."""

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.protocols import amp
from twisted.python import failure
from twisted.test import iosim

from papertrader import commands, gpgkeys
from papertrader.errors import WorkerRefused
from papertrader.master import files
from papertrader.master.protocol import MasterProtocol
from papertrader.master.service import Master


@pytest_twisted.async_yield_fixture
async def master(tmp_path, settings, database_url, clock):
    m = Master(str(tmp_path / "master"), settings, reactor, database=database_url, listen="0", clock=clock)
    await m.db.migrate()
    yield m
    m.db.close()
    m.workers.keyring.close()
    m.logs.close()


class Peer(amp.AMP):
    """The far end of the connection, taking the master's pushes like a worker would."""

    def __init__(self):
        super().__init__()
        self.quotes = []

    @commands.QuotesTick.responder
    def quotes_tick(self, quotes):
        self.quotes.append(quotes)
        return {}


def connect(master):
    client, server, pump = iosim.connectedServerAndClient(
        ServerClass=lambda: MasterProtocol(master), ClientClass=Peer, greet=True)
    return client, server, pump


async def settle(pump, d):
    """Pump the in-memory connection until ``d`` has an answer (the master's database runs in threads)."""
    outcome = []
    d.addBoth(outcome.append)
    while not outcome:
        pump.flush()
        await task.deferLater(reactor, 0, lambda: None)
    if isinstance(outcome[0], failure.Failure):
        outcome[0].raiseException()
    return outcome[0]


@pytest_twisted.ensureDeferred
async def test_worker_list_is_empty_until_a_worker_proves_itself(master, tmp_path):
    client, server, pump = connect(master)
    answer = await settle(pump, client.callRemote(commands.ListWorkers))
    assert answer["workers"] == []

    bundle = str(tmp_path / "w")
    armor = files.make_worker_bundle(master.data_dir, "w1", (), bundle)
    await master.workers.register("w1", armor)
    hello = await settle(pump, client.callRemote(commands.WorkerHello, name="w1", host="edge.example", port=2050,
                                                 version="test"))
    assert hello["challenge"].startswith("papertrader-worker-challenge:w1:")
    signature = gpgkeys.sign(bundle + "/gnupg", hello["challenge"])
    await settle(pump, client.callRemote(commands.WorkerProve, signature=signature))
    answer = await settle(pump, client.callRemote(commands.ListWorkers))
    assert answer["workers"] == [{"name": "w1", "host": "edge.example", "port": 2050}]

    # Disconnecting unlinks it: it leaves the list at once.
    client.transport.loseConnection()
    pump.flush()
    assert master.workers.listing() == []
    gpgkeys.stop_agent(bundle + "/gnupg")


@pytest_twisted.ensureDeferred
async def test_a_challenge_answers_once(master, tmp_path):
    bundle = str(tmp_path / "w")
    await master.workers.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), bundle))
    client, server, pump = connect(master)
    hello = await settle(pump, client.callRemote(commands.WorkerHello, name="w1", host="localhost", port=1,
                                                 version="test"))
    signature = gpgkeys.sign(bundle + "/gnupg", hello["challenge"])
    await settle(pump, client.callRemote(commands.WorkerProve, signature=signature))

    # Someone replaying the same answer on another connection gets nothing.
    other, _, other_pump = connect(master)
    with pytest.raises(WorkerRefused):
        await settle(other_pump, other.callRemote(commands.WorkerProve, signature=signature))
    # And a fresh challenge on that connection is not answered by the old signature.
    await settle(other_pump, other.callRemote(commands.WorkerHello, name="w1", host="localhost", port=1,
                                              version="test"))
    with pytest.raises(WorkerRefused):
        await settle(other_pump, other.callRemote(commands.WorkerProve, signature=signature))
    gpgkeys.stop_agent(bundle + "/gnupg")


@pytest_twisted.ensureDeferred
async def test_garbage_signature_is_refused_not_crashed(master, tmp_path):
    bundle = str(tmp_path / "w")
    await master.workers.register("w1", files.make_worker_bundle(master.data_dir, "w1", (), bundle))
    client, server, pump = connect(master)
    await settle(pump, client.callRemote(commands.WorkerHello, name="w1", host="localhost", port=1, version="t"))
    with pytest.raises(WorkerRefused):
        await settle(pump, client.callRemote(commands.WorkerProve, signature="-----BEGIN PGP SIGNATURE-----\nxx"))
    assert master.workers.listing() == []
    gpgkeys.stop_agent(bundle + "/gnupg")
