"""Readers no one waits for read in larger batches (a patient processor or tail lets its fetches gather), and the
notifier gives no transaction of its own to responses that produce nothing (nothing here connects to Kafka)."""

from __future__ import annotations

import dataclasses
from typing import Any

from broker._audit import Auditor, AuditTopics, auditor_spec
from broker._envelope import avro_message
from broker._topics import RESPONSES
from broker._view import StatusView
from broker._webhook_secrets import SecretBox
from broker._webhooks import Notifier, WebhookRegistry, notifier_spec
from bus import PATIENT_FETCH_MIN_BYTES, PATIENT_FETCH_WAIT, KafkaBus, ProcessorSpec, TopicTail, TransactionalProcessor
from bus._records import InMessage
from schemas import AGENCIES

NOWHERE = "127.0.0.1:1"


def _spec(**changes: Any) -> ProcessorSpec:
    spec = ProcessorSpec(service="test", group_id="g", topics=("t",), transactional_prefix="p",
                         handler=lambda message: [], dlq="dlq")
    return dataclasses.replace(spec, **changes)


async def test_a_processor_asks_the_broker_to_hold_its_fetches_as_its_spec_says() -> None:
    default = TransactionalProcessor(_spec(), NOWHERE)
    patient = TransactionalProcessor(_spec(patient=True), NOWHERE)
    try:
        # Answered as soon as one record is there, unless the spec asks to wait for more.
        assert (default._consumer._fetch_max_wait_ms, default._consumer._fetch_min_bytes) == (100, 1)
        assert (patient._consumer._fetch_max_wait_ms, patient._consumer._fetch_min_bytes) == (
            round(PATIENT_FETCH_WAIT * 1000), PATIENT_FETCH_MIN_BYTES)
    finally:
        for processor in (default, patient):
            await processor.stop()


def test_the_auditor_is_patient_and_a_spec_is_not_by_default() -> None:
    spec = auditor_spec(Auditor(bus=KafkaBus(NOWHERE), topics=AuditTopics.hub(AGENCIES)))
    assert spec.patient  # no one waits for an audit entry by the millisecond
    assert 0 < PATIENT_FETCH_WAIT <= 1.0 < PATIENT_FETCH_MIN_BYTES
    assert not _spec().patient


async def test_a_patient_tail_lets_its_fetches_gather_and_a_plain_one_answers_at_once() -> None:
    plain, patient = TopicTail(NOWHERE, ["t"]), TopicTail(NOWHERE, ["t"], patient=True)
    try:
        assert (plain._consumer._fetch_max_wait_ms, plain._consumer._fetch_min_bytes) == (100, 1)
        assert (patient._consumer._fetch_max_wait_ms, patient._consumer._fetch_min_bytes) == (
            round(PATIENT_FETCH_WAIT * 1000), PATIENT_FETCH_MIN_BYTES)
    finally:
        for tail in (plain, patient):
            await tail._consumer.stop()


def test_the_read_models_no_one_waits_for_are_patient_and_the_status_view_is_not() -> None:
    from adapters._feedback_feed import FeedbackFeed  # noqa: PLC0415 - the read models, built without Kafka
    from console._workbench import Workbench  # noqa: PLC0415

    view = StatusView(NOWHERE)
    assert FeedbackFeed(bootstrap=NOWHERE, agencies=AGENCIES).tail._patient
    assert not view.tail._patient  # a trader's long poll waits for it
    # An officer's worklist lists a case from the status view and shows it with its request: both as soon.
    assert not Workbench(bootstrap=NOWHERE, view=view, agencies=tuple(AGENCIES)).tail._patient


async def test_a_response_to_a_trader_without_a_webhook_gets_no_transaction_of_its_own() -> None:
    notifier = Notifier(bus=KafkaBus(NOWHERE), registry=WebhookRegistry(KafkaBus(NOWHERE), SecretBox(bytes(32))))
    try:
        response = {
            "response_id": "S-1:1:1", "submission_id": "S-1", "version": 1, "response_version": 1, "issued_at": 2,
            "received_at": 1, "trader_reference": "R", "declarant_id": "D", "outcome": "RELEASE",
            "function_code": "08", "agencies": [], "items": [], "invalidated": False, "trader": "nobody"}  # fmt: skip
        out = avro_message(RESPONSES, "ReleaseResponse", response)
        message = InMessage(topic=RESPONSES, partition=0, offset=0, timestamp=1, key=out.key, value=out.value,
                            headers=out.headers)
        assert notifier.handle(message) == []  # nothing to deliver ...
        assert notifier_spec(notifier).defer_empty  # ... so its offset waits for the partition's next transaction
    finally:
        await notifier.close()
