"""Assets in an S3-compatible bucket (Cloudflare R2, AWS S3, MinIO, moto) through one boto3 client.

Every blocking boto3 call runs in a worker thread (`asyncio.to_thread`); presigning is local
HMAC work and runs directly on the event loop. R2 rules honoured here: SigV4, checksums only
when required, no ACL headers, presigned URLs valid for at most seven days.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from storage.base import StorageError
from storage.keys import join_url, validate_key
from storage.settings import StorageSettings

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PRESIGN_SECONDS = 1
MAX_PRESIGN_SECONDS = 604800  # 7 days: the longest expiry R2 (and SigV4) accept
MAX_BACKOFF_SECONDS = 30.0
URL_CACHE_SIZE = 4096
CACHE_CONTROL = "public, max-age=31536000, immutable"

# Errors an operator has to fix; retrying the upload cannot help.
_FATAL_CODES = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidBucketName",
        "Unauthorized",
    }
)
_CREDENTIAL_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Unauthorized", "Forbidden"}
)
_UNREACHABLE = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def clamp_expires_in(seconds: float) -> int:
    """A presign lifetime clamped to what R2 accepts: whole seconds in [1, 604800].

    boto3 signs any value (an 8-day URL is signed happily), but R2 rejects URLs valid for
    more than seven days, so the clamp has to live in our code.
    """
    return max(MIN_PRESIGN_SECONDS, min(MAX_PRESIGN_SECONDS, int(seconds)))


def backoff_delay(base_seconds: float, retry: int) -> float:
    """Seconds to wait before retry number `retry` (0-based): `base * 2**retry`, capped at 30 s."""
    return min(MAX_BACKOFF_SECONDS, max(0.0, base_seconds) * (2**retry))


def _error_code(exc: BaseException) -> str | None:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def _http_status(exc: BaseException) -> int | None:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


class S3Store:
    """An `AssetStore` backed by an S3-compatible bucket.

    One low-level boto3 client is shared by all calls (botocore clients are thread-safe).
    Uploads stream from disk with s3transfer (multipart above 8 MiB, equal 8 MiB parts as R2
    requires) and are retried as a whole with exponential backoff. The source file is never
    deleted here; the caller owns it.
    """

    def __init__(self, settings: StorageSettings) -> None:
        if not settings.bucket:
            raise StorageError("storage.bucket is not set; set R2_BUCKET_NAME for the s3 backend")
        self.settings = settings
        self.bucket: str = settings.bucket
        self.endpoint_url = settings.endpoint_url
        self.ttl = clamp_expires_in(settings.signed_url_ttl)
        self._secrets = tuple(s for s in (settings.access_key_id, settings.secret_access_key) if s)
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
        )
        session = boto3.session.Session()
        self._client: Any = session.client(
            "s3",
            endpoint_url=settings.endpoint_url,
            region_name=settings.region or "auto",
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            config=config,
        )
        self._transfer = TransferConfig(
            multipart_threshold=8 * MiB,
            multipart_chunksize=8 * MiB,
            max_concurrency=4,
        )
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._urls_lock = threading.Lock()
        self._closed = False

    # -- helpers -------------------------------------------------------------------------

    def _where(self) -> str:
        return self.endpoint_url or "the default AWS S3 endpoint"

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _describe(self, exc: BaseException) -> str:
        code = _error_code(exc)
        if code is not None and isinstance(exc, ClientError):
            message = exc.response.get("Error", {}).get("Message") or ""
            text = f"{code}: {message}".rstrip(": ")
        else:
            text = f"{type(exc).__name__}: {exc}"
        return self._redact(text)

    def _explain(self, exc: BaseException) -> str:
        """A plain sentence saying what is wrong and what to fix."""
        code = _error_code(exc)
        status = _http_status(exc)
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return (
                "no storage credentials were found; set R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY"
            )
        if isinstance(exc, _UNREACHABLE):
            return (
                f"storage endpoint {self._where()} is unreachable ({type(exc).__name__}); "
                "check S3_ENDPOINT_URL / R2_ACCOUNT_ID and the network"
            )
        if code == "NoSuchBucket":
            return (
                f"bucket {self.bucket!r} does not exist at {self._where()}; "
                "create it or fix R2_BUCKET_NAME"
            )
        if code in _CREDENTIAL_CODES or status in (401, 403):
            return (
                f"storage credentials were rejected by {self._where()} ({code or status}); "
                "check R2_ACCESS_KEY_ID / R2_SECRET_ACCESS_KEY and that the token may read and "
                f"write bucket {self.bucket!r}"
            )
        return f"storage bucket {self.bucket!r} at {self._where()} failed: {self._describe(exc)}"

    # -- uploads -------------------------------------------------------------------------

    def _upload_once(self, key: str, source: Path, content_type: str) -> int:
        size = source.stat().st_size
        # By path, not by file object: s3transfer then reads each part from disk when it is
        # sent, instead of buffering up to ten 8 MiB parts in memory (measured: 12 MB vs
        # 99 MB of RSS growth for a 200 MB clip).
        self._client.upload_file(
            str(source),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "CacheControl": CACHE_CONTROL},
            Config=self._transfer,
        )
        return size

    async def put_file(self, key: str, source: Path, content_type: str) -> int:
        """Upload `source` under `key`, retrying the whole upload with backoff; return its size.

        Raises StorageError (no credentials in the message) when the source cannot be read,
        when the store rejects the upload for a reason retries cannot fix, or after the last
        of `upload_attempts` attempts. The source file is left in place either way.
        """
        validate_key(key)
        source = Path(source)
        if not await asyncio.to_thread(source.is_file):
            raise StorageError(f"cannot upload {key!r}: source file {source} does not exist")
        attempts = max(1, self.settings.upload_attempts)
        for attempt in range(1, attempts + 1):
            try:
                size = await asyncio.to_thread(self._upload_once, key, source, content_type)
            except FileNotFoundError as exc:
                raise StorageError(
                    f"cannot upload {key!r}: source file {source} disappeared"
                ) from exc
            except (BotoCoreError, ClientError, S3UploadFailedError, OSError) as exc:
                reason = self._describe(exc)
                if _error_code(exc) in _FATAL_CODES or isinstance(
                    exc, (NoCredentialsError, PartialCredentialsError)
                ):
                    log.error("s3 upload rejected key=%s reason=%s", key, reason)
                    raise StorageError(
                        f"upload of {key!r} was rejected: {self._explain(exc)}"
                    ) from exc
                if attempt == attempts:
                    log.error(
                        "s3 upload failed key=%s attempts=%d reason=%s", key, attempts, reason
                    )
                    raise StorageError(
                        f"upload of {key!r} to bucket {self.bucket!r} failed after "
                        f"{attempts} attempts: {reason}"
                    ) from exc
                delay = backoff_delay(self.settings.upload_backoff_seconds, attempt - 1)
                log.warning(
                    "s3 upload attempt %d/%d failed key=%s reason=%s; retrying in %.2fs",
                    attempt,
                    attempts,
                    key,
                    reason,
                    delay,
                )
                await asyncio.sleep(delay)
            else:
                log.info("s3 uploaded key=%s bytes=%d attempts=%d", key, size, attempt)
                return size
        raise AssertionError("unreachable")  # pragma: no cover

    # -- URLs ----------------------------------------------------------------------------

    def _presign(self, key: str) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.ttl,
        )
        return url

    def url_for(self, key: str) -> str | None:
        """A public URL (`public_base_url` set and `signed_urls` off) or a presigned GET.

        Presigned URLs are cached per key and reused until half their lifetime has passed,
        so repeated views of the same clip get the same URL.
        """
        validate_key(key)
        if self.settings.public_base_url and not self.settings.signed_urls:
            return join_url(self.settings.public_base_url, key)
        now = time.monotonic()
        with self._urls_lock:
            cached = self._urls.get(key)
            if cached is not None and now - cached[1] < self.ttl / 2:
                self._urls.move_to_end(key)
                return cached[0]
        url = self._presign(key)
        with self._urls_lock:
            self._urls[key] = (url, now)
            self._urls.move_to_end(key)
            while len(self._urls) > URL_CACHE_SIZE:
                self._urls.popitem(last=False)
        return url

    # -- reads and deletes ---------------------------------------------------------------

    def _get_bytes(self, key: str) -> bytes:
        response = self._client.get_object(Bucket=self.bucket, Key=key)
        body = response["Body"]
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    async def open_bytes(self, key: str) -> bytes:
        validate_key(key)
        try:
            return await asyncio.to_thread(self._get_bytes, key)
        except ClientError as exc:
            if _error_code(exc) in ("NoSuchKey", "404") or _http_status(exc) == 404:
                raise StorageError(
                    f"asset {key!r} does not exist in bucket {self.bucket!r}"
                ) from exc
            raise StorageError(f"could not read asset {key!r}: {self._describe(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not read asset {key!r}: {self._describe(exc)}") from exc

    async def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _http_status(exc) == 404 or _error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"could not look up asset {key!r}: {self._describe(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"could not look up asset {key!r}: {self._describe(exc)}") from exc
        return True

    async def delete(self, key: str) -> None:
        """Delete `key`; deleting a missing key is not an error."""
        validate_key(key)
        with self._urls_lock:
            self._urls.pop(key, None)
        try:
            await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"could not delete asset {key!r}: {self._describe(exc)}") from exc
        log.info("s3 deleted key=%s", key)

    # -- health and lifecycle ------------------------------------------------------------

    def _probe(self, key: str) -> None:
        payload = b"shared-world storage probe"
        self._client.put_object(Bucket=self.bucket, Key=key, Body=payload, ContentType="text/plain")
        head = self._client.head_object(Bucket=self.bucket, Key=key)
        if int(head.get("ContentLength", -1)) != len(payload):
            raise StorageError(
                f"bucket {self.bucket!r} at {self._where()} stored the probe object with the "
                "wrong size; check that the endpoint is really S3-compatible"
            )
        self._client.delete_object(Bucket=self.bucket, Key=key)

    async def check(self) -> None:
        """Write, read back and delete a probe object, then make a URL for it.

        Raises StorageError with a plain message naming the fix: bucket missing, credentials
        rejected or endpoint unreachable.
        """
        key = f"_healthcheck/{uuid.uuid4().hex}.txt"
        try:
            await asyncio.to_thread(self._probe, key)
        except (BotoCoreError, ClientError) as exc:
            message = self._explain(exc)
            log.error("s3 check failed bucket=%s reason=%s", self.bucket, message)
            raise StorageError(message) from exc
        try:
            if self.settings.public_base_url and not self.settings.signed_urls:
                url = join_url(self.settings.public_base_url, key)
            else:
                url = self._presign(key)
        except BotoCoreError as exc:
            raise StorageError(f"could not make a URL for bucket {self.bucket!r}: {exc}") from exc
        mode = "presigned" if "X-Amz-Signature=" in url else "public"
        log.info(
            "s3 check ok endpoint=%s bucket=%s urls=%s ttl=%ds",
            self._where(),
            self.bucket,
            mode,
            self.ttl,
        )

    async def close(self) -> None:
        """Close the shared client's connection pool (safe to call twice)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._client.close)
