#!/usr/bin/env python3
"""Proves Box's official Python SDKs work against the testbed unchanged apart from
the base URLs: a chunked upload of a 25 MB file, a direct upload of a small file,
new versions of both, SHA-1 and size checked against Box's file info and against
what the testbed stored.

Runs whichever SDK is installed:
  legacy SDK (ChunkedUploader):   pip install 'boxsdk==3.14.0'
  generated SDK (box_sdk_gen):    pip install 'boxsdk==10.18.0'   (or box-sdk-gen)
Each in its own virtualenv: both install a package named `boxsdk`.

Usage:
  box_sdk_check.py --bin target/debug/dropship-testbed   # starts its own testbed
  box_sdk_check.py --url http://127.0.0.1:8900           # uses a running one
The developer token is the testbed secret (--secret, default testbed-secret).
Exit status 0 only if every check passed. Talks to 127.0.0.1 only.
"""

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

BIG = 25_000_000  # above Box's 20,000,000-byte session minimum: 3 parts of 8 MiB
SMALL = 100_000


def content(size, seed):
    """Deterministic bytes, different per seed."""
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB
    return (block * (size // len(block) + 1))[:size]


def sha1(data):
    return hashlib.sha1(data).hexdigest()


class Checks:
    def __init__(self, base):
        self.base = base
        self.failed = 0

    def eq(self, what, got, want):
        ok = got == want
        self.failed += not ok
        print(f"  {'ok  ' if ok else 'FAIL'} {what}" + ("" if ok else f": got {got!r}, want {want!r}"))

    def stored(self, path, data):
        """The testbed's own record of the object at `path`."""
        with urllib.request.urlopen(f"{self.base}/_testbed/objects") as r:
            objects = {o["path"]: o for o in json.load(r) if o["emulator"] == "box"}
        o = objects.get(path, {})
        self.eq(f"testbed stored {path} sha1", o.get("sha1"), sha1(data))
        self.eq(f"testbed stored {path} size", o.get("size"), len(data))


def run_legacy(base, token, c):
    import boxsdk
    from boxsdk import Client, OAuth2
    from boxsdk.config import API

    print(f"legacy SDK boxsdk {boxsdk.__version__}")
    API.BASE_API_URL = f"{base}/box/2.0"
    API.UPLOAD_URL = f"{base}/box/2.0"
    client = Client(OAuth2(client_id="testbed", client_secret="testbed", access_token=token))
    root = client.folder("0")
    folder = root.create_subfolder("legacy")

    big = content(BIG, "legacy-big")
    f = folder.create_upload_session(BIG, "big.bin").get_chunked_uploader_for_stream(io.BytesIO(big), BIG).start()
    info = client.file(f.id).get(fields=["sha1", "size"])
    c.eq("chunked upload: sha1", info.sha1, sha1(big))
    c.eq("chunked upload: size", info.size, BIG)
    c.stored("legacy/big.bin", big)

    big2 = content(BIG + 1, "legacy-big-v2")
    with tempfile.NamedTemporaryFile() as tmp:  # the path-based uploader, as most callers use it
        tmp.write(big2)
        tmp.flush()
        f2 = client.file(f.id).get_chunked_uploader(tmp.name).start()
    c.eq("chunked new version: sha1", f2.sha1, sha1(big2))
    c.stored("legacy/big.bin", big2)

    small = content(SMALL, "legacy-small")
    s = folder.upload_stream(io.BytesIO(small), "small.txt", sha1=sha1(small))
    c.eq("direct upload: sha1", client.file(s.id).get().sha1, sha1(small))
    c.eq("direct upload: content", client.file(s.id).content(), small)
    c.stored("legacy/small.txt", small)

    small2 = content(SMALL, "legacy-small-v2")
    s2 = client.file(s.id).update_contents_with_stream(io.BytesIO(small2), etag=s.etag, sha1=sha1(small2))
    c.eq("direct new version: sha1", s2.sha1, sha1(small2))

    try:
        folder.upload_stream(io.BytesIO(b"x"), "small.txt")
        c.eq("name conflict raises", "no error", "409 item_name_in_use")
    except boxsdk.BoxAPIException as e:
        c.eq("name conflict: status/code", (e.status, e.code), (409, "item_name_in_use"))
        c.eq("name conflict: conflicting id", e.context_info["conflicts"]["id"], s.id)


def run_gen(base, token, c):
    import box_sdk_gen
    from box_sdk_gen import (BaseUrls, BoxClient, BoxDeveloperTokenAuth, CreateFolderParent,
                             UploadFileAttributes, UploadFileAttributesParentField,
                             UploadFileVersionAttributes)

    version = getattr(box_sdk_gen, "__version__", None)
    if version is None:
        from importlib.metadata import version as pkg_version
        version = pkg_version("boxsdk")
    print(f"generated SDK box_sdk_gen (boxsdk {version})")
    client = BoxClient(auth=BoxDeveloperTokenAuth(token=token)).with_custom_base_urls(
        BaseUrls(base_url=f"{base}/box", upload_url=f"{base}/box", oauth_2_url=f"{base}/box/oauth2"))
    folder = client.folders.create_folder("gen", CreateFolderParent(id="0"))

    big = content(BIG, "gen-big")
    f = client.chunked_uploads.upload_big_file(io.BytesIO(big), "big.bin", BIG, folder.id)
    info = client.files.get_file_by_id(f.id, fields=["sha1", "size"])
    c.eq("chunked upload: sha1", info.sha_1, sha1(big))
    c.eq("chunked upload: size", info.size, BIG)
    c.stored("gen/big.bin", big)

    big2 = content(BIG + 7, "gen-big-v2")
    f2 = client.chunked_uploads.upload_big_file_version(f.id, io.BytesIO(big2), len(big2))
    c.eq("chunked new version (uses /plan): sha1", f2.sha_1 if f2 else None, sha1(big2))
    c.stored("gen/big.bin", big2)

    small = content(SMALL, "gen-small")
    files = client.uploads.upload_file(
        UploadFileAttributes(name="small.txt", parent=UploadFileAttributesParentField(id=folder.id)),
        io.BytesIO(small), content_md_5=sha1(small))
    s = files.entries[0]
    c.eq("direct upload: sha1", s.sha_1, sha1(small))
    c.eq("direct upload: content", client.downloads.download_file(s.id).read(), small)
    c.stored("gen/small.txt", small)

    small2 = content(SMALL, "gen-small-v2")
    s2 = client.uploads.upload_file_version(
        s.id, UploadFileVersionAttributes(name="small.txt"), io.BytesIO(small2), if_match=s.etag).entries[0]
    c.eq("direct new version: sha1", s2.sha_1, sha1(small2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="base URL of a running testbed")
    ap.add_argument("--bin", help="path of the dropship-testbed binary to start")
    ap.add_argument("--secret", default="testbed-secret")
    args = ap.parse_args()

    proc = store = None
    base = args.url
    if args.bin:
        store = tempfile.TemporaryDirectory(prefix="box-sdk-check-")
        proc = subprocess.Popen(
            [args.bin, "--listen", "127.0.0.1:0", "--store", store.name, "--secret", args.secret],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = proc.stdout.readline().strip()
        if not line.startswith("listening on http://127.0.0.1:"):
            print(f"testbed did not start: {line!r}")
            proc.kill()
            return 2
        base = line.removeprefix("listening on ")
    if not base:
        ap.error("give --url or --bin")
    base = base.rstrip("/")

    c = Checks(base)
    ran = 0
    try:
        for name, runner in (("boxsdk", run_legacy), ("box_sdk_gen", run_gen)):
            try:
                if name == "boxsdk":
                    import boxsdk
                    if not hasattr(boxsdk, "Client"):  # boxsdk 10.x ships only box_sdk_gen
                        continue
                else:
                    import box_sdk_gen  # noqa: F401
            except ImportError:
                continue
            ran += 1
            try:
                runner(base, args.secret, c)
            except Exception as e:  # report and fail, never hide
                c.failed += 1
                print(f"  FAIL {name} raised {type(e).__name__}: {e}")
    finally:
        if proc:
            proc.kill()
            proc.wait()
    if ran == 0:
        print("no Box SDK installed: pip install 'boxsdk==3.14.0' or 'boxsdk==10.18.0'")
        return 2
    print("PASSED" if c.failed == 0 else f"FAILED: {c.failed} check(s)")
    return 0 if c.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
