#!/usr/bin/env python3
"""Writes a container image for bench/scan.sh and the scanner's tests, so none is committed.

Usage: make-image.py OUT --format docker|oci-tar|oci-dir [--layers N] [--layer-mib M]
                     [--gzip] [--platforms linux/amd64,linux/arm64/v8] [--nested-index REF]

Each layer holds M MiB of filler in 8 MiB files, alternately random (incompressible) and
repetitive text, and a few real inventory files and secrets: dpkg status (bash 5.2.15-2) and an
AWS key id in layer 0, a node_modules package.json (left-pad 1.3.0) and a dist-info METADATA
(requests 2.19.0) in layer 1, an apk database (musl 1.2.4-r0) in layer 2. With --platforms the
OCI index lists one image per platform, each with its own layers and an etc/platform file
naming it. The last real file of each layer comes after its filler. --nested-index puts those manifests behind an inner index carrying the ref name REF
and adds a BuildKit attestation manifest beside them, as `docker buildx` writes them. Layer
files are written once to a scratch directory next to OUT and moved (directory) or copied
(tar) into place.
"""
import argparse, hashlib, io, json, os, shutil, sys, tarfile

FILE = 8 << 20


class Filler(io.RawIOBase):
    """`size` bytes: random, or a repeated line, read in chunks (never held whole)."""
    def __init__(self, size, random):
        self.left, self.random = size, random
        self.line = b"lorem ipsum dolor sit amet, consectetur adipiscing elit 0123456789\n"

    def readable(self):
        return True

    def readinto(self, buf):
        n = min(len(buf), self.left, 1 << 20)
        if n == 0:
            return 0
        if self.random:
            buf[:n] = os.urandom(n)
        else:
            chunk = (self.line * (n // len(self.line) + 1))[:n]
            buf[:n] = chunk
        self.left -= n
        return n


def add(t, name, data=None, size=None, mode=0o644, stream=None):
    info = tarfile.TarInfo(name)
    info.mode = mode
    info.size = len(data) if data is not None else size
    t.addfile(info, io.BytesIO(data) if data is not None else stream)


def real_files(n, platform):
    files = []
    if n == 0:
        status = (b"Package: bash\nStatus: install ok installed\nVersion: 5.2.15-2\n\n"
                  b"Package: libc6\nStatus: install ok installed\nVersion: 2.36-9\n")
        files += [("var/lib/dpkg/status", status, 0o644),
                  ("etc/app.env", b"AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP\n", 0o644),
                  ("usr/bin/su", b"\x7fELF", 0o4755)]
        if platform:
            files.append(("etc/platform", platform.encode() + b"\n", 0o644))
            # Each platform's image has a package only it has, so reports can tell them apart.
            arch = platform.split("/")[1]
            status += f"\nPackage: only-{arch}\nStatus: install ok installed\nVersion: 1.0\n".encode()
            files[0] = ("var/lib/dpkg/status", status, 0o644)
    elif n == 1:
        files += [("app/node_modules/left-pad/package.json", json.dumps({"name": "left-pad", "version": "1.3.0"}).encode(), 0o644),
                  ("usr/lib/python3/dist-packages/requests-2.19.0.dist-info/METADATA", b"Name: requests\nVersion: 2.19.0\n", 0o644)]
    elif n == 2:
        files += [("lib/apk/db/installed", b"P:musl\nV:1.2.4-r0\n\n", 0o644)]
    return files


def write_layer(path, n, mib, gzip, platform):
    with tarfile.open(path, "w:gz", compresslevel=1) if gzip else tarfile.open(path, "w") as t:
        real = real_files(n, platform)
        # The last real file goes after the filler: a reader that stops early misses it.
        for name, data, mode in real[:-1]:
            add(t, name, data, mode=mode)
        left, i = mib << 20, 0
        while left > 0:
            size = min(FILE, left)
            add(t, f"opt/filler/layer{n}-{i}.bin", size=size, stream=Filler(size, random=i % 2 == 0))
            left -= size
            i += 1
        for name, data, mode in real[-1:]:
            add(t, name, data, mode=mode)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--format", choices=["docker", "oci-tar", "oci-dir"], required=True)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--layer-mib", type=int, default=0)
    p.add_argument("--gzip", action="store_true")
    p.add_argument("--platforms", default="")
    p.add_argument("--nested-index", default=None)
    a = p.parse_args()
    platforms = [x for x in a.platforms.split(",") if x] or [None]
    if a.format == "docker" and platforms != [None]:
        sys.exit("make-image.py: --platforms needs an OCI format")
    scratch = a.out + ".layers"
    os.makedirs(scratch)
    blobs = {}  # name in the image -> scratch file, or bytes

    def blob(data):
        d = hashlib.sha256(data).hexdigest()
        blobs[f"blobs/sha256/{d}"] = data
        return {"digest": f"sha256:{d}", "size": len(data)}

    try:
        manifests, docker = [], []
        for platform in platforms:
            layer_descs, layer_names = [], []
            for n in range(a.layers):
                tmp = f"{scratch}/{len(blobs)}-{n}"
                write_layer(tmp, n, a.layer_mib, a.gzip, platform)
                d = sha256_file(tmp)
                name = f"{d}/layer.tar" if a.format == "docker" else f"blobs/sha256/{d}"
                blobs[name] = tmp
                layer_names.append(name)
                media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if a.gzip else "")
                layer_descs.append({"mediaType": media, "digest": f"sha256:{d}", "size": os.path.getsize(tmp)})
            os_, arch = (platform or "linux/amd64").split("/")[:2]
            config = blob(json.dumps({"os": os_, "architecture": arch, "rootfs": {"type": "layers"}}).encode())
            if a.format == "docker":
                docker.append({"Config": config["digest"].split(":")[1] + ".json", "RepoTags": ["bench:latest"], "Layers": layer_names})
                continue
            manifest = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                        "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
                                        "layers": layer_descs}).encode())
            desc = dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json")
            if platform:
                parts = platform.split("/")
                desc["platform"] = {"os": parts[0], "architecture": parts[1], **({"variant": parts[2]} if len(parts) > 2 else {})}
            manifests.append(desc)
        documents = {}
        if a.format == "docker":
            documents["manifest.json"] = json.dumps(docker).encode()
        else:
            if a.nested_index is not None:
                statement = blob(b'{"_type": "https://in-toto.io/Statement/v0.1"}')
                att = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "config": blob(b"{}"), "layers": [dict(statement, mediaType="application/vnd.in-toto+json")]}).encode())
                manifests.append(dict(att, mediaType="application/vnd.oci.image.manifest.v1+json",
                                      platform={"os": "unknown", "architecture": "unknown"},
                                      annotations={"vnd.docker.reference.type": "attestation-manifest",
                                                   "vnd.docker.reference.digest": manifests[0]["digest"]}))
                inner = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}).encode())
                manifests = [dict(inner, mediaType="application/vnd.oci.image.index.v1+json",
                                  annotations={"org.opencontainers.image.ref.name": a.nested_index})]
            documents["index.json"] = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
            documents["oci-layout"] = b'{"imageLayoutVersion": "1.0.0"}'
        if a.format == "oci-dir":
            for name, data in list(documents.items()) + list(blobs.items()):
                target = f"{a.out}/{name}"
                os.makedirs(os.path.dirname(target), exist_ok=True)
                if isinstance(data, bytes):
                    open(target, "wb").write(data)
                else:
                    os.replace(data, target)
        else:
            with tarfile.open(a.out, "w") as t:
                for name, data in list(blobs.items()) + list(documents.items()):
                    if isinstance(data, bytes):
                        add(t, name, data)
                    else:
                        with open(data, "rb") as f:
                            add(t, name, size=os.path.getsize(data), stream=f)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
