"""Tamper-evident audit: every accepted submission, routing plan, agency decision, release response,
dead letter (a refused decision among them), inspection result and risk-profile tuning, appended to a hash
chain per partition of ``nsw.audit``.

Entry (JSON, key = submission id), written to the audit partition with the same number as the input
partition (all inputs are co-partitioned by submission id)::

    {"seq": 41, "kind": "decision", "submission_id": "...", "version": 2, "agency": "sps",
     "source_topic": "nsw.agency.sps.decisions", "source_partition": 3, "source_offset": 977,
     "value_sha256": "<hex of the source record's bytes>", "recorded_at": 1764151405123,
     "prev_hash": "<hash of entry 40 of this partition; 64 zeros for entry 0>",
     "hash": "<hex SHA-256 of the canonical JSON of every other field>"}

An entry also names its ``actor`` when a person acted: the officer of a decision made in the console
(``decided_by``), of an inspection result (``officer``) or of a supervisor's tuning (``officer``, key = the
profile id, entered under ``submission_id``, chained in partition 0 of the one-partition tuning topic). Entries
without a person have no ``actor`` field, so entries written before it existed hash as they did.

Only a digest of the source value is kept: the audit log carries no declaration data, yet proves which
bytes were seen. A change of a console account (``nsw.officers``: created, new password, revoked) is an entry
of kind ``account`` with no submission id and one more field, ``account``: the user name, agency, role, what
changed, when and who ran the command (never the password hash), so who gave whom access is in the chain.
The canonical JSON is orjson with sorted keys (no spaces), so anyone can recompute it.

Chain head and exactly-once. The head of each chain (last seq, last hash, and the last source offset
per input partition) lives in the compacted changelog ``nsw.audit.head`` (key ``p<n>``), written in
the same Kafka transaction as the entries and the consumed offsets: a crash aborts all three
together, so the chain never forks or repeats an entry. The head is kept apart from the audit topic
on purpose: if it were re-read from the audit topic's last entry, someone who deleted the tail of the
log would see the writer continue seamlessly from the shortened chain; with a separate head the next
entry links to the real predecessor and ``nsw ops audit verify`` reports the break (and the head also
anchors the last entry, which no successor protects). The source offsets make replays harmless: a
record at or below the last offset recorded for its input partition is not audited twice, even if
committed offsets and the chain ever disagree.

Verification (``verify_chain``) is pure: it takes the committed entries of one partition with their
offsets and reports the first problem (changed, removed, reordered, forged-hash, malformed).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NotRequired, TypedDict

import orjson
import structlog

from broker._clock import now_ms
from broker._envelope import (
    CONTENT_TYPE_HEADER,
    JSON_CONTENT_TYPE,
    SUBMISSION_HEADER,
    VERSION_HEADER,
    InMessage,
    OutMessage,
)
from broker._tail import DeadLetters, guarded
from broker._topics import (
    DLQ,
    INSPECTIONS,
    OFFICERS,
    REFUSED_DECISIONS,
    RESPONSES,
    RISK_TUNING,
    ROUTING,
    SUBMISSIONS,
    decisions_topic,
)
from bus import Bus, Processor, ProcessorSpec
from schemas import registry
from schemas.errors import NSWSchemaError

__all__ = [
    "AUDIT",
    "AUDIT_HEAD",
    "GENESIS",
    "AuditEntry",
    "AuditTopics",
    "Auditor",
    "ChainHead",
    "ChainProblem",
    "ChainReport",
    "account_change",
    "actor_of",
    "audit_processor",
    "auditor_spec",
    "canonical",
    "entry_hash",
    "make_entry",
    "verify_chain",
]

log = structlog.get_logger("nsw.audit")

AUDIT: Final = "nsw.audit"
AUDIT_HEAD: Final = "nsw.audit.head"
GENESIS: Final = "0" * 64

Kind = Literal["submission", "routing", "decision", "response", "dead-letter", "refused-decision", "inspection",
               "tuning", "account"]
ProblemKind = Literal["changed", "removed", "reordered", "forged-hash", "malformed"]

#: Every field of an entry, in the order people read them; ``hash`` covers all the others.
FIELDS: Final = ("seq", "kind", "submission_id", "version", "agency", "source_topic", "source_partition",
                 "source_offset", "value_sha256", "recorded_at", "prev_hash", "hash")
#: Fields an entry has only when they apply (``actor``: the person who acted; ``account``: a console account's
#: change); ``hash`` covers them too.
OPTIONAL_FIELDS: Final = ("actor", "account")
MAX_ACTOR: Final = 200
#: What an ``account`` entry says of the change (the record's other fields, the hash above all, stay out).
ACCOUNT_FIELDS: Final = ("username", "agency", "role", "event", "by", "changed_at")


class AuditEntry(TypedDict):
    seq: int
    kind: str
    submission_id: str
    version: int | None
    agency: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    value_sha256: str
    recorded_at: int
    prev_hash: str
    hash: str
    actor: NotRequired[str]
    account: NotRequired[dict[str, Any]]


class ChainHead(TypedDict):
    partition: int
    seq: int  # of the last entry; -1 before the first
    hash: str  # of the last entry; GENESIS before the first
    sources: dict[str, int]  # "<topic>:<partition>" -> last audited offset


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed: JSON with sorted keys, no whitespace (orjson), without ``hash``."""
    return orjson.dumps({k: v for k, v in fields.items() if k != "hash"}, option=orjson.OPT_SORT_KEYS)


