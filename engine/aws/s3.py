"""Content-addressed blobs in an S3 bucket: the :class:`engine.blobs.BlobStore` for large state values."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from engine.blobs import blob_key
from engine.errors import NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3BlobStore:
    """Blobs as objects named by their SHA-256 (``sha256/<hex>``) in ``bucket``.

    Objects never change once written, so a lifecycle rule that deletes them must
    not remove one a live run still refers to.
    """

    def __init__(self, client: S3Client, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def put(self, data: bytes) -> str:
        key = blob_key(data)
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise NotFoundError(f"no blob {key!r} in bucket {self.bucket}", key=key) from None
            raise
