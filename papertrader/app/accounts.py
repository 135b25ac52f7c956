"""Account commands: registration, sign-in (password or identity provider), sessions, profiles, deletion."""

from twisted.internet import defer

from papertrader import commands
from papertrader.app import authenticated
from papertrader.errors import ProviderLoginFailed

MAX_STATE = 100
MAX_CODE = 4096


class AccountCommands:
    def __init__(self, accounts, provider):
        self.accounts = accounts
        self.provider = provider  # an oidc.Provider, or None when provider sign-in is off

    def _provider(self, name):
        provider = self.provider
        if provider is None or name != provider.name:
            raise ProviderLoginFailed(f"no identity provider {name[:32]!r} is set up on this deployment")
        return provider

    @defer.inlineCallbacks
    def register(self, stamp, username, email, password):
        account = yield self.accounts.register(username, email, password, stamp.client_ip[:64])
        return {"username": account.username, "email": account.email, "cash": account.cash}

    @defer.inlineCallbacks
    def login(self, stamp, username, password, remember, device=None):
        token, name, expires = yield self.accounts.login(username, password, remember, stamp.worker,
                                                         stamp.client_ip[:64], device)
        return {"token": token, "username": name, "expires": expires}

    @defer.inlineCallbacks
    def logout(self, stamp, token):
        yield self.accounts.logout(token)
        return {}

    @defer.inlineCallbacks
    def provider_start(self, stamp, provider, redirect_uri):
        url, state, secret = yield self._provider(provider).start(redirect_uri, stamp.client_ip[:64])
        return {"url": url, "state": state, "secret": secret}

    @defer.inlineCallbacks
    def provider_finish(self, stamp, provider, state, code, secret, remember, device=None):
        if len(state) > MAX_STATE or len(code) > MAX_CODE or len(secret) > MAX_STATE:
            raise ProviderLoginFailed("this sign-in is unknown or has expired; start again")
        identity = yield self._provider(provider).finish(state, code, secret)
        answer = yield self.accounts.identity_login(identity, remember, stamp.worker, stamp.client_ip[:64], device)
        return answer

    @defer.inlineCallbacks
    def provider_create(self, stamp, ticket, username):
        token, name, expires = yield self.accounts.create_from_identity(ticket, username, stamp.worker,
                                                                        stamp.client_ip[:64])
        return {"token": token, "username": name, "expires": expires}

    @defer.inlineCallbacks
    def provider_link(self, stamp, ticket, username, password):
        token, name, expires = yield self.accounts.link_identity(ticket, username, password, stamp.worker,
                                                                 stamp.client_ip[:64])
        return {"token": token, "username": name, "expires": expires}

    @authenticated
    @defer.inlineCallbacks
    def set_password(self, session, stamp, password):
        yield self.accounts.set_password(session, password)
        return {}

    @authenticated
    def profile(self, session, stamp, username=None):
        return self.accounts.profile(session, username)

    @authenticated
    @defer.inlineCallbacks
    def set_profile(self, session, stamp, public_portfolio):
        yield self.accounts.set_public(session, public_portfolio)
        return {}

    @authenticated
    @defer.inlineCallbacks
    def delete_account(self, session, stamp, password=None, provider=None, state=None, code=None, secret=None):
        identity = None
        if provider and state and code and secret and len(state) <= MAX_STATE and len(code) <= MAX_CODE and \
                len(secret) <= MAX_STATE:
            identity = yield self._provider(provider).finish(state, code, secret)
        yield self.accounts.delete(session, password, identity, stamp.client_ip[:64])
        return {}

    @authenticated
    @defer.inlineCallbacks
    def sessions(self, session, stamp):
        sessions = yield self.accounts.sessions(session)
        return {"sessions": sessions[-commands.MAX_LIST:]}

    @authenticated
    @defer.inlineCallbacks
    def end_session(self, session, stamp, session_id):
        yield self.accounts.end_session(session, session_id[:32])
        return {}

    @authenticated
    @defer.inlineCallbacks
    def logout_all(self, session, stamp):
        ended = yield self.accounts.logout_all(session)
        return {"sessions_ended": ended, "api_keys": (yield self._keys_working(session))}

    @authenticated
    @defer.inlineCallbacks
    def change_password(self, session, stamp, old_password, new_password):
        ended = yield self.accounts.change_password(session, old_password, new_password, stamp.client_ip[:64])
        return {"sessions_ended": ended, "api_keys": (yield self._keys_working(session))}

    def _keys_working(self, session):
        """How many of the account's API keys still work (a password changed or every session ended leaves
        them: the person is told, to revoke any they did not make)."""
        keys = self.accounts.api_keys
        return keys.working(session.account_id) if keys is not None else defer.succeed(0)

    @authenticated
    @defer.inlineCallbacks
    def whoami(self, session, stamp):
        account = yield self.accounts.account(session.account_id)
        return {"username": account.username, "email": account.email, "cash": account.cash,
                "expires": session.expires}

    # --- API keys ---------------------------------------------------------------------------

    @authenticated
    def create_api_key(self, session, stamp, name=None, portfolio=None):
        if session.api_key is not None:
            raise ProviderLoginFailed("an API key cannot make API keys: sign in as yourself")
        return self.accounts.api_keys.create(session, name, portfolio)

    @authenticated
    @defer.inlineCallbacks
    def api_keys(self, session, stamp):
        keys = yield self.accounts.api_keys.list(session)
        return {"keys": keys}

    @authenticated
    @defer.inlineCallbacks
    def revoke_api_key(self, session, stamp, key_id):
        yield self.accounts.api_keys.revoke(session, key_id)
        return {}
