"""Rate limiter cost per request at 10 keys and at 100,000+ keys (issue 17 §4).

    .venv/bin/python -m bench.ratelimit [--keys 100000] [--repeats 7] [--out bench/results/ratelimit.json]

Both limiters are filled with N client keys, every key already over its limit (the case an
attacker makes: many clients, each refused), then timed on refused and on new-key requests.
"new" is digest/web/ratelimit.py (token bucket, O(1) per request); "old" is the sliding-window
deque limiter `digest web` used before, kept here as the baseline (it scanned every key on each
request once it held more than 100,000). Each figure is the median of --repeats timed runs (the
spread is printed too); memory is the limiter's own traced allocation.
"""
from __future__ import annotations

import gc
import json
import statistics
import sys
import threading
import time
import tracemalloc
from collections import defaultdict, deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from bench.common import OneLineParser  # noqa: E402

from digest.web.ratelimit import RateLimiter  # noqa: E402

LIMIT, WINDOW = 20, 3600.0


class OldRateLimiter:
    """The limiter of digest/web/app.py before issue 17 (baseline only)."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._hits: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def hit(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        with self._lock:
            q = self._hits[key]
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.limit:
                return False
            q.append(now)
            if len(self._hits) > 100_000:
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[k]
            return True


def filled(cls, keys: int):
    """A limiter holding ``keys`` keys, each at its limit; and its traced size in MB."""
    gc.collect()
    tracemalloc.start()
    rl = cls(LIMIT, WINDOW)
    now = 1000.0
    for i in range(keys):
        key = f"198.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        if isinstance(rl, OldRateLimiter):   # its state written directly: filling it through hit()
            rl._hits[key] = deque([now] * LIMIT)   # past 100k keys would take minutes
            continue
        for _ in range(LIMIT):
            rl.hit(key, now)
    size = tracemalloc.get_traced_memory()[0] / 1e6
    tracemalloc.stop()
    return rl, size


def per_request_us(rl, keys: int, requests: int, repeats: int, fresh: bool) -> tuple[float, float, float]:
    """Median, min and max microseconds per request over ``repeats`` runs."""
    runs = []
    now = 1001.0
    for r in range(repeats):
        if fresh:   # new clients, never seen: each run its own
            names = [f"2001:db8:{r}:{i}::/64" for i in range(requests)]
        else:       # known clients, all refused
            names = [f"198.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in (j * 7919 % keys for j in range(requests))]
        hit = rl.hit
        start = time.perf_counter()
        for name in names:
            hit(name, now)
        runs.append((time.perf_counter() - start) / requests * 1e6)
    return statistics.median(runs), min(runs), max(runs)


def main(argv=None) -> int:
    ap = OneLineParser(description=__doc__.split("\n")[0])
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ratelimit.json")
    args = ap.parse_args(argv)
    rows = []
    for name, cls in (("new", RateLimiter), ("old", OldRateLimiter)):
        for keys in (10, args.keys, args.keys + 1000):
            rl, mb = filled(cls, keys)
            for kind, fresh in (("refused", False), ("new key", True)):
                # the old limiter costs milliseconds per request once past 100k keys: fewer requests
                # there, and below it few enough new keys that the runs stay below 100k
                requests = 20_000 if name == "new" else 200 if keys >= 50_000 else 10_000 if fresh else 20_000
                med, lo, hi = per_request_us(rl, keys, requests, args.repeats, fresh)
                rows.append({"limiter": name, "keys": keys, "request": kind, "us_median": round(med, 3),
                             "us_min": round(lo, 3), "us_max": round(hi, 3), "requests": requests,
                             "keys_after": len(rl._buckets) if name == "new" else len(rl._hits),
                             "memory_mb": round(mb, 1)})
    base = {(r["limiter"], r["request"]): r["us_median"] for r in rows if r["keys"] == 10}
    print(f"{'limiter':8} {'keys':>8} {'request':8} {'us/req':>9} {'min':>8} {'max':>9} {'x 10 keys':>9} "
          f"{'MB':>7} {'keys after':>10}")
    for r in rows:
        r["ratio_to_10_keys"] = round(r["us_median"] / base[(r["limiter"], r["request"])], 2)
        print(f"{r['limiter']:8} {r['keys']:>8,} {r['request']:8} {r['us_median']:>9.3f} {r['us_min']:>8.3f} "
              f"{r['us_max']:>9.3f} {r['ratio_to_10_keys']:>9.2f} {r['memory_mb']:>7.1f} {r['keys_after']:>10,}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"limit": LIMIT, "window": WINDOW, "repeats": args.repeats, "rows": rows}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
