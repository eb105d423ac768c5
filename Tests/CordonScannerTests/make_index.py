#!/usr/bin/env python3
"""Writes a PEP 691 index over the packages make_packages.py made (stdlib only).

ROOT/files/ holds the archives (copied), ROOT/simple/NAME/index.json each project's page: every
file with its sha256, upload-time and size. Crafted facts, by project: cordon-fresh's 1.0 was
uploaded an hour before NOW, its 0.9 thirty days before (every other file thirty days before);
cordon-yanked is yanked ("broken build"); cordon-tampered's page gives a sha256 its bytes do
not have.

usage: make_index.py PACKAGES ROOT NOW   (NOW: seconds since the epoch)
"""
import datetime, hashlib, json, os, shutil, sys

packages, root, now = sys.argv[1], sys.argv[2], float(sys.argv[3])
os.makedirs(os.path.join(root, "files"), exist_ok=True)


def when(seconds_ago):
    t = datetime.datetime.fromtimestamp(now - seconds_ago, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def project_of(filename):
    stem = filename[:-4] if filename.endswith(".whl") else filename[:-7]
    return stem.split("-")[0].replace("_", "-").lower()


pages = {}
names = sorted(f for f in os.listdir(packages) if f.endswith(".whl") or f.endswith(".tar.gz"))
for f in names:
    shutil.copy(os.path.join(packages, f), os.path.join(root, "files", f))
    data = open(os.path.join(packages, f), "rb").read()
    project = project_of(f)
    entry = {"filename": f, "url": f"../../files/{f}", "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
             "requires-python": ">=3.8", "size": len(data), "upload-time": when(30 * 86400), "yanked": False}
    if project == "cordon-fresh" and "-1.0" in f:
        entry["upload-time"] = when(3600)
    if project == "cordon-yanked":
        entry["yanked"] = "broken build"
    if project == "cordon-tampered":
        entry["hashes"]["sha256"] = hashlib.sha256(data + b"tampered").hexdigest()
    pages.setdefault(project, []).append(entry)

for project, files in pages.items():
    d = os.path.join(root, "simple", project)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "index.json"), "w") as out:
        json.dump({"meta": {"api-version": "1.1"}, "name": project, "versions": sorted({f["filename"].split("-")[1] for f in files}),
                   "files": files}, out)
print(root)
