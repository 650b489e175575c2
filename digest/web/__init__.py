"""Web: the pages `digest web` serves (subscribe, confirm, preferences, unsubscribe).

May import `digest.subscribers`, `digest.tokens`, `digest.email`, `digest.delivery` and
`digest.store`.
"""
