#!/usr/bin/env bash
# From a fresh clone: set up, then run the main job on the embedded defaults
# (SQLite under ./var, bundled sample listings, sample subscribers, delivery to ./var/outbox).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .

.venv/bin/digest topics check
.venv/bin/digest subscribers import config/sample-subscribers.csv
.venv/bin/digest send-now
echo
echo "Digests written to $(pwd)/var/outbox/ — open one of these in a browser:"
find var/outbox -name '*.html' | sort | sed 's/^/  /'
