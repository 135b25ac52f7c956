"""A small OpenID Connect provider for the tests, served by twisted.web on loopback, with its own keys.

It implements discovery, the authorization endpoint (approving at once, as a user who is signed in
would), the token endpoint (checking the client, the code and the PKCE verifier) and the JWKS.  Knobs
make it misbehave the ways a real provider or an attacker could.
"""

import base64
import hashlib
import json
import secrets
import time
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web import resource, server

CLIENT_ID = "papertrader-test"
CLIENT_SECRET = "test-client-secret"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestProvider(resource.Resource):
    __test__ = False  # a provider for the tests, not a test class

    def __init__(self):
        super().__init__()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.issuer = None
        self.kid = "k1"
        self.subject = "user-1234"
        self.email = "grace.hopper@example.com"
        self.codes = {}
        self.issued_nonces = []
        # Knobs:
        self.audience = None  # another audience
        self.expired = False  # an expired token
        self.sign_with_other_key = False  # a bad signature (same key id)
        self.replay_nonce = False  # a token carrying the nonce of an earlier sign-in
        self.isLeaf = True

    async def start(self, reactor):
        self.port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(server.Site(self))
        self.issuer = f"http://127.0.0.1:{self.port.getHost().port}"
        return self.issuer

    def render_GET(self, request):
        path = request.path.decode()
        if path == "/.well-known/openid-configuration":
            return self._json(request, dict(issuer=self.issuer, authorization_endpoint=self.issuer + "/authorize",
                                            token_endpoint=self.issuer + "/token", jwks_uri=self.issuer + "/jwks"))
        if path == "/jwks":
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            return self._json(request, {"keys": [dict(jwk, kid=self.kid, use="sig", alg="RS256")]})
        if path == "/authorize":
            args = {k.decode(): v[0].decode() for k, v in request.args.items()}
            assert args["response_type"] == "code" and args["client_id"] == CLIENT_ID
            assert args["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = dict(args, sub=self.subject, email=self.email)  # who approved it, then
            request.redirect(f"{args['redirect_uri']}?{urlencode(dict(code=code, state=args['state']))}".encode())
            return b""
        request.setResponseCode(404)
        return b"not found"

    def render_POST(self, request):
        args = {k.decode(): v[0].decode() for k, v in request.args.items()}
        flow = self.codes.pop(args.get("code"), None)
        challenge = _b64(hashlib.sha256(args.get("code_verifier", "").encode()).digest())
        if (request.path != b"/token" or flow is None or args.get("client_id") != CLIENT_ID
                or args.get("client_secret") != CLIENT_SECRET or flow["code_challenge"] != challenge
                or flow["redirect_uri"] != args.get("redirect_uri")):
            request.setResponseCode(400)
            return self._json(request, {"error": "invalid_grant"})
        now = int(time.time())
        nonce = self.issued_nonces[0] if (self.replay_nonce and self.issued_nonces) else flow["nonce"]
        self.issued_nonces.append(flow["nonce"])
        claims = dict(iss=self.issuer, aud=self.audience or CLIENT_ID, sub=flow["sub"], email=flow["email"],
                      nonce=nonce, iat=now - (7200 if self.expired else 0),
                      exp=now + (-3600 if self.expired else 3600))
        key = self.other_key if self.sign_with_other_key else self.key
        token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.kid})
        return self._json(request, dict(id_token=token, access_token="unused", token_type="Bearer"))

    @staticmethod
    def _json(request, data):
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(data).encode()
