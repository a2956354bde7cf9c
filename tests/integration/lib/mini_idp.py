#!/usr/bin/env python3
"""A minimal OpenID provider for shell tests, written from the specs (OIDC Discovery,
RFC 7517 JWKS, RFC 7515/7518 ES256, RFC 9068 access tokens), independent of airlock's C:
it publishes a discovery document and a one-key JWKS on loopback and mints ES256 access
tokens with a groups claim, so a script can act as users of each role.

  mini_idp.py serve DIR   key in DIR/key.pem, prints nothing, writes DIR/port when up
  mini_idp.py token DIR SUB [GROUP...]   prints a token for that user (audience airlock)
"""
import base64
import http.server
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def issuer(d):
    with open(os.path.join(d, "port")) as f:
        return "http://127.0.0.1:%s" % f.read().strip()


def serve(d):
    key = ec.generate_private_key(ec.SECP256R1())
    with open(os.path.join(d, "key.pem"), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    nums = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
                      "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big"))}]}
    srv = None

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            iss = "http://127.0.0.1:%d" % srv.server_port
            if self.path == "/.well-known/openid-configuration":
                body = {"issuer": iss, "jwks_uri": iss + "/jwks.json"}
            elif self.path == "/jwks.json":
                body = jwks
            else:
                self.send_error(404)
                return
            out = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    tmp = os.path.join(d, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(srv.server_port))
    os.rename(tmp, os.path.join(d, "port"))
    srv.serve_forever()


def token(d, sub, groups):
    with open(os.path.join(d, "key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    now = int(time.time())
    head = {"alg": "ES256", "typ": "at+jwt", "kid": "k1"}
    claims = {"iss": issuer(d), "sub": sub, "aud": "airlock", "iat": now, "exp": now + 600,
              "groups": groups}
    signing = (b64u(json.dumps(head).encode()) + "." + b64u(json.dumps(claims).encode())).encode()
    r, s = decode_dss_signature(key.sign(signing, ec.ECDSA(hashes.SHA256())))
    print(signing.decode() + "." + b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big")))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        token(sys.argv[2], sys.argv[3], sys.argv[4:])
