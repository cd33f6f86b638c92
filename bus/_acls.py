"""Kafka's ACL admin requests (CreateAcls, DeleteAcls, DescribeAcls) and the cluster-metadata probe.

aiokafka 0.14's admin client has no ACL calls, so these are sent as raw protocol requests on a bootstrapped
client. The policy (which principal may do what) lives in ``ops._security``; this module only carries rows of
plain values to the broker and back, translating aiokafka's errors into ``TransportError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from bus._auth import KafkaAuth
from bus.errors import NSWError, TransportError

__all__ = ["AclRow", "alter_acls", "cluster_answers", "list_acls"]

#: (resource type, resource name, pattern type, principal, operation): the codes of Kafka's protocol.
AclRow = tuple[int, str, int, str, int]
#: Kafka's code of an ALLOW permission.
_ALLOW = 3


async def _client(bootstrap: str, auth: KafkaAuth) -> Any:
    from aiokafka.client import AIOKafkaClient  # noqa: PLC0415  (only the ACL tools need it)

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=15000, **auth.client_kwargs())
    await client.bootstrap()
    return client


async def alter_acls(bootstrap: str, auth: KafkaAuth, rows: Sequence[AclRow], *,
                     verb: Literal["create", "delete"]) -> list[tuple[AclRow, int, str]]:
    """Create (or delete) each ALLOW binding, one request each; return the rows the broker refused, with its
    error code and message. Raises TransportError when the broker cannot be reached or stops answering."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415
    from aiokafka.protocol.admin import CreateAclsRequest, DeleteAclsRequest  # noqa: PLC0415

    try:
        client = await _client(bootstrap, auth)
    except KafkaError as exc:
        raise TransportError(f"cannot connect to {bootstrap} as {auth.principal}: {exc}") from exc
    refused: list[tuple[AclRow, int, str]] = []
    try:
        node = client.get_random_node()
        for row in rows:
            kind, name, pattern, principal, operation = row
            if verb == "create":
                response = await client.send(node, CreateAclsRequest(kind, name, pattern, principal, "*", operation,
                                                                     _ALLOW))
                outcomes = [(code, message) for code, message in response.creation_responses]
            else:
                response = await client.send(node, DeleteAclsRequest(kind, name, pattern, principal, "*", operation,
                                                                     _ALLOW))
                outcomes = [(code, message) for code, message, *_ in response.filter_responses]
            refused += [(row, code, message or "") for code, message in outcomes if code != 0]
            if refused:
                break
    except KafkaError as exc:
        raise TransportError(f"could not {verb} ACLs on {bootstrap}: {exc}") from exc
    finally:
        await client.close()
    return refused


async def list_acls(bootstrap: str, auth: KafkaAuth) -> list[tuple[AclRow, int]]:
    """Every binding on the broker as (row, permission code). Raises TransportError when Kafka cannot answer,
    ``NSWError`` (not retriable) when it answers with an error."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415
    from aiokafka.protocol.admin import DescribeAclsRequest  # noqa: PLC0415

    any_resource, any_pattern, any_operation, any_permission = 1, 1, 1, 1
    try:
        client = await _client(bootstrap, auth)
    except KafkaError as exc:
        raise TransportError(f"cannot connect to {bootstrap} as {auth.principal}: {exc}") from exc
    try:
        request = DescribeAclsRequest(any_resource, None, any_pattern, None, None, any_operation, any_permission)
        response = await client.send(client.get_random_node(), request)
    except KafkaError as exc:
        raise TransportError(f"describing ACLs on {bootstrap} failed: {exc}") from exc
    finally:
        await client.close()
    if response.error_code != 0:
        raise NSWError(f"describing ACLs failed: error {response.error_code} {response.error_message}")
    return [((kind, name, pattern, principal, operation), permission)
            for kind, name, pattern, acls in response.resources
            for principal, _host, operation, permission in acls]


async def cluster_answers(bootstrap: str, auth: KafkaAuth, request_timeout_ms: int) -> bool:
    """True when the broker answers a cluster-metadata request listing at least one broker (readiness)."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=request_timeout_ms,
                                **auth.client_kwargs())  # fmt: skip
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()
    return bool(cluster.get("brokers"))
