"""Rate limits for the web pages: a token bucket per key, in memory (one process).

Each key holds ``limit`` tokens that refill at ``limit / window`` per second; a request takes
one. Work per request is O(1) whatever the number of keys: one dict lookup, one move to the end
of an insertion-ordered dict, and at most ``_EVICT_PER_HIT`` evictions from its front. The front
holds the keys hit longest ago; a key idle for a whole window has a full bucket again, so
forgetting it changes nothing. Memory is bounded by ``max_keys`` (the least recently hit key
goes first when full).

Client keys: X-Forwarded-For is believed only from configured proxies (DIGEST_TRUSTED_PROXIES);
an IPv6 client counts as its /64, the block one subscriber line usually gets.
"""
from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict

from digest.store.settings import parse_networks

_EVICT_PER_HIT = 2
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RateLimiter:
    def __init__(self, limit: int, window: float, max_keys: int = 200_000):
        if limit < 1 or window <= 0 or max_keys < 1:
            raise ValueError("limit and max_keys must be >= 1, window > 0")
        self.limit, self.window, self.max_keys = limit, float(window), max_keys
        self._rate = limit / float(window)
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()  # key -> [tokens, last hit]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def hit(self, key: str, now: float | None = None) -> bool:
        """Count one request for ``key``; False when it is over the limit (nothing taken then)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            buckets = self._buckets
            bucket = buckets.get(key)
            if bucket is None:
                bucket = buckets[key] = [float(self.limit), now]
            else:
                bucket[0] = min(float(self.limit), bucket[0] + (now - bucket[1]) * self._rate)
                bucket[1] = now
                buckets.move_to_end(key)
            allowed = bucket[0] >= 1.0
            if allowed:
                bucket[0] -= 1.0
            for _ in range(_EVICT_PER_HIT):
                oldest_key, oldest = next(iter(buckets.items()))
                if oldest_key == key or (oldest[1] > now - self.window and len(buckets) <= self.max_keys):
                    break
                buckets.popitem(last=False)
            return allowed


def parse_proxies(value: str) -> tuple[Network, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> networks; ValueError naming a bad entry."""
    try:
        return parse_networks(value)
    except ValueError as exc:
        raise ValueError(f"DIGEST_TRUSTED_PROXIES: {exc}") from None


def _ip(value: str):
    try:
        return ipaddress.ip_address(value.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(addr, proxies: tuple[Network, ...]) -> bool:
    return addr is not None and any(addr in net for net in proxies)


def client_key(peer: str | None, forwarded_for: list[str], proxies: tuple[Network, ...]) -> str:
    """The rate-limit key of a request from ``peer`` carrying these X-Forwarded-For headers.

    Only when the peer is a trusted proxy is X-Forwarded-For read, from the right: the first
    address not itself a trusted proxy is the client (what a client wrote further left is its
    own claim and is ignored)."""
    addr = _ip(peer or "")
    if _trusted(addr, proxies):
        hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
        for hop in reversed(hops):
            hop_addr = _ip(hop)
            if hop_addr is None:
                break        # garbage from here on is the client's own: the last proxy saw this peer
            addr = hop_addr
            if not _trusted(hop_addr, proxies):
                break
    if addr is None:
        return peer or "unknown"
    if addr.version == 6:
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)
