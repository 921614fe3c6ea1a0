#!/usr/bin/env bash
# Provide CPython 3.13, built from Debian's source package, in a cache directory.
# Prints the interpreter's path on its last line. Reuses a previous build when present.
#
#   scripts/provide-python313.sh            # build (once) and print the path
#   FERROTRACE_CACHE=/some/dir scripts/...  # choose the cache directory
set -euo pipefail

cache="${FERROTRACE_CACHE:-$HOME/.cache/ferrotrace}"
prefix="$cache/cpython-3.13"
python="$prefix/bin/python3.13"

if [ -x "$python" ] && "$python" -c 'import ssl, sqlite3, test.libregrtest' 2>/dev/null; then
    echo "$python"
    exit 0
fi

log() { echo "provide-python313: $*" >&2; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# A deb-src entry for trixie that reuses the mirror this machine's apt already uses.
src_list=/etc/apt/sources.list.d/ferrotrace-trixie-src.sources
if [ ! -f "$src_list" ]; then
    uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk '/^URIs:/ {print $2; exit}' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { log "cannot find the apt mirror in /etc/apt/sources*"; exit 1; }
    log "adding deb-src for trixie from $uri"
    printf 'Types: deb-src\nURIs: %s\nSuites: trixie\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$uri" | sudo_ tee "$src_list" >/dev/null
fi

log "installing build dependencies"
sudo_ apt-get update -qq
sudo_ env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    dpkg-dev build-essential pkg-config xz-utils \
    libssl-dev zlib1g-dev libffi-dev libbz2-dev liblzma-dev libsqlite3-dev \
    libreadline-dev libncurses-dev uuid-dev libgdbm-dev >/dev/null

work="$cache/src-3.13"
rm -rf "$work"
mkdir -p "$work"
cd "$work"
log "downloading the python3.13 source package"
apt-get source --download-only python3.13 >/dev/null
# Upstream's tarball only: Debian's patches change install layouts we do not want.
orig=$(ls python3.13_*.orig.tar.* | head -n 1)
tar -xf "$orig"
srcdir=$(find . -maxdepth 1 -type d -name 'Python-3.13*' | head -n 1)
[ -n "$srcdir" ] || { log "no Python-3.13 directory in $orig"; exit 1; }
cd "$srcdir"

log "configure and make (a few minutes)"
./configure --prefix="$prefix" --with-ensurepip=install >configure.log 2>&1 \
    || { tail -n 30 configure.log >&2; exit 1; }
make -j"$(nproc)" >make.log 2>&1 || { tail -n 30 make.log >&2; exit 1; }
make install >install.log 2>&1 || { tail -n 30 install.log >&2; exit 1; }
cd "$cache"
rm -rf "$work"

"$python" -c 'import ssl, sqlite3, test.libregrtest' \
    || { log "the built interpreter is incomplete"; exit 1; }
echo "$python"
