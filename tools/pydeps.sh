#!/usr/bin/env bash
# Installs the PyPI packages the tests and benchmarks use, pinned, into one virtual environment
# per group under .build/pydeps/<group>. Nothing goes into the system or ~/.local; pip's
# download cache is .build/pydeps/.cache.
#
#   tools/pydeps.sh [GROUP...]         install (default: every group that is not opt-in)
#   tools/pydeps.sh --lock GROUP...    re-resolve GROUP.in against the index and rewrite GROUP.lock
#
# A group is two files in tools/pydeps/:
#   GROUP.in    its direct dependencies, each pinned with ==, written by hand;
#   GROUP.lock  the whole dependency closure of GROUP.in, each package pinned with == and the
#               sha256 of the artifact chosen for this interpreter and platform, written by --lock.
# The install takes GROUP.lock alone (--no-deps --require-hashes), so what lands is exactly what
# was locked, then runs `pip check`.
#
# A group whose .in (or .sdist) has a line `# opt-in` (the marker alone on its line, a reason may
# follow after a colon) is installed only when named: the default list, which `make test` installs,
# leaves it out. For a group that only a benchmark needs (models: LiteLLM's proxy, 745 MB); the
# script that needs it names it (bench/models.sh runs `tools/pydeps.sh models`).
#
# A package that PyPI has no wheel of for this platform is built from its sdist:
#   GROUP.build the names of such packages of GROUP.in, one a line, and KEY=VALUE lines, the
#               environment of their build (CMAKE_ARGS, say), written by hand. In a value,
#               @SPEC_DIR@ stands for the absolute path of tools/pydeps, for the files the build
#               reads from there, named GROUP.build.*.
# Their build requirements (backend, cmake, ...) are pinned in GROUP.in like any dependency. The
# install puts the locked wheels into the venv first, then builds each named package from its
# hash-checked sdist with `pip wheel --no-build-isolation` in that venv, so with exactly the
# locked build tools (and the host's compilers), in $(nproc) jobs (CMAKE_BUILD_PARALLEL_LEVEL).
# The wheel is kept in .build/pydeps/.cache/built/KEY, KEY the hash of GROUP.lock, GROUP.build*
# and the interpreter, and installed from there, without a hash: builds are not byte-for-byte
# reproducible, and the wheel is trusted for where it was made. So a machine builds it once per
# lock and recipe, and a venv made again takes seconds. Such a build takes minutes: mark its group
# `# opt-in`. `--lock` resolves these packages from their sdists;
# pip reads their metadata with their build backend, which it fetches, unpinned, into an isolated
# environment for that alone (nothing is compiled).
#
# A group can instead be one source distribution, unpacked and never built or installed (data
# the tests read, such as the JSON-Schema-Test-Suite that the jsonschema sdist carries):
#   GROUP.sdist one line NAME==VERSION --hash=sha256:HEX, the sdist (NAME-VERSION.tar.gz) of that
#               release on the index, written by hand; `--lock GROUP` rewrites the hash from the
#               one the index publishes.
# Its archive is found through the index's simple API (PEP 691 JSON or HTML; PYDEPS_INDEX_URL,
# else PIP_INDEX_URL, else https://pypi.org/simple), downloaded into the cache, its sha256
# checked against the pin, and unpacked without its top directory into .build/pydeps/GROUP:
# regular files and directories only, every path inside GROUP. pip is not used for it: `pip
# download` of an sdist runs its build backend, itself fetched unpinned, to read its metadata.
#
# Why a venv and not `pip --target`: the servers are run as `<venv>/bin/python3 -m <module>`, and a
# venv's interpreter finds its own site-packages from pyvenv.cfg beside bin/, with no PYTHONPATH
# to pass through a sandbox's environment, and without the host's site-packages. The venv's
# python3 is a symlink to the host's /usr/bin/python3, so a sandbox needs the venv directory and
# /usr, and nothing else; the venv works at another path too (pyvenv.cfg is found from the
# symlink's own location), although its bin/ console scripts carry the install path in their
# shebangs: run the servers with `-m`.
#
# The interpreter is Debian's /usr/bin/python3 (PYDEPS_PYTHON to change it): the one a sandbox's
# read-only /usr has. A python3 found first on PATH (pyenv, say) lives outside /usr.
#
# Idempotent: a group whose stamp (.build/pydeps/GROUP/.pydeps-stamp) matches the hash of its
# .in, its .lock and its .build* (or its .sdist), this script and the interpreter is left alone,
# without starting Python or pip.
# A failed install leaves no stamp, so the next run starts that group afresh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
spec_dir=$root/tools/pydeps
out_dir=${PYDEPS_DIR:-$root/.build/pydeps}
python=${PYDEPS_PYTHON:-/usr/bin/python3}
# Seconds pip waits on one socket read before it counts a try as failed (the environment may set
# a much longer default); then pip tries again, at most PYDEPS_PIP_RETRIES times.
pip_timeout=${PYDEPS_PIP_TIMEOUT:-30}
pip_retries=${PYDEPS_PIP_RETRIES:-2}

