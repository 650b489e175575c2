"""What the email's vote links ("Relevant" / "Not for me") cost: per-recipient render + QP
encode time (render from the shared per-content cache, then both parts' quoted-printable
bytes, as the send does) and message size, with and without them, in the same run and the same code (the
"without" rows switch the links off). Every recipient has its own digest page URL; the content
is the same, so the render is shared and only the recipient's lines are filled and encoded.

    python -m bench.vote_links [--recipients 3000] [--papers 20] [--repeats 5] [--json bench/results/vote_links.json]
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path


from bench.common import OneLineParser  # noqa: E402
def run(recipients: int, papers: int, votes: bool) -> dict:
    from bench.common import make_settings
    from digest.email import render as render_mod
    from digest.email.message import qp_lines
    from digest.email.vote_links import votable
    from tests.digest_samples import realistic

    settings = make_settings({"database_url": "sqlite://", "DIGEST_FROM": "Paper Digest <digest@example.org>",
                              "DIGEST_PUBLIC_URL": "https://digest.example.org"})
    contents = []
    for i in range(recipients):
        c = realistic(papers, subscriber_id=i + 1, email=f"reader{i}@example.org")
        c.view_url = f"https://digest.example.org/digest/{i:060d}"
        c.cache_key = ("bench",)       # as digest.email.builder.ContentBuilder marks equal contents
        contents.append(c)
    render_mod.votable = votable if votes else (lambda section: False)
    try:
        r = render_mod.Renderer(settings)
        encode = qp_lines
        start = time.perf_counter()
        size = 0
        for c in contents:
            out = r.render(c)
            size += len(out.html_qp(encode)) + len(out.text_qp(encode))
        elapsed = time.perf_counter() - start
        sample = r.render(contents[0])
        return {"us_per_recipient": elapsed / recipients * 1e6, "qp_bytes": size // recipients,
                "html_bytes": len(sample.html.encode("utf-8")), "vote_links": sample.html.count("?vote=")}
    finally:
        render_mod.votable = votable


def main(argv=None) -> int:
    ap = OneLineParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipients", type=int, default=3000)
    ap.add_argument("--papers", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path, default=Path("bench/results/vote_links.json"))
    args = ap.parse_args(argv)
    variants = {"without vote links (baseline)": False, "with vote links": True}
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeats):            # interleaved: a busy machine slows both alike
        for name, votes in variants.items():
            runs[name].append(run(args.recipients, args.papers, votes))
    rows: dict[str, dict] = {}
    for name, got in runs.items():
        rows[name] = dict(got[0], us_per_recipient=round(statistics.median(r["us_per_recipient"] for r in got), 1))
    base, new = rows["without vote links (baseline)"], rows["with vote links"]
    print(f"{args.recipients} recipients of one {args.papers}-paper digest, median of {args.repeats} runs")
    print(f"{'':<32} {'µs/recipient':>13} {'QP bytes/msg':>13} {'HTML bytes':>11} {'vote links':>11}")
    for name, r in rows.items():
        print(f"{name:<32} {r['us_per_recipient']:>13.1f} {r['qp_bytes']:>13} {r['html_bytes']:>11} {r['vote_links']:>11}")
    ratio = new["us_per_recipient"] / base["us_per_recipient"]
    print(f"vote links: x{ratio:.2f} time per recipient, +{new['html_bytes'] - base['html_bytes']} HTML bytes")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"recipients": args.recipients, "papers": args.papers, "repeats": args.repeats,
                                     "rows": rows, "time_ratio": round(ratio, 3)}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
