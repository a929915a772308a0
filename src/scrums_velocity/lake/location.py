"""Where the lake lives: a local folder or ``s3://bucket/prefix`` on any S3-compatible store.

Credentials never pass through this project's code: ``deltalake``, ``polars`` and ``obstore`` read
the standard AWS variables (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION``, ``AWS_ENDPOINT_URL``) from the environment themselves. The only option this module
passes is ``AWS_ALLOW_HTTP``, and only for an ``http://`` endpoint that is loopback or explicitly
allowed (as for the API). Error text from the storage libraries goes through :func:`redact`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scrums_velocity.errors import ConfigError

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SECRET_VARS = ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SESSION_TOKEN")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback address: where plain http may go without being allowed."""
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class LakeLocation:
    """A lake's root: ``url`` is an absolute local path or ``s3://bucket/prefix``."""

    url: str
    is_local: bool
    options: Mapping[str, str] = field(default_factory=dict)  # never a credential
    endpoint: str | None = None  # AWS_ENDPOINT_URL, for pyarrow's S3 client
    region: str | None = None

    def __str__(self) -> str:
        return self.url

    def uri(self, name: str) -> str:
        """The URI of a table (or object) under the root."""
        return f"{self.url.rstrip('/')}/{name}"

    @property
    def storage_options(self) -> dict[str, str]:
        return dict(self.options)

    def arrow_filesystem(self, name: str | None = None) -> Any:
        """A pyarrow filesystem rooted at a table, for reading its files natively (C++).

        deltalake's default (a Python-wrapped object store) can abort the interpreter at exit
        after S3 reads ("terminate called without an active exception", measured: 1 in 6
        processes); pyarrow's own S3 client, finalised by pyarrow at exit, does not (0 in 18).
        It reads the AWS credential variables itself.
        """
        import pyarrow.fs as pafs

        root = self.uri(name) if name else self.url
        if self.is_local:
            return pafs.SubTreeFileSystem(root, pafs.LocalFileSystem())
        kwargs: dict[str, Any] = {}
        if self.endpoint:
            ep = urlsplit(self.endpoint)
            kwargs.update(endpoint_override=ep.netloc, scheme=ep.scheme)
        if self.region:
            kwargs["region"] = self.region
        return pafs.SubTreeFileSystem(root.removeprefix("s3://"), pafs.S3FileSystem(**kwargs))

    def store(self) -> Any:
        """An obstore store for the root (for the writer's lease object)."""
        from obstore.store import LocalStore, S3Store

        if self.is_local:
            Path(self.url).mkdir(parents=True, exist_ok=True)
            return LocalStore(self.url)
        parts = urlsplit(self.url)
        allow_http = bool(self.options.get("AWS_ALLOW_HTTP"))
        return S3Store(
            parts.netloc,
            prefix=parts.path.strip("/") or None,
            client_options={"allow_http": allow_http},
        )


# What deltalake cannot address in a local table's path (measured): "[" or "]" makes it panic
# ("Invalid object store url"), and "%" with two hex digits is decoded ("%41" writes to "A").
_UNADDRESSABLE = re.compile(r"[\[\]]|%[0-9A-Fa-f]{2}")


def _local(path: Path) -> LakeLocation:
    text = str(path.absolute())
    bad = _UNADDRESSABLE.search(text)
    if bad:
        raise ConfigError(
            f"the lake's path {text} holds {bad.group(0)!r}, which the Delta library cannot "
            "address: choose a data dir (or --lake) without it"
        )
    return LakeLocation(text, True)


def resolve_location(
    lake: str | Path | None, data_dir: Path, env: Mapping[str, str] | None = None
) -> LakeLocation:
    """``--lake`` / ``lake =`` to a location; the default is ``<data-dir>/lake``."""
    env = os.environ if env is None else env
    if lake is None or str(lake).strip() == "":
        return _local(data_dir / "lake")
    text = str(lake).strip()
    if "://" not in text:
        return _local(Path(text).expanduser())
    parts = urlsplit(text)
    if parts.scheme == "file":
        return _local(Path(parts.path))
    if parts.scheme != "s3":
        raise ConfigError(
            f"unsupported lake URL scheme {parts.scheme!r}: use a local path or s3://bucket/prefix"
        )
    if parts.username or parts.password or "@" in parts.netloc:
        raise ConfigError(
            "the lake URL must not carry credentials: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY in the environment"
        )
    if parts.query or parts.fragment:
        raise ConfigError("the lake URL takes no query or fragment: s3://bucket/prefix")
    bucket = parts.netloc
    if not _BUCKET.match(bucket):
        raise ConfigError(f"{bucket!r} is not a valid S3 bucket name (lake s3://bucket/prefix)")
    prefix = parts.path.strip("/")
    if any(p in ("", ".", "..") for p in prefix.split("/")) and prefix:
        raise ConfigError(f"the lake prefix {prefix!r} has an empty, '.' or '..' segment")
    options: dict[str, str] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname:
            raise ConfigError("AWS_ENDPOINT_URL must be an http(s) URL like https://s3.example.com")
        if ep.scheme == "http":
            if not (is_loopback(ep.hostname) or _truthy(env.get("AWS_ALLOW_HTTP"))):
                raise ConfigError(
                    f"the S3 endpoint {ep.scheme}://{ep.hostname} is plain http and not on "
                    "loopback: use https, or set AWS_ALLOW_HTTP=true to allow it"
                )
            options["AWS_ALLOW_HTTP"] = "true"
    url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    return LakeLocation(url, False, options, endpoint or None, region or None)


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with every credential from the environment replaced by ``***``."""
    env = os.environ if env is None else env
    for var in _SECRET_VARS:
        value = env.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DEBUG_MESSAGE = re.compile(r'\bmessage: "([^"]*)"')


def storage_message(exc: BaseException, limit: int = 300) -> str:
    """A storage library's error in one line, credentials redacted, cut at ``limit`` characters.

    object_store (under deltalake and obstore) chains its causes on further lines, each marked
    ``↳`` (in colour), obstore in a debug dump: "Generic S3 error" alone says nothing, so the
    deepest cause follows it ("Generic S3 error: Connection refused (os error 111)")."""
    text = _ANSI.sub("", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    line = lines[0]
    causes = [c.removeprefix("↳").strip() for c in lines[1:] if c.startswith("↳")]
    # obstore puts the chain in a "Debug source:" dump instead: its innermost message
    causes += _DEBUG_MESSAGE.findall(text.partition("Debug source:")[2])
    if causes and causes[-1] and causes[-1] not in line:
        line = f"{line}: {causes[-1]}"
    line = redact(line)
    return line if len(line) <= limit else line[: limit - 1] + "…"
