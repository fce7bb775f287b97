#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's package `prometheus` when either is missing.
#
# The stack runs the binary itself (our config, data under .local/ or a test's temp folder), never
# the system service; so a service the package's install script started is stopped and disabled
# again, leaving port 9090 to `make run`.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
sudo=()
if [ "$(id -u)" != 0 ]; then sudo=(sudo); fi
install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends prometheus 2>&1 \
    | grep --line-buffered -E '^(Get:|Unpacking|Setting up|E:)' | sed -u 's/^/    /'
  return "${PIPESTATUS[0]}"
}
echo "==> Prometheus from Debian's packages (apt-get install prometheus; first time: about 30 MB)"
if ! install; then
  echo "    install failed; refreshing the package lists (apt-get update) and trying again"
  "${sudo[@]}" apt-get update -q | sed -u 's/^/    /'
  install
fi
if [ -d /run/systemd/system ] && systemctl is-active --quiet prometheus 2>/dev/null; then
  echo "    stopping and disabling the system service the package started (we run our own)"
  "${sudo[@]}" systemctl disable --now prometheus
fi
prometheus --version 2>&1 | head -1 | sed 's/^/    installed: /'
