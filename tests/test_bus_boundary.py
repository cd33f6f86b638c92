"""The Kafka layer's boundary: only the ``bus`` package imports aiokafka.

Walks every Python source of the project's packages with ``ast`` (imports inside functions included) and fails
on an aiokafka import anywhere else. The exceptions are named, each with why. Tests are not walked: the
real-Kafka tests attack and inspect the broker with raw aiokafka clients on purpose (ACLs, principals, runtime).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("errors", "bus", "cli", "broker", "routing", "adapters", "schemas", "ops", "refdata", "console")

#: Sources outside ``bus`` allowed to import aiokafka, each with why.
EXCEPTIONS = {
    "adapters/examples/topic_consumer.py": "an agency's own system, written as an outside consumer of the topics",
}


def kafka_imports(path: Path) -> list[int]:
    """Line numbers of the imports of aiokafka (or its submodules) in ``path``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            names = [node.module]
        else:
            continue
        if any(name == "aiokafka" or name.startswith("aiokafka.") for name in names):
            lines.append(node.lineno)
    return lines


def sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def test_nothing_outside_bus_imports_aiokafka() -> None:
    found = sources()
    assert len(found) > 100, "the walk found the project's sources"
    outside = {str(path.relative_to(ROOT)): lines for path in found
               if (lines := kafka_imports(path)) and path.relative_to(ROOT).parts[0] != "bus"}
    assert {name: lines for name, lines in outside.items() if name not in EXCEPTIONS} == {}


def test_bus_itself_imports_aiokafka_and_the_exceptions_still_do() -> None:
    """The walk can fail: it sees the imports that are there (so an empty result above means something)."""
    in_bus = [path for path in (ROOT / "bus").rglob("*.py") if kafka_imports(path)]
    assert len(in_bus) >= 5
    for name in EXCEPTIONS:
        assert kafka_imports(ROOT / name), f"{name} no longer imports aiokafka: drop it from the exceptions"


def test_bus_imports_nothing_above_it() -> None:
    """The Kafka layer is a floor below the services: it imports only ``errors`` of the project."""
    above = {"broker", "routing", "adapters", "schemas", "ops", "console", "cli", "refdata"}
    wrong = []
    for path in (ROOT / "bus").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            wrong += [f"{path.name}:{node.lineno} {name}" for name in names if name.split(".")[0] in above]
    assert wrong == []


def test_the_walk_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from aiokafka.errors import KafkaError\n    return KafkaError\n", encoding="utf-8")
    assert kafka_imports(sample) == [2]


def test_the_public_face_of_bus_is_what_it_says() -> None:
    """Every name in ``bus.__all__`` exists, and the names others use are there (no private imports needed)."""
    import bus  # noqa: PLC0415 - the module under test, imported where it is checked
    import bus.memory  # noqa: PLC0415

    assert sorted(bus.__all__) == sorted(set(bus.__all__))
    missing = [name for name in bus.__all__ if not hasattr(bus, name)]
    assert missing == []
    for name in ("Bus", "KafkaBus", "Publisher", "Processor", "Reader", "Admin", "Tail", "ProcessorSpec",
                 "TransactionalProcessor", "InMessage", "OutMessage", "TransportError"):
        assert name in bus.__all__, name
    assert bus.memory.__all__ == ["MemoryBus"]


def test_both_buses_have_every_method_of_the_interface() -> None:
    import bus  # noqa: PLC0415
    from bus.memory import MemoryBus  # noqa: PLC0415

    wanted = {name for name in dir(bus.Bus) if not name.startswith("_")}
    assert {"publisher", "processor", "read_to_end", "read_tail", "tail", "ensure_topics", "align_size_limits",
            "partition_counts"} <= wanted
    for implementation in (bus.KafkaBus, MemoryBus):
        assert wanted <= set(dir(implementation)), implementation.__name__
