"""Topics: which papers belong in which section.

Owns `topics.yaml` (`config`), words and stemming (`words`), the lexical matcher (`match`),
the optional sentence-embedding matcher (`semantic`), matching stored papers (`store`) and
`digest classify` (`classify`). May import `digest.store`.
"""
