"""Picks a matcher by name. It sits above both matchers so that neither imports the other."""
from __future__ import annotations

from digest.topics.config import TopicConfig
from digest.topics.match import Matcher


def make_matcher(config: TopicConfig, kind: str = "lexical"):
    """A matcher by name: ``lexical`` (:mod:`digest.topics.match`), ``semantic`` (lexical + sentence
    embeddings, see :mod:`digest.topics.semantic`) or ``semantic-only``. The semantic kinds need the
    optional ``semantic`` packages and raise ``digest.topics.semantic.SemanticUnavailable`` (a
    one-line message with the pip command) without them."""
    if (kind or "lexical").strip().lower() == "lexical":
        return Matcher(config)
    from digest.topics.semantic import make_matcher as _make

    return _make(config, kind)
