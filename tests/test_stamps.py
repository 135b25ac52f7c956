"""The worker stamps each command with the address of the client that sent it, never its own.

On loopback both would be 127.0.0.1, so the client here connects from another loopback address.
"""

import os

import pytest_twisted
from twisted.internet import reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.protocols import amp

from papertrader import commands
from tests.conftest import bounded

CLIENT_ADDRESS = "127.0.0.2"


@pytest_twisted.ensureDeferred
async def test_orders_and_sessions_carry_the_clients_own_address(deployment):
    d = deployment
    worker = d.cluster.workers[0]
    port = worker.listener.port.getHost().port
    with open(os.path.join(d.data_dir, "ca.pem"), "rb") as f:
        trust = ssl.Certificate.loadPEM(f.read())
    endpoint = wrapClientTLS(ssl.optionsForClientTLS("localhost", trustRoot=trust),
                             TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(CLIENT_ADDRESS, 0)))
    client = await bounded(connectProtocol(endpoint, amp.AMP()), "a connection to the worker")
    try:
        await bounded(client.callRemote(commands.Register, username="remote", email="remote@example.com",
                                        password="correct horse battery"), "Register")
        login = await bounded(client.callRemote(commands.Login, username="remote", password="correct horse battery",
                                                remember=False), "Login")
        order = await bounded(client.callRemote(commands.PlaceOrder, token=login["token"], client_order_id="far-1",
                                                side="buy", symbol="AAPL", quantity="1"), "PlaceOrder")
    finally:
        client.transport.loseConnection()
    rows = await d.master.db.query("SELECT client_ip, worker FROM orders WHERE id = ?", (order["id"],))
    assert rows == [(CLIENT_ADDRESS, worker.name)]
    rows = await d.master.db.query("SELECT s.client_ip FROM sessions s JOIN accounts a ON a.id = s.account_id"
                                   " WHERE a.username = 'remote'")
    assert rows == [(CLIENT_ADDRESS,)]
