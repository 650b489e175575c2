"""Web: the pages `digest web` serves.

Owns the application and its routes (`app`: subscribe, confirm, preferences, unsubscribe),
a digest's own page (`pages`), the Atom feeds (`feeds`), the preferences form (`prefs`),
the confirmation and "already subscribed" mails (`mails`) and the per-client rate limiter
(`ratelimit`). May import `digest.subscribers`, `digest.tokens`, `digest.plan`,
`digest.topics`, `digest.email`, `digest.delivery` and `digest.store`.
"""
