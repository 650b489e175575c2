"""``python -m bench``: the scale benchmark (see bench/scale.py)."""
import sys

from bench.scale import main

if __name__ == "__main__":
    sys.exit(main())
