#!/usr/bin/env bash
# Downloads Debian's cloud kernels for the QEMU kernel matrix (test/kernels) with apt-get download,
# through a private apt configuration (own sources list, lists and cache under .cache/kernels/apt):
# the host's apt state is never touched. Each package is unpacked with dpkg-deb -x into
# .cache/kernels/<suite>/ (boot/vmlinuz-*, boot/config-*, lib/modules/*). Cached: a suite whose
# .soload-stamp exists is skipped. Nothing but Debian packages is downloaded.
#   usage: fetch-kernels.sh [suite...]   (default: bullseye bookworm trixie)
# Prints one line per suite: <suite> <dir> <kernel release>.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${SOLOAD_KERNEL_CACHE:-$ROOT/.cache/kernels}"
MIRROR="${SOLOAD_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=(bullseye bookworm trixie)
APT="$CACHE/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial" "$APT/etc/preferences.d" "$APT/state"
log() { printf '[fetch-kernels] %s\n' "$*" >&2; }

opts=(-o "Dir::Etc::SourceList=$APT/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::Etc::Preferences=$APT/etc/preferences"
  -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d" -o "Dir::State::Lists=$APT/lists" -o "Dir::Cache=$APT/cache"
  -o "Dir::State::status=$APT/state/status" -o "APT::Architecture=amd64" -o "Debug::NoLocking=1")
touch "$APT/state/status" "$APT/etc/preferences"

need_update=0
for s in "${SUITES[@]}"; do [ -e "$CACHE/$s/.soload-stamp" ] || need_update=1; done
if [ "$need_update" = 1 ]; then
  : >"$APT/sources.list"
  for s in "${SUITES[@]}"; do
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $s main" >>"$APT/sources.list"
  done
  log "apt-get update (private lists in $APT)"
  apt-get "${opts[@]}" update >"$APT/update.log" 2>&1 || { tail -n 20 "$APT/update.log" >&2; exit 1; }
fi

for s in "${SUITES[@]}"; do
  dir="$CACHE/$s"
  if [ ! -e "$dir/.soload-stamp" ]; then
    # The metapackage's dependency names the suite's current versioned cloud kernel.
    pkg=$(apt-cache "${opts[@]}" show "linux-image-cloud-amd64/$s" 2>/dev/null | sed -n 's/^Depends: *//p' | head -n1 | tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep '^linux-image-' | head -n1)
    [ -n "$pkg" ] || { log "no linux-image-cloud-amd64 in $s"; exit 1; }
    # The -unsigned package carries the same image without the secure-boot signature wrapper.
    cand="$pkg"
    if apt-cache "${opts[@]}" show "$pkg-unsigned/$s" >/dev/null 2>&1; then cand="$pkg-unsigned"; fi
    log "$s: downloading $cand"
    rm -rf "$dir" && mkdir -p "$dir/debs"
    (cd "$dir/debs" && apt-get "${opts[@]}" download "$cand/$s" >"$dir/download.log" 2>&1) || { tail -n 20 "$dir/download.log" >&2; exit 1; }
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
    touch "$dir/.soload-stamp"
  fi
  if ! ls "$dir"/root/boot/vmlinuz-* >/dev/null 2>&1; then
    # the unpacked tree went missing (a cleaned cache): unpack the cached packages again
    log "$s: unpacking $(ls "$dir"/debs) again"
    rm -rf "$dir/root" "$dir/modules-plain"
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
  fi
  vmlinuz=$(ls "$dir"/root/boot/vmlinuz-* | head -n1)
  echo "$s $dir ${vmlinuz##*/vmlinuz-}"
done
