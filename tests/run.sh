#!/usr/bin/env bash
# The one command that runs the whole test suite on a fresh machine (README, and .ci/run):
# installs what the tests need (Debian chromium + ffmpeg, caddy + coturn + nftables for the
# namespace test, a virtualenv with the package and
# its test extras, every model), then runs pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${PROCTOR_SHARED_DIR:-$ROOT/../shared}
export PROCTOR_SHARED_DIR=$SHARED

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v ffmpeg >/dev/null 2>&1 || need_apt+=(ffmpeg)
# the bus-restart test starts (and stops) a redis-server of its own on a free port
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# Chinese text in the console screenshots (docs/screenshots) must not render as boxes
fc-list :lang=zh 2>/dev/null | grep -q . || need_apt+=(fonts-noto-cjk)
# the namespace test (issue 20): NAT, the reverse proxy, the TURN relay, a browser trust
# store for Caddy's internal CA, Redis for /health
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v caddy >/dev/null 2>&1 || need_apt+=(caddy)
command -v turnserver >/dev/null 2>&1 || need_apt+=(coturn)
command -v certutil >/dev/null 2>&1 || need_apt+=(libnss3-tools)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "== installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  python3 -m venv .venv
fi
echo "== installing the package with its test extras"
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'

echo "== preparing models (from $SHARED/models where present, else from their sources)"
export PROCTOR_TEST_MODELS_DIR=${PROCTOR_TEST_MODELS_DIR:-$HOME/.cache/proctor-test/models}
PROCTOR_MODELS_DIR=$PROCTOR_TEST_MODELS_DIR .venv/bin/proctor models prepare --from "$SHARED/models"

echo "== ruff"
.venv/bin/ruff check proctor exam_client models web_console benchmarks tests

echo "== pytest"
exec .venv/bin/python -m pytest "$@"
