"""The ``nsw`` command's front door: answers ``--help``, ``--version`` and ``completion`` at once, and hands
every other command to ``broker._cli``, importing the hub (Kafka client, XML and Avro libraries) only then."""

from cli._main import COMMANDS, main

__all__ = ["COMMANDS", "main"]
