"""Personal order within a section, from a reader's own votes: papers like the ones they marked
"Relevant" move up, papers very close to one they marked "Not for me" drop out of the shown
ones (they are then counted in "N more"). Readers without votes get the shared order.

The planner calls :class:`PersonalOrder` (``plan_edition(..., personal=PersonalOrder())``):
``load`` once per batch of subscribers (one query), ``apply`` per subscriber's items."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select

from digest.store.models import Paper, Vote
from digest.topics.learn import text_vectors

LIKE = 0.5  # similarity to a liked paper that moves a paper up
DROP = 0.8  # similarity to a disliked paper that drops it (when closer to it than to any liked one)


class PersonalOrder:
    def __init__(self) -> None:
        self._votes: dict[int, tuple[list[str], list[str]]] = {}  # subscriber -> (liked, disliked) paper ids
        self._vectors: dict[str, Any] = {}
        self._session = None

    def load(self, session, subscriber_ids: list[int]) -> None:
        self._session = session
        self._votes = {}
        rows = session.execute(select(Vote.subscriber_id, Vote.paper_id, Vote.relevant)
                               .where(Vote.subscriber_id.in_(subscriber_ids))
                               .order_by(Vote.subscriber_id, Vote.paper_id)).all()
        for sid, pid, relevant in rows:
            liked, disliked = self._votes.setdefault(sid, ([], []))
            (liked if relevant else disliked).append(pid)

    def _vecs(self, ids: list[str]):
        missing = [p for p in dict.fromkeys(ids) if p not in self._vectors]
        if missing and self._session is not None:
            papers = self._session.scalars(select(Paper).where(Paper.id.in_(missing))).all()
            for paper, row in zip(papers, text_vectors(papers)):
                self._vectors[paper.id] = row
        return [self._vectors.get(p) for p in ids]

    def _closest(self, vec, others) -> float:
        best = 0.0
        for o in others:
            if vec is not None and o is not None:
                best = max(best, float(vec.multiply(o).sum()))
        return best

    def apply(self, subscriber_id: int, items: list) -> list:
        """The subscriber's items (PlannedItem-like: paper_id, section, position, shown) in their
        personal order; the same list when they never voted."""
        votes = self._votes.get(subscriber_id)
        if not votes:
            return items
        liked, disliked = self._vecs(votes[0]), self._vecs(votes[1])
        voted = set(votes[0]) | set(votes[1])
        out: list = []
        sections: dict[str, list] = {}
        for it in items:
            sections.setdefault(it.section, []).append(it)
        for section, group in sections.items():
            if section == "trending":
                out += group
                continue
            vecs = self._vecs([it.paper_id for it in group])
            keep, dropped = [], []
            for order, (it, vec) in enumerate(zip(group, vecs)):
                like, unlike = self._closest(vec, liked), self._closest(vec, disliked)
                if it.paper_id not in voted and unlike >= DROP and unlike > like:
                    dropped.append(it)
                    continue
                up = 1 if like >= LIKE and like > unlike else 0
                keep.append((-up, order, it))
            n_shown = sum(1 for it in group if it.shown)
            ranked = [it for _, _, it in sorted(keep, key=lambda k: (k[0], k[1]))]
            out += [replace(it, position=pos, shown=pos < n_shown) for pos, it in enumerate(ranked)]
            out += [replace(it, position=len(ranked) + k, shown=False) for k, it in enumerate(dropped)]
        return out
