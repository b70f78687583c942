"""Whole-object access to one S3 bucket under a prefix, with errors that say what to fix.

Shared by the S3 landing zone, IO managers and model store. An S3 PUT is atomic: readers see the
old object or the new one, never a partial one, so no temp-and-rename is needed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from ml_platform.errors import StorageAccessError, StorageUnavailableError

_DENIED = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken", "ExpiredToken"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


_CLIENTS: dict[tuple, Any] = {}
_CLIENTS_LOCK = threading.Lock()


def client_for(resource: Any) -> Any:
    """One boto3 client per S3Resource configuration (clients are thread-safe and costly to build)."""
    key = tuple(sorted((k, repr(v)) for k, v in resource.__dict__.items() if not k.startswith("_")))
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            _CLIENTS[key] = resource.get_client()
        return _CLIENTS[key]


class PreconditionFailed(Exception):
    """A conditional PUT found the object in another state."""


@dataclass(frozen=True)
class S3Object:
    key: str  # relative to the prefix
    size: int
    etag: str
    modified: float


class S3Bucket:
    """A bucket and prefix seen through one boto3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def uri(self, relative: str) -> str:
        return f"s3://{self.bucket}/{self.key(relative)}"

    def _call(self, relative: str, fn, **kwargs):
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _MISSING:
                raise FileNotFoundError(self.uri(relative)) from None
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409"):
                raise PreconditionFailed(self.uri(relative)) from None
            if code in _DENIED:
                raise StorageAccessError(
                    f"S3 refused access to {self.uri(relative)} ({code}): check the credentials"
                    " (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS profile) and permissions"
                ) from exc
            if code == "NoSuchBucket":
                raise StorageAccessError(
                    f"bucket {self.bucket!r} does not exist at {self.client.meta.endpoint_url}"
                ) from exc
            if code.startswith("5") or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
                raise StorageUnavailableError(f"S3 error {code} on {self.uri(relative)}") from exc
            message = error.get("Message")
            raise StorageAccessError(f"S3 error {code} on {self.uri(relative)}: {message}") from exc
        except NoCredentialsError as exc:
            raise StorageAccessError(
                f"no AWS credentials for {self.uri(relative)}: set AWS_ACCESS_KEY_ID and"
                " AWS_SECRET_ACCESS_KEY, or an AWS profile"
            ) from exc
        except (EndpointConnectionError, ConnectionClosedError, ReadTimeoutError) as exc:
            raise StorageUnavailableError(
                f"cannot reach S3 at {self.client.meta.endpoint_url} for {self.uri(relative)}: {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise StorageUnavailableError(f"S3 request for {self.uri(relative)} failed: {exc}") from exc

    def put(self, relative: str, data: bytes, **conditions: str) -> None:
        """One atomic PUT; ``IfMatch`` / ``IfNoneMatch`` make it conditional."""
        self._call(relative, self.client.put_object, Key=self.key(relative), Body=data, **conditions)

    def get(self, relative: str) -> bytes:
        response = self._call(relative, self.client.get_object, Key=self.key(relative))
        return response["Body"].read()

    def delete(self, relatives: list[str]) -> None:
        """Delete objects, a thousand per request (S3's DeleteObjects limit); a key that is not there
        is no error."""
        for start in range(0, len(relatives), 1000):
            batch = relatives[start : start + 1000]
            objects = [{"Key": self.key(r)} for r in batch]
            answer = self._call(batch[0], self.client.delete_objects, Delete={"Objects": objects, "Quiet": True})
            failed = answer.get("Errors") or []
            if failed:
                first = failed[0]
                raise StorageAccessError(
                    f"S3 could not delete {len(failed)} object(s) under {self.uri(batch[0])}: {first.get('Key')}:"
                    f" {first.get('Code')} {first.get('Message')}"
                )

    def head(self, relative: str) -> S3Object | None:
        try:
            response = self._call(relative, self.client.head_object, Key=self.key(relative))
        except FileNotFoundError:
            return None
        return S3Object(
            key=relative,
            size=int(response["ContentLength"]),
            etag=response["ETag"].strip('"'),
            modified=response["LastModified"].timestamp(),
        )

    def _pages(self, relative: str, **kwargs) -> Iterator[dict]:
        prefix = self.key(relative)
        token = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call(relative, self.client.list_objects_v2, Prefix=prefix, **kwargs, **extra)
            yield page
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def children(self, relative: str) -> list[str]:
        """Names directly under ``relative`` (a folder-like prefix), like a directory listing."""
        folder = relative.rstrip("/") + "/" if relative else ""
        names = set()
        base = len(self.key(folder))
        for page in self._pages(folder, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                names.add(common["Prefix"][base:].rstrip("/"))
            for item in page.get("Contents", []):
                names.add(item["Key"][base:])
        return sorted(n for n in names if n)

    def objects(self, relative: str) -> list[S3Object]:
        """Every object under ``relative`` (recursively), with size, ETag and modification time."""
        folder = relative.rstrip("/") + "/" if relative else ""
        strip = len(self.prefix) + 1 if self.prefix else 0
        found = []
        for page in self._pages(folder):
            for item in page.get("Contents", []):
                found.append(
                    S3Object(
                        key=item["Key"][strip:],
                        size=int(item["Size"]),
                        etag=item["ETag"].strip('"'),
                        modified=item["LastModified"].timestamp(),
                    )
                )
        return found
