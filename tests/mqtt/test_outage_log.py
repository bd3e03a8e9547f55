"""The outage log's policy on its own: which line at which level, with a clock the test sets
(the real-broker tests in test_log_levels.py check the same lines through MqttSink)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest

from emopi.edge.mqtt.outage import OutageLog, human_duration

WHERE = "MQTT broker kiosk.lan:1883"
REFUSED = f"{WHERE}: connection refused (is the broker running on that port?)"
TLS = f"{WHERE}: TLS certificate verification failed (unable to get local issuer certificate)"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="emopi.edge.mqtt.sink")
    return caplog


def levels(records: list[logging.LogRecord]) -> list[str]:
    return [r.levelname for r in records]


def test_a_long_outage_is_one_warning_quiet_retries_and_a_summary_every_five_minutes(log):
    clock = Clock()
    outage = OutageLog(WHERE, clock=clock)
    outage.connected(waiting=0, last_row=0)
    outage.lost("the connection dropped")
    for step in range(1, 61):  # 10 minutes of refused attempts, one every 10 s
        clock.now += 10
        outage.failed(REFUSED, spooled=2 * step)
    expected = ["INFO", "WARNING"] + ["DEBUG"] * 30 + ["WARNING"] + ["DEBUG"] * 30 + ["WARNING"]
    assert levels(log.records) == expected
    summaries = [r.getMessage() for r in log.records if r.levelname == "WARNING"][1:]
    assert summaries == [
        f"{WHERE} unreachable for 5 min ({REFUSED}); 60 events spooled",
        f"{WHERE} unreachable for 10 min ({REFUSED}); 120 events spooled",
    ]


def test_reconnect_is_one_info_line_once_the_backlog_is_acknowledged(log):
    clock = Clock()
    outage = OutageLog(WHERE, clock=clock)
    outage.connected(waiting=0, last_row=0)
    outage.lost("the connection dropped")
    clock.now += 47
    outage.connected(waiting=3, last_row=12)
    outage.acked([10, 11])
    assert levels(log.records) == ["INFO", "WARNING"]  # not yet: one event still to go
    outage.acked([12, 13])  # 13 is newer than the outage
    outage.backlog_through()
    assert levels(log.records) == ["INFO", "WARNING", "INFO"]
    assert (
        log.records[-1].getMessage()
        == f"{WHERE} back after an outage of 47 s; 3 spooled events sent"
    )


def test_a_backlog_cut_short_by_the_next_outage_says_how_much_was_sent(log):
    outage = OutageLog(WHERE, clock=Clock())
    outage.connected(waiting=0, last_row=0)
    outage.lost("the connection dropped")
    outage.connected(waiting=5, last_row=5)
    outage.acked([1, 2])
    outage.lost("the connection dropped")
    assert [r.getMessage() for r in log.records][-2:] == [
        f"{WHERE} back after an outage of 0 s; 2 of 5 spooled events sent",
        f"lost {WHERE} (the connection dropped); events are spooled until it is back",
    ]


def test_what_needs_a_person_is_an_error_once_per_message_and_in_the_summaries(log):
    clock = Clock()
    outage = OutageLog(WHERE, clock=clock)
    for _ in range(40):  # never connected: a certificate the broker's CA did not sign
        clock.now += 10
        outage.failed(TLS, spooled=0, needs_person=True)
    outage.failed(REFUSED, spooled=0)  # the broker went down meanwhile: routine again
    assert levels(log.records) == ["ERROR"] + ["DEBUG"] * 30 + ["ERROR"] + ["DEBUG"] * 10
    assert log.records[31].getMessage().startswith(f"{WHERE} unreachable for 5 min ({TLS})")
    clock.now += 5
    outage.connected(waiting=0, last_row=0)
    assert log.records[-1].levelname == "INFO"
    assert (
        log.records[-1].getMessage()
        == f"connected to {WHERE} after 6 min 35 s; 0 events waiting in the spool"
    )


def test_failures_the_caller_reports_are_not_logged_twice(log):
    outage = OutageLog(WHERE, clock=Clock())
    outage.failed(REFUSED, spooled=0, quiet=True)  # wait_connected raises it at start
    outage.reported_by_caller()
    outage.failed(REFUSED, spooled=0)
    assert levels(log.records) == ["DEBUG", "DEBUG"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (59, "59 s"), (300, "5 min"), (312, "5 min 12 s"), (7500, "2 h 05 min")],
)
def test_durations_read_like_a_person_writes_them(seconds, text):
    assert human_duration(seconds) == text
