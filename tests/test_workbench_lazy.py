"""The console's request reader decodes only requests that can open work (console/_workbench.py): one whose
submission is already decided at its version, or superseded, is skipped by its headers. No Kafka: the view and
the reader are fed by hand."""

from __future__ import annotations

from typing import cast

import pytest

from broker._aggregate import AggregateState
from broker._envelope import InMessage, avro_message
from broker._topics import requests_topic
from broker._view import StatusView
from console._workbench import Workbench
from schemas import AGENCIES
from tests.test_decode_once import NOW, count_decodes, request_record

NO_KAFKA = "127.0.0.1:9"


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return count_decodes(monkeypatch)


def request(version: int = 1, *, headers: bool = True) -> InMessage:
    record = {**request_record(), "version": version}
    out = avro_message(requests_topic("sps"), "AgencyRequest", record)
    return InMessage(topic=out.topic, partition=0, offset=version, timestamp=NOW, key=out.key, value=out.value,
                     headers=out.headers if headers else ())


def decided(version: int) -> AggregateState:
    """What the reader looks at of a state: its status and version."""
    return cast("AggregateState", {"status": "released", "version": version})


def bench(*, decided_at: int | None = None, version: int = 1) -> tuple[StatusView, Workbench]:
    """A view that knows submission DECREQ up to ``version``, decided at ``decided_at`` (None: undecided)."""
    view = StatusView(NO_KAFKA)
    view.accepted("DECREQ", version=version, received_at=NOW, digest="d", kind="DECLARATION", trader="t")
    if decided_at is not None:
        entry = view.get("DECREQ")
        assert entry is not None
        entry.state = decided(decided_at)
    return view, Workbench(bootstrap=NO_KAFKA, view=view, agencies=AGENCIES)


def test_an_open_request_is_decoded_and_summarised(decodes: list[str]) -> None:
    _, workbench = bench()
    workbench._request(request())
    assert decodes == ["nsw.v1.AgencyRequest"]
    summary = workbench.worklist.request("sps", "DECREQ")
    assert summary is not None
    assert summary.version == 1
    assert summary.items


def test_a_request_of_a_decided_submission_is_not_decoded(decodes: list[str]) -> None:
    _, workbench = bench(decided_at=2, version=2)
    workbench._request(request(1))
    workbench._request(request(2))
    assert decodes == []
    assert workbench.worklist.request("sps", "DECREQ") is None
    workbench._request(request(3))  # a later version: open work until its own decisions come
    assert decodes == ["nsw.v1.AgencyRequest"]


def test_a_request_superseded_by_a_later_one_is_not_decoded(decodes: list[str]) -> None:
    _, workbench = bench(version=2)
    workbench._request(request(2))
    workbench._request(request(1))
    assert decodes == ["nsw.v1.AgencyRequest"]
    summary = workbench.worklist.request("sps", "DECREQ")
    assert summary is not None
    assert summary.version == 2


def test_a_request_without_the_hub_s_headers_is_decoded(decodes: list[str]) -> None:
    _, workbench = bench(decided_at=1)
    workbench._request(request(headers=False))
    assert decodes == ["nsw.v1.AgencyRequest"]  # decoded, then skipped as before
    assert workbench.worklist.request("sps", "DECREQ") is None
