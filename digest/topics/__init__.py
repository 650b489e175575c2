"""Topics: which papers belong in which section.

Owns `topics.yaml` (`config`) and the last valid copy of it (`current`), words and stemming
(`words`), the lexical matcher (`match`), the optional sentence-embedding matcher
(`semantic`), the matcher a config asks for (`matchers`), matching stored papers (`store`),
`digest classify` (`classify`), readers' votes (`votes`), the model learned from them and
the admin's examples (`learn`, stored by `learn_store`), a reader's own order within a
section (`personal`) and `digest topics report` (`report`). May import `digest.store`.
"""
