"""Client addresses as the limits count them (issue 17): one spelling per address, an
IPv6 /64 as one address, X-Forwarded-For parsed, and the per-address connection rate."""

from __future__ import annotations

import ipaddress

import pytest

from proxy.access import NotAnAddress, client_address, normalised_ip
from proxy.limits import ConnectionRate, counting_key

TRUSTED = (ipaddress.ip_network("10.1.2.0/24"), ipaddress.ip_network("fd00::/64"))


@pytest.mark.parametrize(
    "spelling",
    [
        "2001:db8::1",
        "2001:0db8:0000:0000:0000:0000:0000:0001",
        "2001:DB8::0:1",
        "[2001:db8::1]",
        " 2001:db8:0::1 ",
    ],
)
def test_every_spelling_of_an_ipv6_address_is_one_address(spelling: str) -> None:
    assert normalised_ip(spelling) == ipaddress.ip_address("2001:db8::1")
    assert client_address("10.1.2.3", spelling, TRUSTED) == ipaddress.ip_address("2001:db8::1")


@pytest.mark.parametrize(
    "mapped", ["::ffff:198.51.100.7", "::FFFF:c633:6407", "[::ffff:198.51.100.7]"]
)
def test_an_ipv4_mapped_ipv6_address_is_its_ipv4_address(mapped: str) -> None:
    assert normalised_ip(mapped) == ipaddress.ip_address("198.51.100.7")
    # ... as a forwarded hop and as the socket's own peer (a dual-stack listener).
    assert client_address("10.1.2.3", mapped, TRUSTED) == ipaddress.ip_address("198.51.100.7")
    assert client_address(mapped, None, ()) == ipaddress.ip_address("198.51.100.7")
    # A trusted proxy seen through a dual-stack socket is still trusted.
    assert client_address("::ffff:10.1.2.3", "203.0.113.9", TRUSTED) == ipaddress.ip_address(
        "203.0.113.9"
    )


def test_a_zone_id_is_dropped() -> None:
    assert normalised_ip("fe80::1%eth0") == ipaddress.ip_address("fe80::1")


@pytest.mark.parametrize(
    "hop",
    ["unknown", "example.com", "198.51.100.7:4711", "1.2.3", "::g", "<script>", "1.2.3.4.5"],
)
def test_a_forwarded_hop_that_is_not_an_ip_is_refused(hop: str) -> None:
    assert normalised_ip(hop) is None
    with pytest.raises(NotAnAddress):
        client_address("10.1.2.3", f"{hop}, 10.1.2.9", TRUSTED)


def test_garbage_left_of_the_deciding_hop_does_not_matter() -> None:
    # The client wrote "unknown"; the trusted proxy appended the real address.
    assert client_address("10.1.2.3", "unknown, 203.0.113.9", TRUSTED) == ipaddress.ip_address(
        "203.0.113.9"
    )


def test_forwarded_for_is_believed_only_from_a_trusted_peer() -> None:
    peer = ipaddress.ip_address("192.0.2.1")
    assert client_address("192.0.2.1", "203.0.113.9", TRUSTED) == peer
    assert client_address("192.0.2.1", "not an address", TRUSTED) == peer  # not even read
    assert client_address("10.1.2.3", None, TRUSTED) == ipaddress.ip_address("10.1.2.3")
    assert client_address("10.1.2.3", " , ", TRUSTED) == ipaddress.ip_address("10.1.2.3")
    # Every hop trusted: the leftmost.
    assert client_address("10.1.2.3", "10.1.2.7, 10.1.2.8", TRUSTED) == ipaddress.ip_address(
        "10.1.2.7"
    )


def test_ipv6_is_counted_by_its_prefix_and_ipv4_by_its_address() -> None:
    one = ipaddress.ip_address("2001:db8:1:2:aaaa::1")
    same_64 = ipaddress.ip_address("2001:db8:1:2:ffff:ffff:ffff:ffff")
    other_64 = ipaddress.ip_address("2001:db8:1:3::1")
    assert counting_key(one, 64) == counting_key(same_64, 64) == "2001:db8:1:2::/64"
    assert counting_key(other_64, 64) != counting_key(one, 64)
    assert counting_key(other_64, 48) == counting_key(one, 48) == "2001:db8:1::/48"
    assert counting_key(one, 128) == "2001:db8:1:2:aaaa::1"
    assert counting_key(ipaddress.ip_address("198.51.100.7"), 64) == "198.51.100.7"


def test_the_connection_rate_is_a_bucket_per_address() -> None:
    rate = ConnectionRate(2.0, 5)
    now = 100.0
    assert all(rate.admit("a", now) == 0.0 for _ in range(5))
    wait = rate.admit("a", now)
    assert wait == pytest.approx(0.5)  # one token every half second
    assert rate.admit("b", now) == 0.0  # another address has its own bucket
    assert rate.admit("a", now + 0.5) == 0.0
    assert rate.admit("a", now + 0.5) > 0


def test_churn_is_held_to_the_rate_over_time() -> None:
    rate = ConnectionRate(1.0, 20)
    admitted = sum(rate.admit("a", t / 100) == 0.0 for t in range(2000))  # 100/s for 20 s
    assert 20 + 19 <= admitted <= 20 + 20  # the burst, then one a second


def test_a_zero_rate_is_no_limit() -> None:
    rate = ConnectionRate(0.0, 1)
    assert all(rate.admit("a", 0.0) == 0.0 for _ in range(1000))
    assert len(rate) == 0


def test_the_rate_table_is_bounded_and_a_new_address_replaces_the_least_recent() -> None:
    rate = ConnectionRate(1.0, 2, max_tracked=100)
    for n in range(100):
        assert rate.admit(f"a{n}", 0.0) == 0.0
    assert rate.admit("a0", 0.1) == 0.0  # a0 seen again: a1 is now the least recent
    assert len(rate) == 100
    # Full, nothing refilled: every new address still gets its own burst.
    for n in range(50):
        assert [rate.admit(f"b{n}", 0.5) == 0.0 for _ in range(3)] == [True, True, False]
    assert len(rate) == 100
    assert rate.admit("a0", 0.5) > 0  # the recent ones kept their (spent) buckets
    # Refilled buckets are the same as new ones: dropped, and room is made.
    assert rate.admit("c", 10.0) == 0.0
    assert len(rate) <= 2
