#!/usr/bin/env bash
# Builds the real components the integration tests (and local users) run:
#   .cache/otelcol/otelcol-soload   OpenTelemetry Collector, from collector/builder-config.yaml via ocb
#   .cache/bin/victoria-logs        VictoriaLogs single binary
#   .cache/bin/builder              ocb (OpenTelemetry Collector Builder) itself
# Everything comes from the Go module proxy (no other downloads); needs only Go (>= 1.26).
# Idempotent: a stamp file records a hash of the manifest + the pinned versions + Go version;
# when the binaries exist and the stamp matches, it exits 0 at once (`--force` rebuilds).
# Go's module and build caches (GOMODCACHE, GOCACHE; default ~/go/pkg/mod, ~/.cache/go-build)
# persist between runs, so a rebuild after `rm -rf .cache` is mostly linking.
set -euo pipefail

OCB_VERSION="v0.161.0"              # must equal the release pinned in collector/builder-config.yaml
VICTORIALOGS_MODULE="github.com/VictoriaMetrics/VictoriaLogs"
VICTORIALOGS_VERSION="v1.52.1"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MANIFEST="collector/builder-config.yaml"
CACHE="$ROOT/.cache"
BIN="$CACHE/bin"
OTELCOL="$CACHE/otelcol/otelcol-soload"
VLOGS="$BIN/victoria-logs"
STAMP="$CACHE/otelcol/.build-stamp"

log() { printf '[build-collector] %s\n' "$*" >&2; }
die() { printf '[build-collector] ERROR: %s\n' "$*" >&2; exit 1; }
trap 'rc=$?; [ $rc -eq 0 ] || printf "[build-collector] FAILED (exit %s): integration tests cannot run without these binaries\n" "$rc" >&2' EXIT

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; else die "go not found on PATH (need Go >= 1.26)"; fi
fi
[ -f "$MANIFEST" ] || die "missing $MANIFEST"
grep -q "$OCB_VERSION" "$MANIFEST" || die "$MANIFEST does not pin $OCB_VERSION (OCB_VERSION in $0): keep them in sync"

hash_inputs() {
  { cat "$MANIFEST"; echo "ocb=$OCB_VERSION vlogs=$VICTORIALOGS_MODULE@$VICTORIALOGS_VERSION cgo=0"; go env GOVERSION; } | sha256sum | cut -d' ' -f1
}
WANT="$(hash_inputs)"
FORCE=0; [ "${1:-}" = "--force" ] && FORCE=1
if [ "$FORCE" = 0 ] && [ -x "$OTELCOL" ] && [ -x "$VLOGS" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  log "up to date: $OTELCOL, $VLOGS (stamp $WANT)"
  exit 0
fi

export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:-$(go env GOFLAGS)} -buildvcs=false"   # .cache/otelcol sits inside this git repo
export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"   # never fetch another toolchain implicitly
mkdir -p "$BIN" "$CACHE/otelcol"
rm -f "$STAMP"
log "$(go version); GOMODCACHE=$(go env GOMODCACHE) GOCACHE=$(go env GOCACHE) GOPROXY=$(go env GOPROXY)"

start=$(date +%s)
log "installing ocb: go install go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION -> $BIN"
GOBIN="$BIN" go install "go.opentelemetry.io/collector/cmd/builder@$OCB_VERSION" || die "go install builder@$OCB_VERSION failed"

# ocb writes the sources and go.mod, then runs `go mod tidy`, which also resolves the
# *test* imports of every component. k8sattributesprocessor's tests import
# contrib pkg/semconvtest, which the module proxy here does not serve at any version (403),
# so tidy cannot succeed although nothing the binary links is missing. So ocb only
# generates (its go.mod pins every component and the core release), and the binary is
# built with `go build -mod=mod`, which resolves exactly the packages the binary imports:
# a dependency that is really missing still fails the build below, loudly.
OUT="$(dirname "$OTELCOL")"
log "generating Collector sources: $BIN/builder --config $MANIFEST --skip-compilation -> $OUT"
rm -f "$OUT/go.mod" "$OUT/go.sum"
if ! "$BIN/builder" --config "$MANIFEST" --skip-compilation >"$CACHE/otelcol/ocb.log" 2>&1; then
  [ -f "$OUT/go.mod" ] && [ -f "$OUT/components.go" ] || { cat "$CACHE/otelcol/ocb.log" >&2; die "ocb failed for $MANIFEST before writing sources"; }
  log "ocb's go mod tidy failed (expected: test-only dependencies the proxy does not serve); last lines:"
  tail -n 3 "$CACHE/otelcol/ocb.log" | cut -c1-300 >&2
fi
log "building Collector: go build -mod=mod in $OUT"
( cd "$OUT" && go build -mod=mod -trimpath -ldflags="-s -w" -o "$(basename "$OTELCOL")" . ) || die "go build of the generated Collector failed"
for pin in "go.opentelemetry.io/collector/otelcol $OCB_VERSION"; do
  got="$(cd "$OUT" && go list -m ${pin%% *} | cut -d' ' -f2)"
  [ "$got" = "${pin##* }" ] || die "${pin%% *} resolved to $got, not ${pin##* } (the manifest pins one release)"
done
[ -x "$OTELCOL" ] || die "ocb finished but $OTELCOL is missing (check dist.output_path/name in $MANIFEST)"
"$OTELCOL" components >/dev/null || die "$OTELCOL does not run"
log "collector built in $(( $(date +%s) - start ))s: $("$OTELCOL" components 2>&1 | grep -m1 'version:')"

vstart=$(date +%s)
log "installing VictoriaLogs: go install $VICTORIALOGS_MODULE/app/victoria-logs@$VICTORIALOGS_VERSION -> $BIN"
GOBIN="$BIN" go install "$VICTORIALOGS_MODULE/app/victoria-logs@$VICTORIALOGS_VERSION" || die "go install victoria-logs@$VICTORIALOGS_VERSION failed"
[ -x "$VLOGS" ] || die "go install finished but $VLOGS is missing"
"$VLOGS" -version >/dev/null 2>&1 || die "$VLOGS does not run"
log "victoria-logs $VICTORIALOGS_VERSION built in $(( $(date +%s) - vstart ))s"

echo "$WANT" > "$STAMP"
log "done in $(( $(date +%s) - start ))s"
