"""The Retry-After a worker gives past its connection limit (app/runtime/protocol.py,
`ConnectionDrain`), with a fake clock: the clients refused lately and a share of the open
connections, over the rate the worker's connections have been closing, 1 to 30 s.
The same answer on a served worker: tests/runtime/test_connection_limits.py."""

from app.core.admission import MAX_RETRY_AFTER_SECONDS
from app.runtime.protocol import ConnectionDrain


def drain_closing(per_second: float, *, seconds: float = 5.0) -> tuple[ConnectionDrain, list[float]]:
    """A drain whose connections closed at `per_second` for `seconds`; its clock, to move on."""
    clock = [0.0]
    drain = ConnectionDrain(clock=lambda: clock[0])
    for _ in range(round(per_second * seconds)):
        clock[0] += 1 / per_second
        drain.closed()
    return drain, clock


def refuse(drain: ConnectionDrain, *, open_connections: int) -> int:
    drain.refused()
    return drain.retry_after_seconds(open_connections)


def test_retry_after_grows_with_the_clients_refused_lately():
    drain, _ = drain_closing(2.0)  # 10 closes in the last 5 s: 2 per second
    assert drain.close_rate() == 2.0
    told = [refuse(drain, open_connections=6) for _ in range(20)]
    # k refused + 0.6 of the 6 open, at 2 per second
    assert told[0] == 1 and told[9] == 6 and told[-1] == 11
    assert told == sorted(told)


def test_refused_clients_spread_over_more_seconds_than_one():
    """The benchmark's failure: every refused client told 1 s came back in step."""
    drain, _ = drain_closing(100.0)
    told = [refuse(drain, open_connections=0) for _ in range(1000)]
    assert len(set(told)) == 10  # 1 s for the first hundred, 2 s for the next, ... 10 s
    assert told.count(1) == 100


def test_a_share_of_the_open_connections_counts_ahead():
    drain, _ = drain_closing(100.0)
    assert refuse(drain, open_connections=0) == 1
    assert drain.retry_after_seconds(4096) == 5  # (1 refused + 409.6) / 100 per second


def test_retry_after_is_at_most_thirty_seconds():
    drain, _ = drain_closing(1.0)
    told = [refuse(drain, open_connections=4096) for _ in range(500)]
    assert max(told) == MAX_RETRY_AFTER_SECONDS == 30


def test_refusals_and_closes_older_than_the_window_are_forgotten():
    drain, clock = drain_closing(2.0)
    for _ in range(40):
        refuse(drain, open_connections=0)
    assert drain.retry_after_seconds(0) == 20  # 40 refused at 2 per second
    clock[0] += 5.1  # nothing refused, nothing closed since
    assert drain.close_rate() == 0
    drain.closed()  # one close in the window: 0.2 per second
    assert refuse(drain, open_connections=0) == 5  # only this one refused, at 0.2 per second


def test_no_close_in_the_window_counts_as_one():
    """Unlike the admission gate (1 s when it has measured nothing): a worker at its
    connection limit that has closed nothing for seconds is not about to have room."""
    drain = ConnectionDrain(clock=lambda: 0.0)
    assert drain.close_rate() == 0
    assert refuse(drain, open_connections=0) == 5  # 1 refused at one per 5 s
    assert refuse(drain, open_connections=10) == 15  # (2 + 1) at one per 5 s


def test_retry_after_is_at_least_one_second():
    drain, _ = drain_closing(1000.0)
    assert refuse(drain, open_connections=6) == 1


def test_refusals_are_logged_at_once_then_by_count_at_most_once_per_ten_seconds():
    clock = [0.0]
    drain = ConnectionDrain(clock=lambda: clock[0])
    assert drain.refusals_to_log() == 0  # nothing refused, nothing to say
    logged = []
    for _ in range(25):  # 25 refusals over 24 s, one a second
        drain.refused()
        logged.append(drain.refusals_to_log())
        clock[0] += 1.0
    # The first at once; then the ten since, at 10 s and at 20 s; the last four wait.
    assert [(second, count) for second, count in enumerate(logged) if count] == [(0, 1), (10, 10), (20, 10)]
    assert sum(logged) == 21
