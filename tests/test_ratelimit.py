"""The web rate limiter (issue 17 §4): a token bucket per key whose memory stays bounded and
whose idle keys go, and the client key (trusted proxies, IPv6 /64). Timings are in
bench/ratelimit.py, not here."""
from __future__ import annotations

import ipaddress

import pytest

from digest.web.ratelimit import RateLimiter, client_key, parse_proxies


def test_a_bucket_allows_its_limit_then_refills_with_time():
    rl = RateLimiter(5, 3600)
    assert [rl.hit("a", now=0) for _ in range(6)] == [True] * 5 + [False]
    assert rl.hit("b", now=0)                       # keys are independent
    assert not rl.hit("a", now=700)                 # 700 s refill 0.97 of a token
    assert rl.hit("a", now=730) and not rl.hit("a", now=731)
    assert [rl.hit("a", now=10_000) for _ in range(6)] == [True] * 5 + [False]


def test_memory_stays_bounded_however_many_keys():
    rl = RateLimiter(5, 3600, max_keys=1000)
    for i in range(150_000):
        rl.hit(f"k{i}", now=i * 0.001)
        assert len(rl) <= 1000
    assert rl.hit("k149999", now=150) and len(rl) <= 1000


def test_idle_keys_are_forgotten_as_new_ones_arrive():
    rl = RateLimiter(2, 60)
    for i in range(10_000):
        rl.hit(f"old{i}", now=0)
    for i in range(10_000):
        rl.hit(f"new{i}", now=61)                   # each hit drops up to two idle keys
    assert len(rl) == 10_000
    # a busy key is never dropped early: it stays limited
    rl2 = RateLimiter(3, 60, max_keys=100)
    assert [rl2.hit("busy", now=0) for _ in range(4)] == [True, True, True, False]
    for i in range(50):
        rl2.hit(f"other{i}", now=1)
    assert not rl2.hit("busy", now=2)


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        RateLimiter(0, 60)


NETS = parse_proxies("127.0.0.1, 10.0.0.0/8 ; ::1")


@pytest.mark.parametrize("peer, xff, proxies, expected", [
    ("203.0.113.5", ["198.51.100.1"], (), "203.0.113.5"),                  # default: header ignored
    ("127.0.0.1", ["198.51.100.1"], (), "127.0.0.1"),
    ("127.0.0.1", ["198.51.100.1"], NETS, "198.51.100.1"),
    ("127.0.0.1", ["6.6.6.6, 198.51.100.1"], NETS, "198.51.100.1"),        # the client's own claim is ignored
    ("127.0.0.1", ["6.6.6.6", "198.51.100.1, 10.1.2.3"], NETS, "198.51.100.1"),  # through two proxies
    ("127.0.0.1", ["garbage, 198.51.100.1"], NETS, "198.51.100.1"),
    ("127.0.0.1", [], NETS, "127.0.0.1"),
    ("203.0.113.5", ["198.51.100.1"], NETS, "203.0.113.5"),                # not a proxy: not believed
    ("2001:db8:1:2:aaaa::1", [], (), "2001:db8:1:2::/64"),                 # IPv6: one /64, one client
    ("::ffff:192.0.2.1", [], (), "192.0.2.1"),
    (None, [], (), "unknown"),
])
def test_client_key(peer, xff, proxies, expected):
    assert client_key(peer, xff, proxies) == expected


def test_a_bad_proxy_setting_names_the_entry():
    assert parse_proxies("") == ()
    assert parse_proxies("192.0.2.0/24")[0] == ipaddress.ip_network("192.0.2.0/24")
    with pytest.raises(ValueError, match="DIGEST_TRUSTED_PROXIES: 'proxy.local'"):
        parse_proxies("127.0.0.1, proxy.local")
