"""Every environment variable the project reads is in the README's Configuration section, and every variable
that section names is one the project reads (a setting nobody reads, or one nobody can find, is a defect)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("errors", "refdata", "schemas", "routing", "broker", "adapters", "ops", "console")
#: A quoted name, or the start of one built in code (f"NSW_DEADLINE_{agency}").
QUOTED = re.compile(r"""["'](NSW_[A-Z0-9_]+)""")
DOCUMENTED = re.compile(r"`(NSW_[A-Z0-9_<>]+)`")


#: Quoted names that are Python constants, not variables (``__all__`` entries).
CONSTANTS = frozenset({"NSW_NAMESPACE"})


def read_in_code() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found |= set(QUOTED.findall(path.read_text(encoding="utf-8")))
    return found - CONSTANTS


def documented() -> set[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    return set(DOCUMENTED.findall(section))


def covered(name: str, docs: set[str]) -> bool:
    """A name is documented exactly, or by a pattern row (``NSW_DEADLINE_<AGENCY>``) its prefix starts."""
    return name in docs or any(d.split("<", 1)[0] and name.startswith(d.split("<", 1)[0]) and "<" in d
                               for d in docs)


def test_every_variable_read_is_documented() -> None:
    docs = documented()
    missing = sorted(n for n in read_in_code() if not covered(n, docs))
    assert missing == [], f"read in the code but not in the README's Configuration section: {missing}"


def test_every_documented_variable_is_read() -> None:
    code = read_in_code()
    unread = sorted(d for d in documented() if "<" not in d and d not in code
                    and not any(d.startswith(prefix) for prefix in code if prefix.endswith("_")))
    assert unread == [], f"in the README's Configuration section but read nowhere: {unread}"
