"""The "Relevant" / "Not for me" links of a digest (issue 14): the digest's own web page
(``view_url``, the signed digest link) with the paper, the section and the vote as a query.

The query is the same for every reader of a paper in a section, so the email's rendering stays
shared between recipients: ``view_url`` is the only per-recipient part. Opening the link only
shows a page with a button (mail scanners follow every link); the button's POST records the
vote (digest/web/pages.py).

    vote_query("2611.00100", "segmentation", False) -> "?vote=2611.00100&topic=segmentation&v=no#vote"
"""
from __future__ import annotations

from urllib.parse import quote, urlencode

from digest.plan import ASK

PAPER, TOPIC, VALUE = "vote", "topic", "v"      # query names the page reads
ANCHOR = "vote"                                 # id of the confirmation box on the page
NOT_VOTABLE = ("trending",)                     # sections that are no topic: nothing to learn


def votable(section) -> bool:
    """Whether a section's papers carry vote links: topics and their "Is this <topic>?" questions."""
    section = str(section or "")
    return bool(section) and section not in NOT_VOTABLE and section != ASK


def vote_query(paper_id, section, relevant: bool) -> str:
    """The query and fragment that follow ``view_url`` in a vote link (the digest URL has none)."""
    query = urlencode({PAPER: str(paper_id), TOPIC: str(section), VALUE: "yes" if relevant else "no"}, quote_via=quote)
    return f"?{query}#{ANCHOR}"


def labels(section) -> tuple[str, str]:
    """The links' text: a question section is answered Yes / No, a topic section rated."""
    return ("Yes", "No") if str(section).startswith(ASK) else ("Relevant", "Not for me")