say() { echo "pydeps: $*" >&2; }
die() { echo "pydeps: error: $*" >&2; exit 1; }

# name==version lines of a requirements file, names normalized (PEP 503), one per line, sorted.
pins() {
  sed -e 's/#.*//' -e 's/--hash=[^ ]*//g' -e 's/\\$//' "$1" |
    awk 'NF { print $1 }' |
    awk -F'==' '{ n = tolower($1); sub(/\[.*\]/, "", n); gsub(/[-_.]+/, "-", n); print n "==" $2 }' | sort
}

# Every direct dependency must be pinned exactly.
check_in() {
  local in=$1 line
  while IFS= read -r line; do
    line=${line%%#*}
    [[ $line =~ ^[[:space:]]*$ ]] && continue
    [[ $line =~ ^[[:space:]]*[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+[[:space:]]*$ ]] ||
      die "$in: '$line' is not pinned as NAME==VERSION"
  done < "$in"
}

need_python() {
  [[ -x $python ]] || die "no interpreter at $python (apt-get install python3, or set PYDEPS_PYTHON)"
  "$python" -c 'import venv, ensurepip' 2>/dev/null ||
    die "$python cannot create virtual environments: apt-get install python3-venv"
}

# Why pip failed, in one line, from its log: the package it could not get, and whether the index
# was reachable at all.
explain_pip_failure() {
  local log=$1 what
  what=$(grep -oE "(Could not find a version that satisfies the requirement|No matching distribution found for) [^ ]+" "$log" | tail -n1 | awk '{ print $NF }') || true
  if grep -qE "NewConnectionError|ConnectTimeout|ReadTimeout|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|ProxyError|SSLError|Connection refused|Network is unreachable" "$log"; then
    echo "the package index could not be reached${what:+ while fetching $what} (PyPI is the only index this project uses; check the network and pip's index settings)"
  elif grep -qE "No CMAKE_CXX?_COMPILER could be found|CMAKE_CXX?_COMPILER not set" "$log"; then
    echo "building from source needs a C and C++ compiler: apt-get install gcc g++"
  elif grep -q "THESE PACKAGES DO NOT MATCH THE HASHES" "$log"; then
    echo "a downloaded artifact does not match the hash in its lock file"
  elif [[ -n $what ]]; then
    echo "the index has no artifact of $what for $("$python" -c 'import sys; print("CPython %d.%d" % sys.version_info[:2])' 2>/dev/null || echo this interpreter)"
  else
    echo "see the log"
  fi
}

run_pip() { # LOG VENV ARGS...: pip in VENV, its output in LOG; on failure, says why and exits.
  local log=$1 venv=$2 rc=0
  shift 2
  PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONNOUSERSITE=1 \
    "$venv/bin/python3" -m pip "$@" --cache-dir "$out_dir/.cache" \
    --timeout "$pip_timeout" --retries "$pip_retries" >"$log" 2>&1 || rc=$?
  if ((rc != 0)); then
    echo "pydeps: error: group $group: pip $1 failed (exit $rc): $(explain_pip_failure "$log")" >&2
    echo "pydeps: the last lines of $log:" >&2
    tail -n 12 "$log" | sed 's/^/    /' >&2
    exit 1
  fi
}

stamp_key() { # IN LOCK [BUILD]
  local py
  py=$(readlink -f "$python")
  { cat "$@" "${BASH_SOURCE[0]}"; stat -c '%n %s %Y' "$py"; } | sha256sum | cut -d' ' -f1
}

# The packages a GROUP.build names (normalized, one a line); each must be pinned in GROUP.lock.
build_names() {
  local file=$1 line
  while IFS= read -r line; do
    [[ $line =~ ^[[:space:]]*(#.*)?$ || $line =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] && continue
    [[ $line =~ ^[[:space:]]*([A-Za-z0-9][A-Za-z0-9._-]*)[[:space:]]*(#.*)?$ ]] ||
      die "$file: '$line' is neither a package name nor KEY=VALUE"
    echo "${BASH_REMATCH[1]}" | awk '{ n = tolower($0); gsub(/[-_.]+/, "-", n); print n }'
  done < "$file"
}

# The KEY=VALUE lines of a GROUP.build, one a line (a value runs to the end of its line).
build_env() { grep -E '^[A-Za-z_][A-Za-z0-9_]*=' "$1" || true; }

# Builds (or finds in the cache) the wheels of GROUP.build's packages from their sdists in the
# venv DEST, whose locked wheels are installed, and installs them.
build_group() { # BUILD LOCK DEST NAME...
  local build=$1 lock=$2 dest=$3 key dir start name count
  local -a names=("${@:4}") env
  mapfile -t env < <(build_env "$build")
  key=$({ cat "$lock" "$build"*; readlink -f "$python"; "$python" -VV; } | sha256sum | cut -d' ' -f1)
  dir=$out_dir/.cache/built/$key
  if [[ ! -d $dir ]]; then
    awk -v names=" ${names[*]} " '{ split($1, p, "=="); if (index(names, " " p[1] " ")) print }' "$lock" > "$dest/.pydeps-sdists.txt"
    start=$(date +%s.%N)
    say "$group: building ${names[*]} from source ($(nproc) jobs; once per machine and lock, minutes; log: $out_dir/$group.build.log)"
    rm -rf "$dir.tmp"
    (
      for kv in "${env[@]}"; do export "${kv//@SPEC_DIR@/$spec_dir}"; done
      export CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
      run_pip "$out_dir/$group.build.log" "$dest" wheel --progress-bar off --no-deps --require-hashes \
        --no-build-isolation --no-binary :all: -w "$dir.tmp" -r "$dest/.pydeps-sdists.txt"
    )
    for name in "${names[@]}"; do
      count=$(find "$dir.tmp" -maxdepth 1 -name "$(tr - _ <<<"$name")-*.whl" | wc -l)
      ((count == 1)) || die "group $group: building $name left $count wheels in $dir.tmp"
    done
    mv "$dir.tmp" "$dir"
    say "$group: built in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }'), kept in $dir"
  else
    say "$group: ${names[*]} already built ($dir)"
  fi
  run_pip "$out_dir/$group.built.log" "$dest" install --progress-bar off --no-deps --no-index "$dir"/*.whl
}

# "NAME VERSION SHA256" of an sdist group's pin (SHA256 empty when not pinned yet).
sdist_pin() {
  local file=$1 line
  line=$(sed -e 's/#.*//' "$file" | awk 'NF')
  [[ -n $line && $(wc -l <<<"$line") -eq 1 && $line =~ ^[[:space:]]*([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)([[:space:]]+--hash=sha256:([0-9a-f]{64}))?[[:space:]]*$ ]] ||
    die "$file: expected one line NAME==VERSION --hash=sha256:HEX"
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[4]:-}"
}

# `sdist_fetch NAME VERSION SHA256 DEST`: the sdist from the cache or the index, checked against
# SHA256, unpacked at DEST. `sdist_fetch NAME VERSION - -`: prints the sha256 the index publishes.
sdist_fetch() {
  [[ -x $python ]] || die "no interpreter at $python (apt-get install python3, or set PYDEPS_PYTHON)"
  PYTHONNOUSERSITE=1 "$python" - "$@" "$out_dir/.cache/sdist" "${PYDEPS_INDEX_URL:-${PIP_INDEX_URL:-https://pypi.org/simple}}" \
    "$pip_timeout" "$pip_retries" <<'EOF'
import hashlib, html.parser, json, os, re, shutil, ssl, sys, tarfile, time, urllib.error, urllib.parse, urllib.request
name, version, pinned, dest, cache, index, timeout, retries = sys.argv[1:9]
def die(message):
    sys.exit(f"pydeps: error: {message}")
context = ssl.create_default_context(cafile=os.environ.get("PIP_CERT") or None)
def get(url, accept):
    for attempt in range(int(retries) + 1):
        try:
            request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "cordon-pydeps"})
            with urllib.request.urlopen(request, timeout=float(timeout), context=context) as response:
                return response.headers.get("Content-Type", ""), response.read()
        except urllib.error.HTTPError as error:
            die(f"{url}: HTTP {error.code}" + (f" (the index has no project {name})" if error.code == 404 else ""))
        except OSError as error:
            if attempt == int(retries):
                die(f"the package index could not be reached ({url}: {error}); PyPI is the only index this project uses")
            time.sleep(1 + attempt)
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()
# The release's sdist: file name (PEP 625's, or the older unnormalized one). One already in the
# cache with the pinned hash is used without asking the index.
wanted = [f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}.tar.gz", f"{name}-{version}.tar.gz"]
cached = [os.path.join(cache, w) for w in wanted if os.path.isfile(os.path.join(cache, w))]
archive = next((c for c in cached if dest != "-" and sha256(c) == pinned), None)
if archive is None:
    # Its URL on the index, and the sha256 the index publishes.
    project = re.sub(r"[-_.]+", "-", name).lower()
    page = index.rstrip("/") + "/" + project + "/"
    kind, body = get(page, "application/vnd.pypi.simple.v1+json, text/html;q=0.01")
    files = []
    if "json" in kind:
        for f in json.loads(body)["files"]:
            files.append((f["filename"], urllib.parse.urljoin(page, f["url"]), f.get("hashes", {}).get("sha256")))
    else:
        class Links(html.parser.HTMLParser):
            def handle_starttag(self, tag, attrs):
                href = dict(attrs).get("href") if tag == "a" else None
                if href:
                    url, _, fragment = href.partition("#")
                    sha = fragment[len("sha256="):] if fragment.startswith("sha256=") else None
                    files.append((urllib.parse.unquote(url.rsplit("/", 1)[-1]), urllib.parse.urljoin(page, url), sha))
        Links().feed(body.decode("utf-8", "replace"))
    found = [f for f in files if f[0] in wanted]
    if not found:
        die(f"the index has no source distribution {' or '.join(wanted)} ({page})")
    filename, url, published = found[0]
    if dest == "-":
        if not published:
            die(f"the index publishes no sha256 for {filename}")
        print(published)
        sys.exit(0)
    if published and published != pinned:
        die(f"the index publishes sha256 {published} for {filename}, not the pinned {pinned}")
    _, data = get(url, "*/*")
    got = hashlib.sha256(data).hexdigest()
    if got != pinned:
        die(f"{filename} from {url} does not match the hash in its pin (sha256 {got}, pinned {pinned})")
    os.makedirs(cache, exist_ok=True)
    archive = os.path.join(cache, filename)
    with open(archive + ".tmp", "wb") as f:
        f.write(data)
    os.replace(archive + ".tmp", archive)
filename = os.path.basename(archive)
# Without its top directory: regular files and directories only, each inside dest.
scratch = dest + ".tmp"
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)
with tarfile.open(archive, "r:gz") as tar:
    for member in tar:
        parts = member.name.rstrip("/").split("/")
        if len(parts) == 1 and member.isdir():
            continue
        if member.name.startswith("/") or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            die(f"{filename}: the entry {member.name!r} is not a plain path inside its top directory")
        target = os.path.join(scratch, *parts[1:])
        if member.isdir():
            os.makedirs(target, exist_ok=True)
        elif member.isfile():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with tar.extractfile(member) as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out)
        else:
            die(f"{filename}: the entry {member.name!r} is not a regular file or directory")
shutil.rmtree(dest, ignore_errors=True)
os.replace(scratch, dest)
EOF
}

install_sdist() {
  local file=$spec_dir/$group.sdist dest=$out_dir/$group name version sha key stamp start pin
  stamp=$dest/.pydeps-stamp
  pin=$(sdist_pin "$file")
  read -r name version sha <<<"$pin"
  [[ -n $sha ]] || die "$file: $name==$version has no --hash=sha256: run tools/pydeps.sh --lock $group"
  key=$(cat "$file" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)
  if [[ -f $stamp && $(<"$stamp") == "$key" ]]; then
    say "$group: up to date ($dest)"
    return
  fi
  start=$(date +%s.%N)
  say "$group: unpacking the sdist of $name==$version at $dest"
  sdist_fetch "$name" "$version" "$sha" "$dest"
  echo "$key" > "$stamp"
  say "$group: ready in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')"
}

lock_sdist() {
  local file=$spec_dir/$group.sdist name version sha published pin
  pin=$(sdist_pin "$file")
  read -r name version sha <<<"$pin"
  published=$(sdist_fetch "$name" "$version" - -)
  sed -i -E "s/^([[:space:]]*$name==$version)([[:space:]]+--hash=sha256:[0-9a-f]{64})?/\1 --hash=sha256:$published/" "$file"
  say "$group: pinned $name==$version --hash=sha256:$published in ${file#"$root"/}"
}

install_group() {
  group=$1
  if [[ -f $spec_dir/$group.sdist ]]; then
    [[ ! -f $spec_dir/$group.in ]] || die "group $group is both $group.in and $group.sdist"
    install_sdist
    return
  fi
  local in=$spec_dir/$group.in lock=$spec_dir/$group.lock dest=$out_dir/$group build=$spec_dir/$group.build
  local stamp=$dest/.pydeps-stamp key missing start name list
  local -a specs=("$in" "$lock") names=()
  [[ -f $in ]] || die "no group '$group' (no $in)"
  [[ -f $lock ]] || die "group $group has no lock file: run tools/pydeps.sh --lock $group"
  if [[ -f $build ]]; then
    specs+=("$build"*)
    list=$(build_names "$build")
    read -ra names <<<"${list//$'\n'/ }"
  fi
  key=$(stamp_key "${specs[@]}")
  if [[ -f $stamp && $(<"$stamp") == "$key" && -x $dest/bin/python3 ]]; then
    say "$group: up to date ($dest)"
    return
  fi
  check_in "$in"
  missing=$(comm -23 <(pins "$in") <(pins "$lock"))
  [[ -z $missing ]] || die "$lock does not hold $(echo $missing) from $in: run tools/pydeps.sh --lock $group"
  for name in "${names[@]}"; do
    pins "$lock" | grep -q "^$name==" || die "${build#"$root"/} names $name, which ${lock#"$root"/} does not pin"
  done
  need_python
  start=$(date +%s.%N)
  say "$group: creating a venv at $dest ($python)"
  rm -rf "$dest"
  "$python" -m venv "$dest" || die "group $group: $python -m venv $dest failed"
  # The wheels first (all of the lock but the packages built from source).
  awk -v names=" ${names[*]} " '{ split($1, p, "=="); if (!index(names, " " p[1] " ")) print }' "$lock" > "$dest/.pydeps-wheels.txt"
  say "$group: installing $(pins "$dest/.pydeps-wheels.txt" | wc -l) pinned packages from ${lock#"$root"/}"
  run_pip "$out_dir/$group.log" "$dest" install --progress-bar off --no-deps --require-hashes --only-binary :all: -r "$dest/.pydeps-wheels.txt"
  ((${#names[@]} == 0)) || build_group "$build" "$lock" "$dest" "${names[@]}"
  run_pip "$out_dir/$group.check.log" "$dest" check
  echo "$key" > "$stamp"
  say "$group: ready in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }')"
}

# Resolves GROUP.in in a scratch venv (pip's report names each package, its version and the hash
# of the artifact it chose) and writes GROUP.lock from it. Needs the index.
lock_group() {
  group=$1
  if [[ -f $spec_dir/$group.sdist ]]; then
    lock_sdist
    return
  fi
  local in=$spec_dir/$group.in lock=$spec_dir/$group.lock scratch=$out_dir/.lock-$group build=$spec_dir/$group.build
  local list
  local -a sdists=()
  [[ -f $in ]] || die "no group '$group' (no $in)"
  check_in "$in"
  if [[ -f $build ]]; then
    list=$(build_names "$build")
    sdists=(--no-binary "${list//$'\n'/,}")
  fi
  need_python
  say "$group: resolving ${in#"$root"/}"
  rm -rf "$scratch"
  "$python" -m venv "$scratch" || die "group $group: $python -m venv $scratch failed"
  run_pip "$out_dir/$group.lock.log" "$scratch" install --progress-bar off --dry-run --ignore-installed --only-binary :all: \
    "${sdists[@]}" --report "$scratch/report.json" -r "$in"
  "$python" - "$scratch/report.json" "$in" "$group" "$python" > "$lock.tmp" <<'EOF'
import json, platform, re, sys
report, infile, group, python = sys.argv[1:5]
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
direct = set()
for line in open(infile):
    line = line.split("#", 1)[0].strip()
    if line:
        direct.add(norm(re.split(r"[\[=]", line, 1)[0]))
rows = []
for item in json.load(open(report))["install"]:
    meta, info = item["metadata"], item["download_info"]
    hashes = info.get("archive_info", {}).get("hashes") or {}
    if "sha256" not in hashes:
        sys.exit(f"pydeps: error: no sha256 for {meta['name']} ({info.get('url')})")
    rows.append((norm(meta["name"]), meta["version"], hashes["sha256"], not info["url"].endswith(".whl")))
print(f"# The whole dependency closure of {group}.in, pinned: written by `tools/pydeps.sh --lock {group}`,")
print(f"# not by hand. Hashes are those of the artifacts chosen for {python} (CPython")
print(f"# {platform.python_version()}, {platform.machine()}, glibc); `tools/pydeps.sh` installs exactly these.")
for name, version, sha, sdist in sorted(rows):
    notes = (["direct"] if name in direct else []) + ([f"sdist, built as {group}.build says"] if sdist else [])
    print(f"{name}=={version} --hash=sha256:{sha}" + ("  # " + "; ".join(notes) if notes else ""))
EOF
  mv "$lock.tmp" "$lock"
  rm -rf "$scratch"
  say "$group: wrote ${lock#"$root"/} ($(pins "$lock" | wc -l) packages)"
}

mode=install
if [[ ${1:-} == --lock ]]; then mode=lock; shift; [[ $# -gt 0 ]] || die "--lock needs a group name"; fi
# Whether GROUP's spec file carries the `# opt-in` marker line.
opt_in() {
  grep -qE '^#[[:space:]]*opt-in[[:space:]]*(:.*)?$' "$@" 2>/dev/null
}
if [[ $# -eq 0 ]]; then
  for spec in "$spec_dir"/*.in "$spec_dir"/*.sdist; do
    [[ -f $spec ]] || continue
    ! opt_in "$spec" || continue
    name=${spec##*/}
    set -- "$@" "${name%.*}"
  done
fi
mkdir -p "$out_dir"
# One run at a time over .build/pydeps: two `make` runs side by side wait for each other.
exec 9>"$out_dir/.lock"
flock 9
for g in "$@"; do
  "${mode}_group" "$g"
done
