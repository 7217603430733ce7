"""A provider API on loopback that checks the credentials it receives, for the
tests of the auth types without OAuth (Rust tests and the browser suite).

Started as `python3 upstream.py CONFIG_JSON`; prints `listening http://127.0.0.1:PORT`
on its first line. CONFIG_JSON: {"accounts": [account, ...]}, where an account is
{"answer": {...}, and either "checks": [{"in": "header"|"query", "name", "value"}]
(all must match exactly) or "aws": {access_key_id, secret_access_key, region,
service} (the request's SigV4 signature is recomputed with botocore, the
independent signer, and must be identical)}.

A request one account accepts gets 200 and that account's answer as JSON. Any
other gets 401 with a body that repeats every header and the query it received,
as careless APIs do: what Plugboard shows of it must have the credentials
removed. `GET /_seen` answers how many requests arrived, by path.
"""

import datetime
import json
import sys
import threading
import types
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONFIG = json.loads(sys.argv[1])
SEEN = {}
LOCK = threading.Lock()


def aws_matches(account, method, path, headers, body):
    import botocore.auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    given = headers.get("authorization", "")
    if not given.startswith("AWS4-HMAC-SHA256 ") or "SignedHeaders=" not in given:
        return False
    signed = given.split("SignedHeaders=")[1].split(",")[0].strip().split(";")
    stamp = headers.get("x-amz-date", "")
    try:
        at = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return False
    botocore.auth.get_current_datetime = lambda *args, **kwargs: at
    host = headers.get("host", "")
    kept = {name: headers[name] for name in signed if name in headers and name != "host"}
    kept.pop("x-amz-date", None)
    request = AWSRequest(method=method, url=f"http://{host}{path}", data=body, headers=kept)
    aws = account["aws"]
    unsigned = headers.get("x-amz-content-sha256") == "UNSIGNED-PAYLOAD"
    if unsigned:
        request.context["payload_signing_enabled"] = False
        request.context["client_config"] = types.SimpleNamespace(
            s3={"payload_signing_enabled": False}
        )
    credentials = Credentials(aws["access_key_id"], aws["secret_access_key"])
    s3 = aws["service"] == "s3"
    cls = botocore.auth.S3SigV4Auth if s3 else botocore.auth.SigV4Auth
    cls(credentials, aws["service"], aws["region"]).add_auth(request)
    return request.headers.get("Authorization") == given


def accepts(account, method, path, headers, body):
    if "aws" in account:
        return aws_matches(account, method, path, headers, body)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query, keep_blank_values=True)
    for check in account["checks"]:
        if check["in"] == "header":
            if headers.get(check["name"].lower()) != check["value"]:
                return False
        elif query.get(check["name"]) != [check["value"]]:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        bare = urllib.parse.urlsplit(self.path).path
        if bare == "/_seen":
            with LOCK:
                return self.answer(200, SEEN)
        with LOCK:
            SEEN[bare] = SEEN.get(bare, 0) + 1
        headers = {k.lower(): v for k, v in self.headers.items()}
        for account in CONFIG["accounts"]:
            if accepts(account, self.command, self.path, headers, body):
                return self.answer(200, account["answer"])
        self.answer(
            401,
            {"error": "invalid credentials", "received": {"headers": headers, "path": self.path}},
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def do_HEAD(self):
        self.send_response(405)
        self.send_header("content-length", "0")
        self.end_headers()


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
