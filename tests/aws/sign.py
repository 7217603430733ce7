"""botocore's SigV4 signatures for the cases on stdin, for tests/sigv4.rs.

Each case: {mode: "header"|"presign", method, url, headers: [[name, value]],
body_b64 | null (unsigned), access_key_id, secret_access_key, session_token?,
region, service, time (YYYYmmddTHHMMSSZ), expires?}. Prints, for each, the
request as botocore signed it: {authorization, headers, url}.
"""

import base64
import datetime
import json
import sys
import types

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def sign(case):
    at = datetime.datetime.strptime(case["time"], "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *args, **kwargs: at
    body = base64.b64decode(case["body_b64"]) if case["body_b64"] is not None else b""
    request = AWSRequest(
        method=case["method"], url=case["url"], data=body, headers=dict(case["headers"])
    )
    if case["body_b64"] is None:
        request.context["payload_signing_enabled"] = False
        request.context["client_config"] = types.SimpleNamespace(
            s3={"payload_signing_enabled": False}
        )
    credentials = Credentials(
        case["access_key_id"], case["secret_access_key"], case.get("session_token")
    )
    s3 = case["service"] == "s3"
    if case["mode"] == "presign":
        cls = botocore.auth.S3SigV4QueryAuth if s3 else botocore.auth.SigV4QueryAuth
        signer = cls(credentials, case["service"], case["region"], expires=case["expires"])
    else:
        cls = botocore.auth.S3SigV4Auth if s3 else botocore.auth.SigV4Auth
        signer = cls(credentials, case["service"], case["region"])
    signer.add_auth(request)
    return {
        "authorization": request.headers.get("Authorization"),
        "headers": {k.lower(): v for k, v in request.headers.items()},
        "url": request.url,
    }


print(json.dumps([sign(case) for case in json.load(sys.stdin)]))
