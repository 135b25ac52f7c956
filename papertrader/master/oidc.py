"""Sign-in with an OpenID Connect provider (Google by default): authorization code flow with PKCE.

The master alone talks to the provider.  ``start`` makes a single-use state,
nonce and PKCE verifier and returns the authorization URL for the client to
open; ``finish`` exchanges the code at the token endpoint (treq) and validates
the ID token fully with PyJWT: signature against the provider's JWKS (cached,
fetched again when a token names an unknown key id), issuer, audience, expiry
and the nonce of this very flow (a nonce is accepted once).
"""

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import jwt
import treq
from twisted.internet import defer

from papertrader.errors import ProviderLoginFailed

FLOW_TTL = 600  # seconds a started sign-in may take
#: Sign-ins one client address may have in progress (a flood from one address held everyone's off; a class behind
#: one school address signs in together, and an abandoned sign-in counts for FLOW_TTL), and in all.
FLOWS_PER_ADDRESS = 200
MAX_FLOWS = 10_000
LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Identity:
    issuer: str
    subject: str
    email: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check_redirect(uri, allowed=()):
    """The address the provider sends the person back to: the command line's own listener (http on
    loopback, any port), a website on loopback, or a website the operator listed (``oidc_redirect_uris``)."""
    if uri in allowed:
        return
    parts = urlsplit(uri)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK or len(uri) > 200:
        raise ProviderLoginFailed("the redirect address must be http on loopback (the client's own listener) or one"
                                  " of the websites' addresses in oidc_redirect_uris")


class Provider:
    def __init__(self, name, issuer, client_id, client_secret, clock, log, http=treq, redirect_uris=()):
        if not issuer or not client_id:
            raise ValueError("an OpenID provider needs oidc_issuer and oidc_client_id")
        parts = urlsplit(issuer)
        if parts.scheme != "https" and parts.hostname not in LOOPBACK:
            raise ValueError("oidc_issuer must be an https URL")
        self.name = name
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = tuple(redirect_uris)
        self.clock = clock
        self.log = log
        self.http = http
        self._config = None
        self._keys = {}
        self._flows = {}
        self._used_nonces = {}

    @defer.inlineCallbacks
    def _get_json(self, url, **kwargs):
        response = yield self.http.get(url, timeout=15, **kwargs)
        if response.code != 200:
            raise ProviderLoginFailed(f"the provider answered {response.code} for {url}")
        body = yield response.content()
        return json.loads(body)

    @defer.inlineCallbacks
    def configuration(self):
        if self._config is None:
            config = yield self._get_json(self.issuer + "/.well-known/openid-configuration")
            if config.get("issuer", "").rstrip("/") != self.issuer:
                raise ProviderLoginFailed("the provider's configuration names another issuer")
            self._config = config
        return self._config

    @defer.inlineCallbacks
    def _key(self, kid):
        if kid not in self._keys:
            config = yield self.configuration()
            jwks = yield self._get_json(config["jwks_uri"])
            self._keys = {k.key_id: k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id}
        if kid not in self._keys:
            raise ProviderLoginFailed("the ID token is signed with a key the provider does not publish")
        return self._keys[kid]

    def _expire(self):
        now = self.clock.seconds()
        for table in (self._flows, self._used_nonces):
            for key in [k for k, v in table.items() if v["expires"] <= now]:
                del table[key]

    @defer.inlineCallbacks
    def start(self, redirect_uri, address="unknown"):
        """A new sign-in from ``address`` (the client's): fires with (authorization URL, state, secret).  The
        state travels through the browser (and may be seen: an access log, a history); the secret stays with
        whoever started it, and only it finishes the sign-in."""
        _check_redirect(redirect_uri, self.redirect_uris)
        self._expire()
        if sum(flow["address"] == address for flow in self._flows.values()) >= FLOWS_PER_ADDRESS:
            raise ProviderLoginFailed(f"too many sign-ins in progress from your address (at most {FLOWS_PER_ADDRESS}"
                                      f" in {FLOW_TTL // 60} minutes); finish one, or try again in a few minutes")
        if len(self._flows) > MAX_FLOWS:
            raise ProviderLoginFailed("too many sign-ins in progress; try again in a few minutes")
        config = yield self.configuration()
        state, nonce, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        secret = secrets.token_urlsafe(24)
        self._flows[state] = dict(nonce=nonce, verifier=verifier, redirect_uri=redirect_uri, address=address,
                                  secret=hashlib.sha256(secret.encode()).digest(),
                                  expires=self.clock.seconds() + FLOW_TTL)
        query = urlencode(dict(response_type="code", client_id=self.client_id, redirect_uri=redirect_uri,
                               scope="openid email", state=state, nonce=nonce,
                               code_challenge=_b64(hashlib.sha256(verifier.encode()).digest()),
                               code_challenge_method="S256"))
        return f"{config['authorization_endpoint']}?{query}", state, secret

    @defer.inlineCallbacks
    def finish(self, state, code, secret):
        """Exchange the code and validate the ID token; fires with the Identity.  Only with the flow's secret
        (a state and code read from a log or a stolen callback finish nothing)."""
        self._expire()
        flow = self._flows.get(state)
        if flow is None or not secrets.compare_digest(hashlib.sha256((secret or "").encode()).digest(),
                                                      flow["secret"]):
            raise ProviderLoginFailed("this sign-in is unknown or has expired; start again")
        del self._flows[state]  # single use
        config = yield self.configuration()
        response = yield self.http.post(config["token_endpoint"], timeout=15, data=dict(
            grant_type="authorization_code", code=code, redirect_uri=flow["redirect_uri"],
            client_id=self.client_id, client_secret=self.client_secret, code_verifier=flow["verifier"]))
        body = yield response.content()
        if response.code != 200:
            raise ProviderLoginFailed(f"the provider refused the code ({response.code})")
        try:
            id_token = json.loads(body)["id_token"]
            kid = jwt.get_unverified_header(id_token).get("kid")
        except (ValueError, KeyError, TypeError, jwt.PyJWTError):
            raise ProviderLoginFailed("the provider's answer holds no valid ID token")
        key = yield self._key(kid)
        try:
            claims = jwt.decode(
                id_token, key.key, algorithms=["RS256", "ES256"], audience=self.client_id, issuer=self.issuer,
                options={"require": ["iss", "aud", "exp", "iat", "sub", "nonce"]},
                leeway=60)
        except jwt.ExpiredSignatureError:
            raise ProviderLoginFailed("the ID token has expired")
        except jwt.InvalidAudienceError:
            raise ProviderLoginFailed("the ID token was issued to another application")
        except jwt.InvalidIssuerError:
            raise ProviderLoginFailed("the ID token was issued by another provider")
        except jwt.PyJWTError as e:
            raise ProviderLoginFailed(f"the ID token is not valid ({type(e).__name__})")
        if not secrets.compare_digest(str(claims["nonce"]), flow["nonce"]) or claims["nonce"] in self._used_nonces:
            raise ProviderLoginFailed("the ID token does not belong to this sign-in (nonce)")
        self._used_nonces[claims["nonce"]] = dict(expires=self.clock.seconds() + FLOW_TTL * 2)
        return Identity(self.issuer, str(claims["sub"])[:255], str(claims.get("email", ""))[:254])
