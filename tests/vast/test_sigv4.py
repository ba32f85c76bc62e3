"""The twin's SigV4 verifier against AWS's published S3 example ("GET Object", Signature Version 4
documentation), so it is checked by more than the SDK's own signer."""

import datetime

import pytest
from vasttwin import sigv4

KEYS = {"AKIAIOSFODNN7EXAMPLE": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
NOW = datetime.datetime(2013, 5, 24, 0, 1, tzinfo=datetime.timezone.utc)


def headers(signature: str) -> dict[str, str]:
    return {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        f"SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature={signature}",
    }


GOOD = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_aws_example_verifies():
    assert sigv4.verify("GET", "/test.txt", "", headers(GOOD), b"", KEYS, now=NOW) == "AKIAIOSFODNN7EXAMPLE"


@pytest.mark.parametrize(
    "change, code",
    [
        (lambda h: h.update(range="bytes=0-10"), "SignatureDoesNotMatch"),
        (lambda h: h.update(authorization=h["authorization"].replace("AKIA", "AKIB")), "InvalidAccessKeyId"),
        (lambda h: h.pop("authorization"), "AccessDenied"),
    ],
)
def test_tampered_requests_are_refused(change, code):
    h = headers(GOOD)
    change(h)
    with pytest.raises(sigv4.AuthError) as e:
        sigv4.verify("GET", "/test.txt", "", h, b"", KEYS, now=NOW)
    assert e.value.code == code


def test_body_must_match_its_hash_and_time_its_date():
    with pytest.raises(sigv4.AuthError, match="x-amz-content-sha256"):
        sigv4.verify("GET", "/test.txt", "", headers(GOOD), b"x", KEYS, now=NOW)
    with pytest.raises(sigv4.AuthError) as e:
        sigv4.verify("GET", "/test.txt", "", headers(GOOD), b"", KEYS, now=NOW + datetime.timedelta(hours=1))
    assert e.value.code == "RequestTimeTooSkewed"
