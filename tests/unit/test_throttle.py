"""The rate limit on what strangers can trigger: a burst, then a trickle, per key."""

from bootstrap.throttle import Throttle


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_burst_then_rate_per_key():
    clock = Clock()
    throttle = Throttle(rate=2.0, burst=3, clock=clock)
    assert [throttle.allow("untrusted-relay", "192.0.2.1") for _ in range(5)] == [
        True, True, True, False, False]
    assert throttle.allow("untrusted-relay", "192.0.2.2")     # another source has its own bucket
    assert throttle.allow("unknown-location", "192.0.2.1")    # and another kind
    clock.now = 0.5                                           # one token back at 2/s
    assert throttle.allow("untrusted-relay", "192.0.2.1")
    assert not throttle.allow("untrusted-relay", "192.0.2.1")
    assert throttle.suppressed == {"untrusted-relay": 3}


def test_keys_are_bounded():
    throttle = Throttle(rate=0.0, burst=1, max_keys=100)
    for i in range(10_000):
        assert throttle.allow("flood", f"10.0.{i // 256}.{i % 256}")
    assert len(throttle._buckets) == 100
