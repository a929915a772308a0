"""Where the lake lives: local paths and s3:// URLs, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from scrums_velocity.errors import ConfigError
from scrums_velocity.lake import redact, resolve_location
from scrums_velocity.lake.location import storage_message


def test_the_default_is_the_data_dirs_lake_folder(tmp_path):
    loc = resolve_location(None, tmp_path)
    assert (loc.url, loc.is_local, loc.storage_options) == (str(tmp_path / "lake"), True, {})


def test_local_paths_and_file_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_location("shared/lake", Path("data")).url == str(tmp_path / "shared" / "lake")
    assert resolve_location("file:///srv/lake", Path("data")).url == "/srv/lake"


@pytest.mark.parametrize(
    ("env", "options"),
    [
        ({}, {}),
        ({"AWS_ENDPOINT_URL": "https://s3.example.com"}, {}),
        ({"AWS_ENDPOINT_URL": "http://127.0.0.1:9000"}, {"AWS_ALLOW_HTTP": "true"}),
        ({"AWS_ENDPOINT_URL": "http://localhost:9000"}, {"AWS_ALLOW_HTTP": "true"}),
        (
            {"AWS_ENDPOINT_URL": "http://minio.internal:9000", "AWS_ALLOW_HTTP": "true"},
            {"AWS_ALLOW_HTTP": "true"},
        ),
    ],
)
def test_s3_urls_and_the_http_policy(tmp_path, env, options):
    loc = resolve_location("s3://my-bucket/velocity/lake/", tmp_path, env)
    assert (loc.url, loc.is_local, loc.storage_options) == (
        "s3://my-bucket/velocity/lake",
        False,
        options,
    )
    assert loc.uri("tasks") == "s3://my-bucket/velocity/lake/tasks"


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("gs://bucket/lake", {}, "unsupported lake URL scheme 'gs'"),
        ("s3://AKIA:secret@bucket/lake", {}, "the lake URL must not carry credentials"),
        ("s3://Bad_Bucket/lake", {}, "'Bad_Bucket' is not a valid S3 bucket name"),
        ("s3://bucket/a/../b", {}, "has an empty, '.' or '..' segment"),
        ("s3://bucket/lake?x=1", {}, "the lake URL takes no query or fragment"),
        (
            "s3://bucket/lake",
            {"AWS_ENDPOINT_URL": "http://s3.example.com"},
            "the S3 endpoint http://s3.example.com is plain http and not on loopback",
        ),
        ("s3://bucket/lake", {"AWS_ENDPOINT_URL": "ftp://x"}, "AWS_ENDPOINT_URL must be an"),
    ],
)
def test_refused(tmp_path, url, env, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace(".", r"\.")):
        resolve_location(url, tmp_path, env)


def test_redact_hides_credentials_from_the_environment():
    env = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "AWS_ACCESS_KEY_ID": "AKIA123"}
    assert redact("denied for AKIA123 with s3cr3t-value", env) == "denied for *** with ***"


# What deltalake (object_store's chain, coloured) and obstore (a debug dump) raise when the S3
# endpoint refuses connections, as captured from both libraries.
DELTA_REFUSED = (
    "Generic S3 error\n          \x1b[31m↳\x1b[0m Error performing list request\n"
    "           \x1b[31m↳\x1b[0m Error performing GET http://127.0.0.1:9/bucket?list-type=2 in "
    "3.68s, after 10 retries, max_retries\n            \x1b[31m↳\x1b[0m 10, retry_timeout\n"
    "             \x1b[31m↳\x1b[0m 180s  - HTTP error\n"
    "              \x1b[31m↳\x1b[0m error sending request\n"
    "                \x1b[31m↳\x1b[0m tcp connect error\n"
    "                 \x1b[31m↳\x1b[0m Connection refused (os error 111)\n"
)
OBSTORE_REFUSED = (
    "Generic S3 error: Error performing PUT http://127.0.0.1:9/bucket/a in 1.92s, after 10 "
    "retries - HTTP error: error sending request\n\nDebug source:\nGeneric {\n    store: "
    '"S3",\n    source: ConnectError(\n        "tcp connect error",\n        Os {\n'
    '            code: 111,\n            message: "Connection refused",\n        },\n    ),\n}'
)


@pytest.mark.parametrize(
    ("raised", "line"),
    [
        (DELTA_REFUSED, "Generic S3 error: Connection refused (os error 111)"),
        (
            OBSTORE_REFUSED,
            "Generic S3 error: Error performing PUT http://127.0.0.1:9/bucket/a in 1.92s, after 10 "
            "retries - HTTP error: error sending request: Connection refused",
        ),
        ("Access denied for AKIA1234\nmore detail", "Access denied for ***"),
        ("", "OSError"),
    ],
)
def test_a_storage_error_is_one_line_with_its_deepest_cause(raised, line, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA1234")
    assert storage_message(OSError(raised)) == line
    assert len(storage_message(OSError("x" * 1000))) == 300
