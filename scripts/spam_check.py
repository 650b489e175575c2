"""SpamAssassin's verdict on the quick-start digests and a confirmation email, with a
production-like config (https public URL, a real From domain).

    .venv/bin/python scripts/spam_check.py [--json FILE] [--keep DIR]

Runs the quick start (sample listings, sample subscribers, send-now to a file outbox) and a
subscribe request through the web app (its confirmation email lands in the same outbox), in a
temporary folder, then `spamassassin -L -t` (local tests only: no network) on every message.
Prints each message's score and the rules that fired, with their exact scores; exit 1 when
any rule with a positive score fires (except those in ALLOWED, each with its reason), 2 when
spamassassin is not installed (`apt-get install spamassassin`).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PRODUCTION_LIKE = {
    "DIGEST_PUBLIC_URL": "https://digest.example.org",
    "DIGEST_FROM": "Paper Digest <digest@example.org>",
    "DIGEST_LIST_ID": "papers.digest.example.org",
    "DIGEST_SECRET_KEY": "a-production-like-secret-of-some-length-0123456789",
}
# Rules with a positive score that are allowed, and why. Everything else above 0 fails.
ALLOWED = {"HTML_MESSAGE": "informational (0.001): fires on every message with an HTML part"}
_TESTS_HEADER = "add_header all Tests _TESTSSCORES(,)_"   # exact scores; the -t table rounds to 0.1


def rules_fired(output: str) -> list[tuple[float, str]]:
    """(score, rule) pairs from the X-Spam-Tests header that _TESTSSCORES(,)_ writes."""
    m = re.search(r"^X-Spam-Tests: (.*(?:\n[ \t].*)*)", output, re.M)
    if not m:
        return []
    out = []
    for item in re.sub(r"\s+", "", m.group(1)).split(","):
        rule, _, score = item.partition("=")
        if rule and rule != "none":
            out.append((float(score), rule))
    return out


def make_messages(workdir: Path) -> list[Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(PRODUCTION_LIKE)
    env.update({"DIGEST_DATABASE_URL": f"sqlite:///{workdir}/digest.db", "DIGEST_DATA_DIR": str(workdir),
                "DIGEST_DELIVERY": f"file://{workdir}/outbox", "DIGEST_CONFIG_DIR": str(REPO / "config")})
    digest = [sys.executable, "-m", "digest.cli.main"]
    for args in (["subscribers", "import", str(REPO / "config/sample-subscribers.csv")], ["send-now"]):
        subprocess.run(digest + args, env=env, cwd=REPO, check=True, capture_output=True, text=True)
    # a confirmation email: a subscribe request through the web app
    code = (
        "import re; from starlette.testclient import TestClient;"
        "from digest.store.settings import Settings; from digest.web.app import create_app;"
        "c = TestClient(create_app(Settings()), base_url='https://digest.example.org');"
        "t = re.search(r'name=\"csrf_token\" value=\"([0-9a-f]+)\"', c.get('/subscribe').text).group(1);"
        "r = c.post('/subscribe', data={'csrf_token': t, 'email': 'new.reader@example.com', 'name': 'Grace',"
        "'topics': ['vision-language'], 'timezone': 'UTC'}); assert r.status_code == 200, r.text")
    topics = (REPO / "config/topics.yaml").read_text(encoding="utf-8")
    first = re.search(r"-\s*id:\s*([a-z0-9-]+)", topics).group(1)
    subprocess.run([sys.executable, "-c", code.replace("vision-language", first)], env=env, cwd=REPO, check=True,
                   capture_output=True, text=True)
    return sorted((workdir / "outbox").rglob("*.eml"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--keep", type=Path, help="copy the messages here")
    args = ap.parse_args(argv)
    if shutil.which("spamassassin") is None:
        print("spamassassin is not installed (apt-get install -y spamassassin)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        messages = make_messages(Path(tmp))
        for path in messages:
            result = subprocess.run(["spamassassin", "-L", f"--cf={_TESTS_HEADER}"], input=path.read_bytes(),
                                    capture_output=True)
            report = result.stdout.decode("utf-8", "replace")
            score = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", report, re.M)
            rows.append({"message": str(path.relative_to(tmp)), "score": float(score.group(1)) if score else None,
                         "rules": [{"rule": r, "score": s} for s, r in rules_fired(report)]})
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, args.keep / path.name)
    print(f"{'message':<58} {'score':>6}  rules fired")
    for r in rows:
        fired = ", ".join(f"{x['rule']} {x['score']:+g}" for x in r["rules"])
        print(f"{r['message'][-58:]:<58} {r['score'] if r['score'] is not None else '?':>6}  {fired}")
    positive = [(r["message"], x["rule"]) for r in rows for x in r["rules"]
                if x["score"] > 0 and x["rule"] not in ALLOWED]
    print(f"{len(rows)} messages; rules with a positive score: {len(positive)} "
          f"(allowed: {'; '.join(f'{k} {v}' for k, v in ALLOWED.items())})")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 1 if positive or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
