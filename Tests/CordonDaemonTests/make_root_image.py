"""A tiny two-layer image with a runnable root, for ImageRootTests.

usage: make_root_image.py OUT FORMAT [--device] [--key] [--escape] [--tools] [--tag NAME]...

FORMAT: oci-dir (an OCI image layout directory), oci-tar (the same as a tar) or docker (a
docker save archive). The base layer holds the host's /bin/sh (dash) and cat with the C
libraries they load, /etc files, a file the second layer deletes (a whiteout), a directory it
makes opaque, a set-user-ID copy of the shell and an absolute symlink; the second layer adds a
hard link and a file. --tools adds stat, chmod, chown, rm and touch. --device adds a character device node, --key a private key, --escape an
entry under a symlink to /etc: each of them must make cordond refuse the image.
"""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

out, fmt = sys.argv[1], sys.argv[2]
flags = sys.argv[3:]
tags = [flags[i + 1] for i, f in enumerate(flags) if f == "--tag"] or ["cordon/test:1"]


def libraries(program):
    """The shared libraries `program` loads, from ldd: (path as ldd names it, real file)."""
    text = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    found = []
    for line in text.splitlines():
        parts = line.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            found.append(path)
    return found


def add_file(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def add_dir(tar, name, mode=0o755):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    tar.addfile(info)


def add_link(tar, name, target, hard=False):
    info = tarfile.TarInfo(name)
    info.type = tarfile.LNKTYPE if hard else tarfile.SYMTYPE
    info.linkname = target
    tar.addfile(info)


def layer(build):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    return buffer.getvalue()


def base(tar):
    sh = os.path.realpath("/bin/sh")
    cat = os.path.realpath("/bin/cat")
    for d in ["bin", "etc", "keep", "usr", "usr/bin", "home", "lib", "lib64", "lib/x86_64-linux-gnu"]:
        add_dir(tar, d)
    add_dir(tar, "tmp", 0o1777)
    add_file(tar, "bin/sh", open(sh, "rb").read(), 0o755)
    add_file(tar, "bin/cat", open(cat, "rb").read(), 0o755)
    add_file(tar, "bin/suid-sh", open(sh, "rb").read(), 0o4755)
    programs = [sh, cat]
    if "--tools" in flags:
        for tool in ["stat", "chmod", "chown", "rm", "touch"]:
            path = os.path.realpath("/bin/" + tool)
            add_file(tar, "bin/" + tool, open(path, "rb").read(), 0o755)
            programs.append(path)
    done = set()
    for lib in [lib for program in programs for lib in libraries(program)]:
        name = lib.lstrip("/")
        if name in done:
            continue
        done.add(name)
        # Both /lib and /usr/lib names end up under lib/ and lib64/, as ldd names them.
        parts = name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in ["lib", "lib64", "lib/x86_64-linux-gnu", "usr"] and d not in done:
                add_dir(tar, d)
                done.add(d)
        add_file(tar, name, open(os.path.realpath(lib), "rb").read(), 0o755)
    add_file(tar, "etc/os-release", b"NAME=cordon-test-image\n")
    add_file(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    add_file(tar, "secret.txt", b"from layer one\n")
    add_file(tar, "keep/a", b"a\n")
    add_file(tar, "keep/b", b"b\n")
    add_link(tar, "usr/bin/awk-alt", "/bin/sh")


def top(tar):
    add_file(tar, ".wh.secret.txt", b"")
    add_dir(tar, "keep")
    add_file(tar, "keep/.wh..wh..opq", b"")
    add_file(tar, "keep/c", b"c\n")
    add_file(tar, "etc/motd", b"from layer two\n")
    add_link(tar, "bin/sh2", "bin/sh", hard=True)
    if "--device" in flags:
        info = tarfile.TarInfo("dev-null-copy")
        info.type = tarfile.CHRTYPE
        info.devmajor, info.devminor, info.mode = 1, 3, 0o666
        tar.addfile(info)
    if "--key" in flags:
        add_dir(tar, "root", 0o700)
        add_file(tar, "root/id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n", 0o600)
    if "--escape" in flags:
        add_link(tar, "evil", "/etc")
        add_file(tar, "evil/cordon-escape", b"written through a symlink\n")


layers = [layer(base), layer(top)]


def blob(files, data):
    digest = hashlib.sha256(data).hexdigest()
    files["blobs/sha256/" + digest] = data
    return {"digest": "sha256:" + digest, "size": len(data)}


files = {}
if fmt == "docker":
    names = []
    for i, data in enumerate(layers):
        name = "l%d/layer.tar" % i
        files[name] = data
        names.append(name)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    files["config.json"] = config
    files["manifest.json"] = json.dumps([{"Config": "config.json", "RepoTags": tags, "Layers": names}]).encode()
else:
    config = blob(files, json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    descriptors = []
    for data in layers:
        d = blob(files, data)
        d["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
        descriptors.append(d)
    manifest = blob(files, json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                       "config": config, "layers": descriptors}).encode())
    manifest["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    manifest["annotations"] = {"org.opencontainers.image.ref.name": tags[0]}
    manifest["platform"] = {"os": "linux", "architecture": "amd64"}
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [manifest]}).encode()
    files["oci-layout"] = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()

if fmt == "oci-dir":
    for name, data in files.items():
        path = os.path.join(out, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
    for root, dirs, _ in os.walk(out):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    os.chmod(out, 0o755)
else:
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in files.items():
            add_file(tar, name, data)
    os.chmod(out, 0o644)
