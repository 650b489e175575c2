"""Web: the pages `digest web` serves.

Owns the application and its routes (`app`: subscribe, confirm, preferences, unsubscribe),
a digest's own page with its vote buttons (`pages`), recording a reader's vote from it
(`votes`), the Atom feeds (`feeds`), the preferences form (`prefs`), the confirmation and
"already subscribed" mails (`mails`) and the per-client rate limiter (`ratelimit`). May
import `digest.subscribers`, `digest.tokens`, `digest.plan`, `digest.topics` (the current
topics, readers' votes), `digest.email`, `digest.delivery` and `digest.store`.
"""
