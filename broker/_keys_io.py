"""Reading and writing the API key topic from tools (``nsw keys``), outside a running hub."""

from __future__ import annotations

from broker._auth import KeyRecord, KeyStore, key_message
from broker._kafka import Producer, ensure_topics, existing_partition_counts, read_to_end
from broker._topics import API_KEYS, TopicSpec


async def publish_key(bootstrap: str, record: KeyRecord) -> None:
    await ensure_topics(bootstrap, [TopicSpec(name=API_KEYS, partitions=1, replication=1, cleanup_policy="compact")])
    producer = Producer(bootstrap)
    await producer.start()
    try:
        await producer.send(key_message(record))
    finally:
        await producer.stop()


async def load_keys(bootstrap: str) -> KeyStore:
    store = KeyStore()
    counts = await existing_partition_counts(bootstrap, [API_KEYS])
    await read_to_end(bootstrap, [(API_KEYS, p) for p in range(counts.get(API_KEYS, 0))], store.apply)
    return store
