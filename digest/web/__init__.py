"""Web: the pages `digest web` serves (subscribe, confirm, preferences, unsubscribe, a
digest's page with its vote buttons, topic pages).

May import `digest.subscribers`, `digest.tokens`, `digest.email`, `digest.delivery`,
`digest.topics` (the current topics, readers' votes) and `digest.store`.
"""
