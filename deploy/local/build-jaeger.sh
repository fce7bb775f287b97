#!/usr/bin/env bash
# Builds Jaeger VERSION (the v2 all-in-one `cmd/jaeger`) from the Go module proxy into OUTPUT.
#
# `cmd/jaeger` is an OpenTelemetry Collector distribution with Jaeger's storage and query
# extensions: OTLP receivers, in-memory storage, the query API. Its web UI is a separate JavaScript
# build that the module does not carry, so this binary serves a placeholder page at / and the full
# query API under /api (what the tests and Grafana's Jaeger datasource use).
#
# We fetch the module through the proxy and build its main package with the module's own go.mod
# and go.sum (-mod=mod: the zip has no vendor folder), stamping the version the way Jaeger's
# release build does. Needs Go >= 1.24.6 (the module's go line); GOTOOLCHAIN is left to the caller.
set -euo pipefail
version=$1
output=$2
module=github.com/jaegertracing/jaeger

echo "==> Jaeger $version from the Go module proxy into $(dirname "$output") (first time: about 10 minutes on 2 cores; 1.3 GB of Go modules)"
module_dir=$(go mod download -json "$module@$version" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$module_dir"/. "$work"
chmod -R u+w "$work"
mkdir -p "$(dirname "$output")"
ldflags="-s -w -X $module/internal/version.latestVersion=$version"
( cd "$work" && GOFLAGS="-mod=mod -buildvcs=false" go build -v -trimpath -ldflags "$ldflags" -o "$output.tmp" ./cmd/jaeger 2>&1 \
    | awk '/^go: downloading / { d++; if (d % 25 == 0) printf "    fetched %d modules (%s)\n", d, $3; fflush(); next }
           /^go: / { print "    " $0; fflush(); next }
           { n++; if (n % 100 == 0) printf "    compiled %d packages (%s)\n", n, $0; fflush() }' )
test -x "$output.tmp"
"$output.tmp" version 2>/dev/null | grep -o '"gitVersion":"[^"]*"' | sed 's/^/    built: /' || true
mv "$output.tmp" "$output"
