"""Where drift reports live: `<storage.reports_root>/<use case>/drift/<date>/report.html|json` (and the cached
champion references, under `<use case>/drift/_reference/`).

The root is a local folder or s3://bucket/prefix (boto3; AWS_ENDPOINT_URL points it at any S3-compatible
server). Writing the same date again replaces its files: a rerun never leaves two reports for one night."""

from __future__ import annotations

import mimetypes
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class ReportStore:
    root: str  # reports_root of the environment
    use_case: str

    @property
    def is_s3(self) -> bool:
        return self.root.startswith(("s3://", "s3a://"))

    def prefix(self, day: str) -> str:
        return f"{self.use_case}/drift/{day}"

    def uri(self, day: str, name: str) -> str:
        """Storage location of a report file: an absolute local path or an s3:// URI."""
        return f"{self.root.rstrip('/')}/{self.prefix(day)}/{name}"

    def url(self, day: str, name: str) -> str:
        """A link a browser opens: file:// for a local folder, the S3 console page for s3://."""
        uri = self.uri(day, name)
        if self.is_s3:
            bucket, _, key = uri.split("://", 1)[1].partition("/")
            return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={quote(key)}"
        return Path(uri).resolve().as_uri()

    def _bucket_key(self, day: str, name: str) -> tuple[str, str]:
        bucket, _, key = self.uri(day, name).split("://", 1)[1].partition("/")
        return bucket, key

    def put(self, day: str, local_file: str | Path, name: str | None = None) -> str:
        """Copy a local file into the store under the date; return its storage URI."""
        name = name or Path(local_file).name
        if self.is_s3:
            import boto3

            bucket, key = self._bucket_key(day, name)
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            boto3.client("s3").upload_file(str(local_file), bucket, key, ExtraArgs={"ContentType": content_type})
        else:
            target = Path(self.uri(day, name))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(local_file, tmp)
            tmp.replace(target)  # atomic: a reader never sees half a report
        return self.uri(day, name)

    def read_text(self, day: str, name: str) -> str:
        if self.is_s3:
            import boto3

            bucket, key = self._bucket_key(day, name)
            return boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        return Path(self.uri(day, name)).read_text(encoding="utf-8")

    def get(self, day: str, name: str, local_file: str | Path) -> bool:
        """Copy a stored file to `local_file`; False when the store has no such file."""
        if not self.exists(day, name):
            return False
        if self.is_s3:
            import boto3

            bucket, key = self._bucket_key(day, name)
            boto3.client("s3").download_file(bucket, key, str(local_file))
        else:
            shutil.copyfile(self.uri(day, name), local_file)
        return True

    def exists(self, day: str, name: str) -> bool:
        if self.is_s3:
            import boto3
            from botocore.exceptions import ClientError

            bucket, key = self._bucket_key(day, name)
            try:
                boto3.client("s3").head_object(Bucket=bucket, Key=key)
                return True
            except ClientError:
                return False
        return Path(self.uri(day, name)).is_file()

    def remove_stale(self, day: str, keep: set[str]) -> None:
        """Delete files of the date that this run did not write (e.g. a performance report of an earlier
        run when labels are no longer there), so the folder always describes one run."""
        if self.is_s3:
            import boto3

            bucket, prefix = self._bucket_key(day, "")
            client = boto3.client("s3")
            listed = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
            for obj in listed:
                if obj["Key"][len(prefix):] not in keep:
                    client.delete_object(Bucket=bucket, Key=obj["Key"])
            return
        folder = Path(self.uri(day, ""))
        if folder.is_dir():
            for f in folder.iterdir():
                if f.is_file() and f.name not in keep:
                    f.unlink()
