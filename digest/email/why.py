"""The "Why" line of a paper in the reader's words, from the matcher's evidence labels.

Labels (digest/topics/match.py, semantic.py): a phrase found as written ("U-Net"), a phrase
found only loosely, its words apart or in another form ("~tumor segmentation"),
"category:eess.IV", "author:Olaf Ronneberger", "semantic:0.52 z=+3.1". Only exact phrases
are quoted; codes and scores never reach the reader.
"""
from __future__ import annotations

# arXiv category names (https://arxiv.org/category_taxonomy), the ones topics usually name
CATEGORY_NAMES = {
    "cs.AI": "Artificial Intelligence", "cs.CL": "Computation and Language", "cs.CV": "Computer Vision",
    "cs.LG": "Machine Learning", "cs.NE": "Neural and Evolutionary Computing", "cs.RO": "Robotics",
    "cs.IR": "Information Retrieval", "cs.HC": "Human-Computer Interaction", "cs.SD": "Sound",
    "cs.CR": "Cryptography and Security", "cs.DC": "Distributed Computing", "cs.GR": "Graphics",
    "cs.MM": "Multimedia", "cs.SE": "Software Engineering", "cs.CY": "Computers and Society",
    "eess.IV": "Image and Video Processing", "eess.AS": "Audio and Speech Processing",
    "eess.SP": "Signal Processing", "eess.SY": "Systems and Control", "stat.ML": "Machine Learning (Statistics)",
    "q-bio.QM": "Quantitative Methods", "q-bio.NC": "Neurons and Cognition", "q-bio.GN": "Genomics",
    "physics.med-ph": "Medical Physics", "math.OC": "Optimization and Control",
}


def _join(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def why_line(labels: list[str]) -> str:
    """One sentence, e.g. 'mentions “U-Net” and “tumor segmentation”; words related to organ
    segmentation; arXiv category Image and Video Processing; by Olaf Ronneberger'. "" if none."""
    exact, loose, cats, authors, semantic = [], [], [], [], False
    for label in labels:
        if label.startswith("category:"):
            code = label[9:].strip()
            name = CATEGORY_NAMES.get(code)
            cats.append(f"{name} ({code})" if name else code)
        elif label.startswith("author:"):
            authors.append(label[7:].strip())
        elif label.startswith("semantic:"):
            semantic = True
        elif label.startswith("~"):
            loose.append(label[1:].strip())
        elif label:
            exact.append(label)
    parts = []
    if exact:
        parts.append("mentions " + _join([f"“{p}”" for p in exact]))
    if loose:
        parts.append("words related to " + _join(loose))
    if semantic:
        parts.append("close in meaning to the topic")
    if cats:
        parts.append(("arXiv category " if len(cats) == 1 else "arXiv categories ") + _join(cats))
    if authors:
        parts.append("by " + _join(authors))
    return "; ".join(parts)
