"""AWS Signature Version 4 verification of incoming requests (the S3 flavour VAST's tabular API uses).

The official SDK signs with `aws-requests-auth` (region "", service "s3", signed headers
`host;x-amz-date`, payload hash in `x-amz-content-sha256`). The verifier is generic: it rebuilds
the canonical request from whatever headers the client lists in `SignedHeaders`.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
# Requests older or newer than this are refused, as S3 does (RequestTimeTooSkewed).
MAX_SKEW = datetime.timedelta(minutes=15)

_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<cred>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


@dataclass
class AuthError(Exception):
    """A refused request: S3 error code and message, answered with HTTP 403."""

    code: str
    message: str


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """The SigV4 signing key for one day, region and service."""
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def _canonical_query(raw_query: str) -> str:
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    enc = sorted((quote(k, safe="-_.~"), quote(v, safe="-_.~")) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in enc)


def _canonical_uris(raw_path: str) -> set[str]:
    # S3 encodes the decoded path once; aws-requests-auth quotes the path as sent (so an
    # already-encoded '%' is encoded again). Both agree on plain names; accept either.
    return {quote(unquote(raw_path) or "/", safe="/-_.~"), quote(raw_path or "/", safe="/-_.~")}


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    keys: dict[str, str],
    now: datetime.datetime | None = None,
) -> str:
    """Check a request's signature against `keys` (access key -> secret key).

    `headers` must have lower-case names. Returns the access key; raises AuthError.
    """
    auth = headers.get("authorization")
    if not auth:
        raise AuthError("AccessDenied", "Access Denied: the request is not signed")
    m = _AUTH_RE.match(auth.strip())
    if not m:
        raise AuthError("AuthorizationHeaderMalformed", "The authorization header is malformed")
    cred = m.group("cred").split("/")
    if len(cred) != 5 or cred[4] != "aws4_request":
        raise AuthError("AuthorizationHeaderMalformed", "The credential scope is malformed")
    access, date, region, service, _ = cred
    secret = keys.get(access)
    if secret is None:
        raise AuthError("InvalidAccessKeyId", "The access key Id you provided does not exist in our records.")

    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise AuthError("AccessDenied", "x-amz-date is missing or malformed") from None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if abs(now - when) > MAX_SKEW or not amz_date.startswith(date):
        raise AuthError(
            "RequestTimeTooSkewed", "The difference between the request time and the server's time is too large."
        )

    actual_hash = hashlib.sha256(body).hexdigest()
    payload_hash = headers.get("x-amz-content-sha256", actual_hash)
    if payload_hash not in (actual_hash, "UNSIGNED-PAYLOAD"):
        raise AuthError(
            "XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what was computed."
        )

    signed = m.group("signed").split(";")
    if "host" not in signed:
        raise AuthError("AccessDenied", "The host header must be signed")
    canon_headers = "".join(f"{h}:{' '.join(headers.get(h, '').split())}\n" for h in signed)
    key = signing_key(secret, date, region, service)
    scope = f"{date}/{region}/{service}/aws4_request"
    for uri in _canonical_uris(raw_path):
        creq = "\n".join([method, uri, _canonical_query(raw_query), canon_headers, ";".join(signed), payload_hash])
        to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, m.group("sig")):
            return access
    raise AuthError(
        "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
    )
