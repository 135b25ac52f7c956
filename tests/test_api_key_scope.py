"""An API key acts for one portfolio of its account, whatever door it comes by: at a worker's AMP port (where a
program could send it as a command's token) it trades and reads its portfolio, and is refused everything that
is its owner's (password, sessions, keys, profile, portfolios, games), on both databases."""

import json

import pytest
import pytest_twisted
from twisted.internet.endpoints import connectProtocol
from twisted.protocols import amp

from papertrader import commands, tls
from papertrader.errors import BadCredentials, NotPermitted, Throttled
from papertrader.master.api_keys import credential
from tests.conftest import _reactor, bounded
from tests.http_helpers import api, make_key, start_api  # noqa: F401 (a fixture)


async def worker_amp(d):
    """A typed AMP client over TLS to the first worker's client port."""
    worker = d.cluster.workers[0]
    with open(f"{d.data_dir}/ca.pem", "rb") as f:
        endpoint = tls.client_endpoint(_reactor(), "localhost", worker.listener.port.getHost().port, f.read())
    return await bounded(connectProtocol(endpoint, amp.AMP()), "a TLS connection to the worker")


@pytest_twisted.ensureDeferred
async def test_an_api_key_cannot_act_as_its_owner_over_amp(api):
    d = api.d
    token = credential(api.key_id, api.secret)
    other_key, _ = await make_key(d)
    peer = await worker_amp(d)
    try:
        async def call(command, **arguments):
            return await bounded(peer.callRemote(command, token=token, **arguments), command.commandName)

        refused = [
            (commands.Sessions, {}), (commands.LogoutAll, {}), (commands.EndSession, {"session_id": "0" * 12}),
            (commands.SetPassword, {"password": "Attacker-Chosen-Pass-77"}),
            (commands.ChangePassword, {"old_password": "correct horse", "new_password": "Attacker-Chosen-77"}),
            (commands.DeleteAccount, {"password": "correct horse"}), (commands.Profile, {}),
            (commands.SetProfile, {"public_portfolio": True}), (commands.ApiKeys, {}),
            (commands.RevokeApiKey, {"key_id": other_key}), (commands.CreateApiKey, {"name": "more"}),
            (commands.Whoami, {}), (commands.CreatePortfolio, {"name": "side", "cash": "1000"}),
            (commands.JoinGame, {"name": "class"}), (commands.Games, {}), (commands.Logout, {}),
            (commands.WatchOrders, {}),  # every portfolio's events: the HTTP trade stream shows the key's only
        ]
        for command, arguments in refused:
            with pytest.raises(NotPermitted) as e:
                await call(command, **arguments)
            assert ("sign in as yourself" in e.value.message or "api-key revoke" in e.value.message), command
        assert len(d.cluster.workers[0].order_fanout) == 0  # the refused watch left no watcher behind
        # What it is for still works: its portfolio, its orders, the account's watchlists.
        portfolio = await call(commands.Portfolio)
        assert portfolio["cash"] > 0
        assert (await call(commands.Orders, status="all", limit=10))["orders"] == []
        assert (await call(commands.Watchlists))["watchlists"] == []
        assert [p["name"] for p in (await call(commands.Portfolios))["portfolios"]] == ["default"]
    finally:
        peer.transport.loseConnection()
    # Nothing of the owner's changed: the sessions and keys are all there, the profile private.
    status, out, err = await d.cli("sessions", user="alice")
    assert status == 0 and len(json.loads(out)) == 1, err
    status, out, err = await d.cli("api-key", "list", user="alice")
    assert status == 0 and len(json.loads(out)) == 2, err
    status, out, err = await d.cli("profile", user="alice")
    assert status == 0 and json.loads(out)["public_portfolio"] is False, (out, err)


@pytest_twisted.ensureDeferred
async def test_guesses_of_the_current_password_are_throttled_as_logins(tmp_path, settings, database_url, clock):
    """Someone holding a session (a borrowed laptop) may not guess the password at bcrypt's speed: wrong
    current passwords count as failed logins of the account (5 free, as the default), and soon each must
    wait."""
    a = await start_api(tmp_path, settings, database_url, clock, login_free_attempts=5)
    d = a.d
    peer = await worker_amp(d)
    with open(f"{d.home}/alice/papertrader/session.json") as f:
        token = json.load(f)["token"]
    try:
        outcomes = []
        for i in range(12):
            try:
                await bounded(peer.callRemote(commands.ChangePassword, token=token, old_password=f"guess-{i}-xyz",
                                              new_password="Another-Good-Pass-81"), "ChangePassword")
                outcomes.append("changed")
            except BadCredentials:
                outcomes.append("wrong")
            except Throttled:
                outcomes.append("throttled")
        assert outcomes[:5] == ["wrong"] * 5 and "throttled" in outcomes, outcomes
        assert "changed" not in outcomes
        # And the sign-in is throttled for the name too: the guesses were counted there.
        status, out, err = await d.cli("login", "alice", "--password-stdin", stdin="correct horse\n", user="alice")
        assert status == 1 and json.loads(out)["error"] == "throttled", (status, out, err)
    finally:
        peer.transport.loseConnection()
        await d.cluster.stopService()