def entry_hash(fields: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(fields)).hexdigest()


def make_entry(
    *, seq: int, kind: str, submission_id: str, version: int | None, agency: str | None, source_topic: str,
    source_partition: int, source_offset: int, value: bytes, recorded_at: int, prev_hash: str,
    actor: str | None = None,
    account: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Pure: the next entry of a chain, its hash computed; ``actor`` (the person who acted) only when given."""
    entry: AuditEntry = {
        "seq": seq, "kind": kind, "submission_id": submission_id, "version": version, "agency": agency,
        "source_topic": source_topic, "source_partition": source_partition, "source_offset": source_offset,
        "value_sha256": hashlib.sha256(value).hexdigest(), "recorded_at": recorded_at, "prev_hash": prev_hash,
        "hash": "",
    }
    if actor is not None:
        entry["actor"] = actor
    if account is not None:
        entry["account"] = dict(account)
    entry["hash"] = entry_hash(entry)
    return entry


# --- verification (pure) ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainProblem:
    kind: ProblemKind
    offset: int
    seq: int | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "offset": self.offset, "seq": self.seq, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class ChainReport:
    partition: int
    entries: int
    head_seq: int | None
    head_hash: str | None
    problems: tuple[ChainProblem, ...] = ()
    #: The head recorded by the writer (``nsw.audit.head``), when it was compared.
    anchored: bool | None = None

    @property
    def intact(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> ChainProblem | None:
        return self.problems[0] if self.problems else None

    def as_dict(self) -> dict[str, Any]:
        first = self.first_problem
        return {"partition": self.partition, "entries": self.entries, "intact": self.intact,
                "head_seq": self.head_seq, "head_hash": self.head_hash, "anchored": self.anchored,
                "first_problem": None if first is None else first.as_dict(),
                "problems": [p.as_dict() for p in self.problems]}


def _parse(value: bytes) -> AuditEntry | str:
    """The entry in ``value``, or why it is not one."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return f"not JSON ({exc})"
    if not isinstance(data, dict):
        return "not a JSON object"
    missing = [f for f in FIELDS if f not in data]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    extra = sorted(set(data) - set(FIELDS) - set(OPTIONAL_FIELDS))
    if "actor" in data and not isinstance(data["actor"], str):
        return "actor must be a string"
    if extra:
        return f"unknown field(s) {', '.join(extra)}"
    if not isinstance(data["seq"], int) or not isinstance(data["hash"], str) or not isinstance(data["prev_hash"], str):
        return "seq must be an integer, hash and prev_hash strings"
    return data  # type: ignore[return-value]


class _ChainCheck:
    """The running state of one ``verify_chain`` pass."""

    def __init__(self, parsed: list[tuple[int, AuditEntry | str]], max_problems: int) -> None:
        self.parsed = parsed
        self.max_problems = max_problems
        self.problems: list[ChainProblem] = []
        self.by_seq: dict[int, tuple[int, AuditEntry]] = {}  # seq -> (offset, entry), first occurrence
        self.max_seen = -1
        self.seqs_at: dict[int, list[int]] = {}
        for index, (_, item) in enumerate(parsed):
            if isinstance(item, dict):
                self.seqs_at.setdefault(item["seq"], []).append(index)

    def report(self, kind: ProblemKind, offset: int, seq: int | None, detail: str) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(ChainProblem(kind, offset, seq, detail))

    def check_link(self, earlier: tuple[int, AuditEntry], later: tuple[int, AuditEntry]) -> None:
        (offset, entry), (later_offset, successor) = earlier, later
        if successor["prev_hash"] != entry["hash"]:
            self.report("forged-hash", offset, entry["seq"],
                        f"entry seq {entry['seq']} hashes to {entry['hash'][:16]}... but the next entry (offset "
                        f"{later_offset}) recorded {successor['prev_hash'][:16]}... for it: rewritten with a "
                        f"recomputed hash")

    def check_order(self, index: int, offset: int, seq: int) -> bool:
        """False when the entry repeats a seq (it is then left out of the chain)."""
        expected = self.max_seen + 1
        if seq in self.by_seq:
            self.report("reordered", offset, seq, f"seq {seq} appears again (first at offset {self.by_seq[seq][0]})")
            return False
        if seq < expected:
            self.report("reordered", offset, seq, f"seq {seq} comes after seq {self.max_seen}")
        elif seq > expected:
            later = [i for i in self.seqs_at.get(expected, []) if i > index]
            if later:
                self.report("reordered", offset, seq, f"seq {seq} where {expected} was expected; "
                                                      f"{expected} comes later, at offset {self.parsed[later[0]][0]}")
            else:
                missing = f"{expected}" if seq == expected + 1 else f"{expected}..{seq - 1}"
                self.report("removed", offset, seq, f"seq {missing} missing before this entry (seq {seq})")
        return True

    def entry(self, index: int, offset: int, item: AuditEntry) -> None:
        seq = item["seq"]
        recomputed = entry_hash(item)
        if recomputed != item["hash"]:
            self.report("changed", offset, seq, f"entry seq {seq}: its fields hash to {recomputed[:16]}..., "
                                                 f"not to the recorded {item['hash'][:16]}...")
        if not self.check_order(index, offset, seq):
            return
        current = (offset, item)
        self.by_seq[seq] = current
        if seq == 0 and item["prev_hash"] != GENESIS:
            self.report("forged-hash", offset, seq, "the first entry does not start from the genesis hash")
        if seq - 1 in self.by_seq:
            self.check_link(self.by_seq[seq - 1], current)
        if seq + 1 in self.by_seq:  # its successor came first (reordered): check the link now
            self.check_link(current, self.by_seq[seq + 1])
        self.max_seen = max(self.max_seen, seq)

    def holds(self, head: tuple[int, str]) -> bool:
        """Whether the chain has the entry ``head`` names (seq, hash); (-1, GENESIS) names the empty start."""
        seq, want_hash = head
        if seq == -1:
            return want_hash == GENESIS
        found = self.by_seq.get(seq)
        return found is not None and found[1]["hash"] == want_hash

    def anchor(self, expected_head: tuple[int, str], earlier_head: tuple[int, str] | None = None) -> bool:
        """Compare the chain's head with the head the writer recorded (which protects the last entry).

        A live log may have grown between reading its entries and reading ``expected_head``: when that head is
        ahead of the log, ``earlier_head`` (read before the entries) anchors it instead, provided the log holds
        that entry; the entries after it were written while the log was read, and their links protect them.
        """
        last = self.by_seq.get(self.max_seen)
        head_seq, head_hash = (-1, GENESIS) if last is None else (last[1]["seq"], last[1]["hash"])
        want_seq, want_hash = expected_head
        if (head_seq, head_hash) == (want_seq, want_hash):
            return True
        if earlier_head is not None and want_seq > head_seq and self.holds(earlier_head):
            return True
        at = -1 if last is None else last[0]
        if want_seq > head_seq:
            self.report("removed", at, head_seq, f"the writer's head is seq {want_seq}; entries after seq "
                                                 f"{head_seq} are missing")
        else:
            self.report("forged-hash", at, head_seq, f"the writer recorded head seq {want_seq} hash "
                                                     f"{want_hash[:16]}...; the log ends with seq {head_seq} "
                                                     f"hash {head_hash[:16]}...")
        return False


def verify_chain(
    entries: Iterable[tuple[int, bytes]], *, partition: int = 0, expected_head: tuple[int, str] | None = None,
    earlier_head: tuple[int, str] | None = None, max_problems: int = 100,
) -> ChainReport:
    """Check one audit partition: ``entries`` are (offset, value) in offset order, from the beginning.

    - ``changed``: an entry's ``hash`` is not the hash of its fields (a field or the hash was altered);
    - ``forged-hash``: an entry is self-consistent but its successor (or ``expected_head``, the writer's
      recorded head) recorded another hash for it: rewritten with a recomputed hash, or a forged genesis;
      the offset is the rewritten entry's;
    - ``removed``: seq jumps forward and the missing entries appear nowhere;
    - ``reordered``: seq out of order although the expected entry is elsewhere, or a seq repeats;
    - ``malformed``: not an entry at all.

    ``expected_head`` is read after the entries; ``earlier_head``, read before them, anchors a log that grew
    meanwhile (``_ChainCheck.anchor``), so verifying a log the auditor is writing reports no false break.

    Links are checked between consecutive seqs wherever they sit, so one swap or one removal is one
    problem, not a cascade; all problems are listed (up to ``max_problems``), the first is the answer.
    """
    check = _ChainCheck([(offset, _parse(value)) for offset, value in entries], max_problems)
    for index, (offset, item) in enumerate(check.parsed):
        if isinstance(item, str):
            check.report("malformed", offset, None, item)
        else:
            check.entry(index, offset, item)
    anchored = None if expected_head is None else check.anchor(expected_head, earlier_head)
    last = check.by_seq.get(check.max_seen)
    return ChainReport(partition=partition, entries=len(check.parsed),
                       head_seq=None if last is None else last[1]["seq"],
                       head_hash=None if last is None else last[1]["hash"],
                       problems=tuple(check.problems), anchored=anchored)


# --- the service --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditTopics:
    """Which topics the auditor reads and writes (tests use fresh names; the hub uses ``hub``)."""

    submissions: str = SUBMISSIONS
    routing: str = ROUTING
    responses: str = RESPONSES
    decisions: Mapping[str, str] = field(default_factory=dict)  # agency -> topic
    audit: str = AUDIT
    head: str = AUDIT_HEAD
    dlq: str = DLQ
    refused: str = REFUSED_DECISIONS
    inspections: str = INSPECTIONS
    tuning: str = RISK_TUNING
    #: The console's accounts (who gave whom access); None: not audited.
    officers: str | None = None

    @classmethod
    def hub(cls, agencies: Iterable[str]) -> AuditTopics:
        return cls(decisions={a: decisions_topic(a) for a in agencies}, officers=OFFICERS)

    def inputs(self) -> tuple[str, ...]:
        """Everything that makes or refuses an answer; dead letters too (a refused decision is kept there)."""
        accounts = () if self.officers is None else (self.officers,)
        return (self.submissions, self.routing, *self.decisions.values(), self.responses, self.dlq, self.refused,
                self.inspections, self.tuning, *accounts)

    def kind_of(self, topic: str) -> tuple[Kind, str | None]:
        if topic == self.submissions:
            return "submission", None
        if topic == self.routing:
            return "routing", None
        if topic == self.responses:
            return "response", None
        if topic == self.dlq:
            return "dead-letter", None
        if topic == self.refused:
            return "refused-decision", None
        if topic == self.inspections:
            return "inspection", None
        if topic == self.tuning:
            return "tuning", "customs"  # the risk profiles are customs'
        if topic == self.officers:
            return "account", None
        for agency, name in self.decisions.items():
            if name == topic:
                return "decision", agency
        raise ValueError(f"the auditor does not read {topic}")



def _short(value: object) -> str | None:
    return value[:MAX_ACTOR] if isinstance(value, str) and value else None


def actor_of(kind: Kind, value: bytes) -> tuple[str | None, str | None]:
    """(actor, agency) a record names, for a decision, an inspection result or a tuning record; (None, None)
    for the others and for whatever cannot be read (the entry then records the digest alone: the auditor never
    fails on a record)."""
    try:
        if kind == "tuning":
            data = orjson.loads(value) if value else None
            return (_short(data.get("officer")), None) if isinstance(data, dict) else (None, None)
        if kind in ("decision", "inspection"):
            _, record = registry().decode(value)
            field_name = "decided_by" if kind == "decision" else "officer"
            return _short(record.get(field_name)), _short(record.get("agency")) if kind == "inspection" else None
    except (orjson.JSONDecodeError, NSWSchemaError):
        pass
    return None, None


def _version(message: InMessage) -> int | None:
    raw = message.header(VERSION_HEADER)
    try:
        return None if raw is None else int(raw)
    except ValueError:
        return None


class Auditor:
    """Appends one chained entry per input record; never fails on a record (the digest covers any bytes)."""

    def __init__(self, *, bus: Bus, topics: AuditTopics, clock: Callable[[], int] = now_ms) -> None:
        self._bus = bus
        self.topics = topics
        self._clock = clock
        self.heads: dict[int, ChainHead] = {}
        self._letters = DeadLetters(bus)

    async def on_assign(self, assigned: set[tuple[str, int]]) -> None:
        """Restore the chain heads of the assigned partition numbers from ``nsw.audit.head``.

        Runs after this partition's transactional producer started, which completed or aborted whatever
        the previous owner left open, so read_committed sees the final head.
        """
        numbers = {p for _, p in assigned}
        for number in numbers:
            self.heads[number] = {"partition": number, "seq": -1, "hash": GENESIS, "sources": {}}

        def load(message: InMessage) -> None:
            if message.value:
                head: ChainHead = orjson.loads(message.value)
                if head["partition"] in numbers:
                    self.heads[head["partition"]] = head

        # A head record that cannot be read is reported and skipped (the chain goes on from the one before,
        # and verification shows the break) rather than failing every restore of the auditor.
        reader = guarded(load, reader="auditor-restore", letters=self._letters)
        await self._bus.read_to_end([(self.topics.head, n) for n in sorted(numbers)], reader)
        tails = await self._bus.read_tail([(self.topics.audit, n) for n in sorted(numbers)])
        for (_, number), last in tails.items():
            head = self.heads[number]
            last_hash = orjson.loads(last.value).get("hash") if last is not None and last.value else GENESIS
            if last_hash != head["hash"]:
                # Someone removed or rewrote the end of the log: continue from the recorded head, so the
                # next entry does not link to the shortened chain and verification shows the break.
                log.error("audit_head_mismatch", partition=number, head_seq=head["seq"])
            (log.info if head["seq"] >= 0 else log.debug)("audit_head_restored", partition=number, seq=head["seq"])

    def handle(self, message: InMessage) -> Sequence[OutMessage]:
        number = message.partition
        head = self.heads.setdefault(number, {"partition": number, "seq": -1, "hash": GENESIS, "sources": {}})
        source = f"{message.topic}:{message.partition}"
        if message.offset <= head["sources"].get(source, -1):
            log.info("audit_skip_replayed", source_offset=message.offset)
            return []
        kind, agency = self.topics.kind_of(message.topic)
        if kind in ("dead-letter", "refused-decision"):  # whose record it was: the agency of a refused decision, say
            agency = self._agency_of(message.header("nsw-source-topic"))
        actor, named_agency = actor_of(kind, message.value)
        agency = agency or named_agency
        raw_id = message.key or message.header(SUBMISSION_HEADER) or b""
        submission_id = raw_id.decode("utf-8", "replace")
        version = _version(message)
        account = None
        if kind == "account":  # keyed by user name, not by a submission
            account = account_change(message)
            agency, submission_id, version = account.get("agency"), "", None
        structlog.contextvars.bind_contextvars(submission_id=submission_id, version=version, agency=agency)
        entry = make_entry(
            seq=head["seq"] + 1, kind=kind, submission_id=submission_id, version=version, agency=agency,
            source_topic=message.topic, source_partition=message.partition, source_offset=message.offset,
            value=message.value, recorded_at=self._clock(), prev_hash=head["hash"], actor=actor, account=account,
        )
        head["seq"], head["hash"] = entry["seq"], entry["hash"]
        head["sources"][source] = message.offset
        log.info("audited", kind=kind, seq=entry["seq"], actor=actor)
        json_headers = ((CONTENT_TYPE_HEADER, JSON_CONTENT_TYPE),)
        return [
            OutMessage(topic=self.topics.audit, key=raw_id, value=orjson.dumps(entry),
                       headers=((SUBMISSION_HEADER, raw_id), *json_headers)),
            OutMessage(topic=self.topics.head, key=f"p{number}".encode(), value=orjson.dumps(head),
                       headers=json_headers),
        ]


    def _agency_of(self, source: bytes | None) -> str | None:
        name = (source or b"").decode("utf-8", "replace")
        return next((agency for agency, topic in self.topics.decisions.items() if topic == name), None)


def account_change(message: InMessage) -> dict[str, Any]:
    """Pure: what an ``account`` entry records of an ``nsw.officers`` record (never its hash); a record that
    is not an account still is audited, with what can be read of it."""
    username = (message.key or b"").decode("utf-8", "replace")
    out: dict[str, Any] = dict.fromkeys(ACCOUNT_FIELDS)
    out["username"] = username
    if not message.value:
        out["event"] = "deleted"  # a tombstone: the account is gone from the compacted topic
        return out
    try:
        value = orjson.loads(message.value)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        out["event"] = "malformed"
        return out
    for name in ACCOUNT_FIELDS[1:]:
        item = value.get(name)
        out[name] = item if isinstance(item, str | int) and not isinstance(item, bool) else None
    out["event"] = out["event"] or ("revoked" if value.get("revoked_at") is not None else "created")
    out["changed_at"] = out["changed_at"] if out["changed_at"] is not None else value.get("created_at")
    return out


def auditor_spec(auditor: Auditor, *, group_id: str = "nsw-auditor",
                 transactional_prefix: str = "nsw-auditor") -> ProcessorSpec:
    return ProcessorSpec(
        service="auditor",
        group_id=group_id,
        topics=auditor.topics.inputs(),
        transactional_prefix=transactional_prefix,
        handler=auditor.handle,
        dlq=auditor.topics.dlq,
        on_assign=auditor.on_assign,
        latest_only=frozenset({auditor.topics.head}),  # the chain head of a batch's last entry is the head
        patient=True,  # no one waits for an audit entry by the millisecond: fewer, larger transactions
    )


def audit_processor(spec: ProcessorSpec, bus: Bus, topics: AuditTopics) -> Processor:
    """The processor that runs the auditor: entries and heads go to the input's partition number."""
    return bus.processor(spec, pinned=(topics.audit, topics.head))
