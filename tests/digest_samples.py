"""Digest contents for render/message/delivery tests: a realistic one and a hostile one."""
from __future__ import annotations

from datetime import date, datetime, timezone

from digest.email.content import DigestContent, PaperItem, Recipient, Section

EDITION = date(2026, 11, 21)

_TITLES = [
    "Sparse Mixture-of-Experts Adapters for Vision-Language Instruction Tuning",
    "Whole-Slide Image Retrieval with Hierarchical Contrastive Pretraining",
    "Token Merging Revisited: Faster Diffusion Transformers without Retraining",
    "A Benchmark for Grounded Chart Understanding in Multimodal Models",
    "Self-Supervised Stain Normalisation for Computational Pathology",
    "Calibrated Uncertainty for Open-Vocabulary Segmentation",
    "Scaling Laws for Video Tokenizers",
]
_ABSTRACT = (
    "We study how large multimodal models can be adapted to new visual domains with a small "
    "number of trainable parameters. Our method inserts sparse expert adapters between frozen "
    "layers and routes image and text tokens separately. Across eleven benchmarks it matches "
    "full fine-tuning while training 2% of the weights, and it transfers to medical imaging "
    "with no extra labels. We release code, checkpoints and a cleaned evaluation suite, and "
    "analyse failure cases on charts, documents and microscopy images in detail."
)
_AUTHORS = ["Ada Moreau", "Kenji Watanabe", "Priya Raman", "Tomás Ortega", "Lena Fischer"]
_TOPICS = [("vlm", "Vision-language models"), ("path", "Computational pathology"),
           ("diff", "Diffusion models")]


def paper(i: int, **over) -> PaperItem:
    pid = f"2611.{10000 + i:05d}"
    kw = dict(
        paper_id=pid,
        title=_TITLES[i % len(_TITLES)],
        url=f"https://arxiv.org/abs/{pid}",
        authors=_AUTHORS[: 2 + i % 4],
        abstract=_ABSTRACT,
        primary_category=["cs.CV", "eess.IV", "cs.LG"][i % 3],
        published=datetime(2026, 11, 20, 20, 0, tzinfo=timezone.utc),
        hf_upvotes=(None if i % 3 == 2 else 7 * i + 3),
        pdf_url=f"https://arxiv.org/pdf/{pid}",
        hf_url=(f"https://huggingface.co/papers/{pid}" if i % 2 == 0 else None),
        code_url=("https://github.com/example-lab/sparse-adapters" if i % 4 == 0 else None),
        matched=["vision-language", "adapter"][: 1 + i % 2],
        score=1.0 / (i + 1),
    )
    kw.update(over)
    return PaperItem(**kw)


def realistic(n_papers: int = 20, *, subscriber_id: int = 42, email: str = "ada@example.org",
              name: str | None = "Ada Moreau", more: int = 3, weekly: bool = False) -> DigestContent:
    sections = []
    per = [n_papers - 2 * (n_papers // 3), n_papers // 3, n_papers // 3]
    k = 0
    for (tid, tname), count in zip(_TOPICS, per):
        papers = [paper(k + j) for j in range(count)]
        k += count
        sections.append(Section(topic_id=tid, name=tname, papers=papers, more=more if tid == "vlm" else 0))
    return DigestContent(
        recipient=Recipient(subscriber_id=subscriber_id, email=email, name=name),
        edition=EDITION,
        sections=sections,
        weekly=weekly,
        unsubscribe_url=f"https://digest.example.org/unsubscribe/tok{subscriber_id}",
        preferences_url=f"https://digest.example.org/preferences/tok{subscriber_id}",
    )


SCRIPT = "<script>alert('pwned')</script>"
IMG = '"><img src=x onerror="window.__pwned=1">'
RTL = "نماذج اللغة والرؤية متعددة الوسائط"
EMOJI = "🧬🔬 Foundation models for 🩻 radiology 👩🏽‍🔬"


def hostile(n_papers: int = 200, abstract_bytes: int = 1_000_000) -> DigestContent:
    big = ("A" * 5000 + " lorem ipsum ") * (abstract_bytes // 5012 + 1)
    papers = []
    for i in range(n_papers):
        papers.append(PaperItem(
            paper_id=f"x{i}",
            title=[SCRIPT + " title", IMG, RTL, EMOJI, "Line\r\nBcc: victim@example.com"][i % 5] + f" #{i}",
            url=["javascript:window.__pwned=1", "https://arxiv.org/abs/2611.0001?a=1&b=\"2\"",
                 "data:text/html,<script>alert(1)</script>", " JaVaScRiPt:alert(1)",
                 "https://good.example/" + "p" * 3000][i % 5],
            authors=[SCRIPT, IMG, "\u202eevil\u202c", "x" * 100_000] * 3,
            abstract=big[:abstract_bytes],
            primary_category=IMG,
            published=datetime(2026, 11, 20),
            hf_upvotes=10**12 if i % 2 else -5,
            pdf_url="vbscript:msgbox(1)",
            hf_url="https://huggingface.co/papers/x" + IMG,
            code_url="javascript:alert(document.cookie)",
            matched=[SCRIPT, IMG, "\r\nX-Injected: 1"],
        ))
    return DigestContent(
        recipient=Recipient(subscriber_id=7, email="victim@example.com",
                            name="Eve\r\nBcc: everyone@example.com"),
        edition=EDITION,
        sections=[Section(topic_id="t1", name=SCRIPT + " topic\r\nX-Evil: 1", papers=papers[:150], more=5),
                  Section(topic_id="t2", name=RTL + " " + EMOJI, papers=papers[150:], more=0)],
        unsubscribe_url="javascript:alert(1)",
        preferences_url="https://digest.example.org/preferences/abc",
    )
