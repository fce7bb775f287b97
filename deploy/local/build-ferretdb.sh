#!/usr/bin/env bash
# Builds FerretDB VERSION from the Go module proxy into OUTPUT (a per-user cache path).
#
# `go install github.com/FerretDB/FerretDB/cmd/ferretdb@VERSION` compiles, but the binary panics at
# start-up: the module zip lacks build/version/version.txt, which FerretDB's own release build
# generates from git. So we fetch the same module through the proxy, write that file, and build the
# same main package from it, with the module's own go.mod and go.sum.
#
# Before building, the patches in deploy/local/patches/ferretdb-*.patch are applied (`_id` lookups
# that use the `_id` index, atomic document updates, no leak tracking in release builds; see each
# patch's comments and the README's "Store" section for why and what they change). The Makefile
# keys the cache by this script and those patches.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
version=$1
output=$2

echo "==> FerretDB $version from the Go module proxy into $(dirname "$output") (first time: 2-4 minutes)"
module_dir=$(go mod download -json "github.com/FerretDB/FerretDB@$version" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$module_dir"/. "$work"
chmod -R u+w "$work"
echo "$version" > "$work/build/version/version.txt"
for patch_file in "$here"/patches/ferretdb-*.patch; do
  echo "    applying $(basename "$patch_file")"
  patch --quiet --forward --strip=1 --directory="$work" < "$patch_file"
done
mkdir -p "$(dirname "$output")"
( cd "$work" && go build -v -o "$output.tmp" ./cmd/ferretdb 2>&1 \
    | awk '{ n++; if (n % 25 == 0) printf "    compiled %d packages (%s)\n", n, $0 }' )
test -x "$output.tmp"
"$output.tmp" --version | head -1 | sed 's/^/    built: /'
mv "$output.tmp" "$output"
