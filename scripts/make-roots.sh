#!/usr/bin/env bash
# Builds the foreign Debian root file systems that the recall corpus (test/recall, `npm run
# recall:roots`) and the container tests run programs in. Git-ignored, cached, needs root:
#   .cache/roots/bullseye   Debian 11 minbase, glibc 2.31 (dlopen lives in libdl.so.2)
#   .cache/roots/trixie     Debian 13 minbase, glibc 2.41
#   .cache/debug/<root>/    that root's libc6-dbg, unpacked here (for a debuginfod in the tests);
#                           never installed inside the root, so the root has no local debug files
# Each root also gets the root's own `gcc` and `libc6-dev` (installed by the root's apt, inside the
# root): the corpus is compiled *inside* the root by the root's compiler against the root's glibc
# (test/recall/corpus.ts does that, into <root>/opt/soload-recall/, at every harness run; this
# script builds no program). Host-compiled binaries would not do: they need GLIBC_2.34 symbols and
# do not run on 2.31.
# The host gets musl-tools (musl-gcc) for the musl rows of the recall corpus, and debootstrap /
# debuginfod.
#
# Downloads are cached outside the clone, in /var/cache/soload-debootstrap/<suite>
# ($SOLOAD_DEBOOTSTRAP_CACHE): debootstrap's --cache-dir, the libc6-dbg .deb, and the .debs of the
# in-root gcc install (apt-archives/), so a second CI run or a --force rebuild on the same machine
# downloads nothing but the package indexes.
#
# Idempotent: each step leaves a stamp in the root (.soload-stamp = debootstrap + libc6-dbg done,
# .soload-stamp-gcc = gcc + libc6-dev installed); a stamped step is skipped, so a second run only
# checks the stamps. A root without .soload-stamp (an interrupted run) is rebuilt from scratch.
# `--force` rebuilds every root. Any failure stops the script with the failing step's output
# (each step's full log stays in .cache/make-roots-<step>.log). $SOLOAD_CACHE puts roots, debug
# files and logs somewhere else than .cache (test/helpers/roots.ts only knows .cache: for
# measuring a cold build without touching the roots in use).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SOLOAD_CACHE:-$ROOT/.cache}"
ROOTS="$CACHE/roots"
DEBUG="$CACHE/debug"
DEBS="${SOLOAD_DEBOOTSTRAP_CACHE:-/var/cache/soload-debootstrap}"
MIRROR="${SOLOAD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
FORCE="${1:-}"
SUITES=(bullseye trixie)
export DEBIAN_FRONTEND=noninteractive
log() { printf '[make-roots] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"
case "$FORCE" in "" | --force) ;; *) die "usage: $0 [--force]" ;; esac

# Runs "$@" with its output in $CACHE/<step>.log; on failure prints the log's tail and stops.
step() {
  local name="$1"
  shift
  local out="$CACHE/make-roots-$name.log"
  if ! "$@" >"$out" 2>&1; then
    log "step $name failed ($*); last lines of $out:"
    tail -n 30 "$out" >&2
    exit 1
  fi
}

need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  log "installing $2 on the host"
  mkdir -p "$CACHE"
  apt-get install -y "$2" >"$CACHE/make-roots-apt-$2.log" 2>&1 || step "apt-$2" sh -c "apt-get update && apt-get install -y '$2'"
}
need debootstrap debootstrap
need debuginfod debuginfod
need musl-gcc musl-tools

# Never delete a root that something still has mounted (a proc or overlay of a test that did not
# clean up): rm -rf would walk into the mount.
unmounted() {
  if findmnt -rn -o TARGET | grep -qF "$1"; then
    findmnt -rn -o TARGET | grep -F "$1" >&2
    die "$1 has mounts under it (listed above): unmount them first"
  fi
}

# chroot <root> "$@" with the root's /proc mounted, in a private mount namespace (the mount goes
# away with it; apt and dpkg want /proc).
in_root() {
  local dir="$1"
  shift
  unshare --mount --propagation private --mount-proc="$dir/proc" chroot "$dir" "$@"
}

mkdir -p "$ROOTS" "$DEBUG"
for suite in "${SUITES[@]}"; do
  dir="$ROOTS/$suite"
  if [ "$FORCE" = --force ] || [ ! -f "$dir/.soload-stamp" ]; then
    unmounted "$dir"
    rm -rf "$dir" "$DEBUG/$suite"
    mkdir -p "$DEBS/$suite"
    log "debootstrap $suite (minbase) into $dir"
    step "debootstrap-$suite" debootstrap --variant=minbase --cache-dir="$DEBS/$suite" "$suite" "$dir" "$MIRROR"
    # the root's apt needs a resolver (debootstrap leaves the host's copy only while it runs)
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    # The root's own libc6-dbg (its apt picks the version that matches its libc), kept outside
    # the root: downloaded once into the cache, unpacked into .cache/debug/<suite>.
    libc_version="$(chroot "$dir" dpkg-query -W -f='${Version}' libc6)"
    deb="$DEBS/$suite/libc6-dbg_${libc_version//:/%3a}_amd64.deb"
    if [ ! -f "$deb" ]; then
      log "downloading libc6-dbg $libc_version for $suite"
      step "libc6-dbg-$suite" in_root "$dir" sh -c 'apt-get update && cd /tmp && apt-get download libc6-dbg'
      mv "$dir"/tmp/libc6-dbg_*.deb "$deb"
    fi
    mkdir -p "$DEBUG/$suite"
    dpkg-deb -x "$deb" "$DEBUG/$suite"
    touch "$dir/.soload-stamp"
  fi

  if [ ! -f "$dir/.soload-stamp-gcc" ]; then
    log "installing gcc libc6-dev inside $suite"
    cp /etc/resolv.conf "$dir/etc/resolv.conf"
    # reuse the .debs of an earlier install (apt checks them against the fresh index); debootstrap's
    # own .debs are dropped first (they are in its --cache-dir already)
    in_root "$dir" apt-get clean
    mkdir -p "$DEBS/$suite/apt-archives"
    find "$DEBS/$suite/apt-archives" -name '*.deb' -exec cp -t "$dir/var/cache/apt/archives/" {} +
    step "gcc-$suite" in_root "$dir" sh -c 'apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev'
    find "$dir/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -exec cp -t "$DEBS/$suite/apt-archives/" {} +
    in_root "$dir" apt-get clean
    # a compiler that works, and no debug symbols in the root
    printf 'int main(void){return 0;}\n' >"$dir/tmp/soload-cc-check.c"
    step "gcc-check-$suite" in_root "$dir" gcc -o /tmp/soload-cc-check /tmp/soload-cc-check.c
    step "gcc-check-run-$suite" in_root "$dir" /tmp/soload-cc-check
    rm -f "$dir/tmp/soload-cc-check" "$dir/tmp/soload-cc-check.c"
    if [ -d "$dir/usr/lib/debug/.build-id" ]; then die "$suite has debug files in /usr/lib/debug/.build-id: the root must have none"; fi
    touch "$dir/.soload-stamp-gcc"
  fi
done
log "roots ready: ${SUITES[*]} (in $ROOTS; debug symbols in $DEBUG)"
