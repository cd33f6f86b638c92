"""One configuration, declared once (config/_catalogue.py), documented in the README and read nowhere else.

- every declared setting is in the README (the Configuration table, or for an agency's HTTP settings the
  "Agencies: delivery modes" section) with its default, and every variable the table names is declared;
- every ``NSW_*`` name the code quotes is declared, and no module outside ``config/`` reads the environment for
  one (``os.environ`` / ``os.getenv``): the hub and its services receive their sections;
- the sections' defaults are the declarations' (an unset environment changes nothing);
- a bad setting is named with its value and a hint, and every bad setting at once.
"""

from __future__ import annotations

import ast
import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import orjson
import pytest

from adapters import AgencyModes
from adapters.ipr._clock import ClockSettings
from broker._cli import main as cli_main
from broker._config import HubConfig
from bus import _auth as _kafka_auth
from config import SETTINGS, ConfigError, Env, Setting, by_name, undeclared
from config import catalogue as c
from ops._kafka import LocalKafkaConfig
from ops._settings import REDACTED, Settings
from schemas import AGENCIES

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("errors", "config", "refdata", "schemas", "routing", "broker", "adapters", "ops", "console", "cli")
#: A quoted name, or the start of one built in code (f"NSW_DEADLINE_{agency}").
QUOTED = re.compile(r"""["'](NSW_[A-Z0-9_]+)""")
DOCUMENTED = re.compile(r"`(NSW_[A-Z0-9_<>]+)`")
#: Quoted names that are Python constants, not variables (``__all__`` entries).
CONSTANTS = frozenset({"NSW_NAMESPACE"})
#: Modules outside ``config/`` that touch ``os.environ``, and why (none of them reads an NSW_ setting).
ENVIRON_USERS = {
    "ops/_kafka.py": "JAVA_HOME to find java, and the broker JVM's environment (a copy)",
    "broker/_split.py": "the --split child's environment: the parent's, with its admin port set",
    "ops/_chaos.py": "the hub instances' environment in the fault campaign: the parent's, with their own settings",
}


def _section(title: str) -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table_rows() -> list[tuple[list[str], str]]:
    """(variables, default column) of each row of the Configuration table."""
    rows = []
    for line in _section("Configuration").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and DOCUMENTED.search(cells[0]):
            rows.append((DOCUMENTED.findall(cells[0]), cells[1]))
    return rows


def read_in_code() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found |= set(QUOTED.findall(path.read_text(encoding="utf-8")))
    return found - CONSTANTS


def declared(name: str) -> bool:
    """``name`` is a declared setting, one agency's variable of a pattern, or the prefix code builds one from."""
    for setting in SETTINGS:
        if not setting.pattern:
            if name == setting.name:
                return True
            continue
        head, _, tail = setting.name.partition("<")
        tail = tail.partition(">")[2]
        if name.startswith(head) and (name.endswith(tail) or name == head):
            return True
    return False


def test_every_declared_setting_is_in_the_readme_with_its_default() -> None:
    rows = table_rows()
    modes = _section("Agencies: delivery modes").replace("\n", " ")
    wrong = []
    for setting in SETTINGS:
        if setting.name.startswith("NSW_AGENCY_<AGENCY>_") and setting.name != c.AGENCY_MODE.name:
            suffix = setting.name.removeprefix("NSW_AGENCY_<AGENCY>")
            if f"`{suffix}`" not in modes and f"NSW_AGENCY_<A>{suffix}" not in modes:
                wrong.append(f"{setting.name}: not in 'Agencies: delivery modes'")
            elif setting.default is not None and f"`{suffix}` {setting.shown}" not in modes:
                wrong.append(f"{setting.name}: default {setting.shown} not beside it in 'Agencies: delivery modes'")
            continue
        row = next((default for names, default in rows if setting.name in names), None)
        if row is None:
            wrong.append(f"{setting.name}: no row in the Configuration table")
        elif setting.default_text not in row.replace("`", ""):
            wrong.append(f"{setting.name}: the table's default is {row!r}, the declaration's {setting.shown!r}")
    assert wrong == [], wrong


def test_every_variable_in_the_table_is_declared() -> None:
    named = {name for names, _ in table_rows() for name in names}
    assert sorted(n for n in named if not declared(n)) == []


def test_every_variable_quoted_in_the_code_is_declared() -> None:
    assert sorted(n for n in read_in_code() if not declared(n)) == []


def _environ_reads(tree: ast.AST) -> list[ast.Attribute]:
    """``os.environ`` and ``os.getenv`` uses in a module."""
    return [node for node in ast.walk(tree) if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "os" and node.attr in ("environ", "getenv", "environb")]


def test_only_the_config_room_reads_the_environment() -> None:
    offenders = []
    for package in PACKAGES:
        if package == "config":
            continue
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            relative = path.relative_to(ROOT).as_posix()
            lines = source.splitlines()
            for use in _environ_reads(ast.parse(source)):
                line = lines[use.lineno - 1]
                if relative not in ENVIRON_USERS:
                    offenders.append(f"{relative}:{use.lineno}: reads os.environ")
                elif "NSW_" in line and "**os.environ" not in line:  # a child's copy may set one; none is read
                    offenders.append(f"{relative}:{use.lineno}: an NSW_ variable read beside os.environ")
    assert offenders == []


def test_the_allowed_environment_users_still_need_it() -> None:
    for relative in ENVIRON_USERS:
        assert _environ_reads(ast.parse((ROOT / relative).read_text(encoding="utf-8"))), relative


def test_the_check_catches_a_module_reading_the_environment() -> None:
    tree = ast.parse('import os\nport = os.environ.get("NSW_PORT")\nhome = os.getenv("HOME")\n')
    assert len(_environ_reads(tree)) == 2


def test_names_are_declared_once() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    assert all(s.doc and s.shown and s.section for s in SETTINGS)


def test_an_unset_environment_gives_every_sections_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.hub == HubConfig()
    assert settings.hub.signing_dir == Path(".nsw") / "keys"
    assert [settings.agencies.mode(a) for a in AGENCIES] == ["embedded"] * len(AGENCIES)
    assert settings.agencies.ipr_clock == ClockSettings()
    assert settings.agencies.customs_random_rate is None
    local = settings.local_kafka
    assert (local.host, local.port, local.controller_port, local.heap, local.security, local.agencies) == (
        "127.0.0.1", 9092, 9093, "1g", "plaintext", AGENCIES)
    assert local.home == Path.cwd() / ".nsw" / "kafka"
    assert (settings.client.api_key, settings.client.progress) == (None, None)


def test_the_declarations_defaults_are_the_sections_defaults() -> None:
    hub = HubConfig()
    for setting, value in ((c.PORT, hub.port), (c.HOST, hub.host), (c.RATE_LIMIT, hub.rate_limit),
                           (c.MAX_BACKLOG, hub.max_backlog), (c.COMMIT_INTERVAL_MS, hub.commit_interval_ms),
                           (c.WEBHOOK_MAX_AGE_SECONDS, hub.webhook_max_age_seconds), (c.DEV_KEY, hub.dev_key),
                           (c.MAX_MESSAGE_BYTES, hub.max_message_bytes), (c.STATE_DIR, hub.state_dir)):
        assert setting.default == value, setting.name


def test_values_are_read_into_their_sections() -> None:
    settings = Settings.from_env({"NSW_PORT": "8181", "NSW_RATE_LIMIT": "7.5", "NSW_DEADLINE_SPS": "60",
                                  "NSW_SIGNING_KEY_DIR": "/keys", "NSW_DEV_KEY": "0", "NSW_KAFKA_PORT": "19092",
                                  "NSW_AGENCY_IPR_MODE": "TOPIC", "NSW_IPR_DEADLINE_SECONDS": "2.5",
                                  "NSW_PROGRESS": "1", "NSW_API_KEY": "k"})
    assert (settings.hub.port, settings.hub.rate_limit, settings.hub.deadlines["sps"]) == (8181, 7.5, 60)
    assert (settings.hub.signing_dir, settings.hub.dev_key) == (Path("/keys"), False)
    assert settings.local_kafka.port == 19092
    assert settings.agencies.mode("ipr") == "topic"
    assert settings.agencies.ipr_clock.deadline_ms == 2500
    assert (settings.client.progress, settings.client.api_key) == (True, "k")


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("NSW_PORT", "abc", "is not a whole number"),
    ("NSW_RATE_LIMIT", "nan", "is not a number"),
    ("NSW_ADMIN_PORT", "70000", "is outside 1..65535"),
    ("NSW_DEV_KEY", "yes", "is not 0 or 1"),
    ("NSW_LOG_FORMAT", "xml", "is not one of auto, json, console"),
    ("NSW_KAFKA_HEAP", "lots", "is not a JVM size"),
    ("NSW_KAFKA_AGENCIES", "sps,Bad Name", "'Bad Name'"),
    ("NSW_CUSTOMS_RANDOM_RATE", "1.5", "is not between 0 and 1"),
    ("NSW_COMMIT_MAX_RECORDS", "0", "is below 1"),
])
def test_a_bad_value_names_the_variable_the_value_and_the_form(variable: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({variable: value})
    assert str(caught.value).startswith(f"{variable}={value!r} ")
    assert says in str(caught.value)
    assert caught.value.hint.startswith(f"unset {variable}") or caught.value.hint.startswith("give ")


def test_every_bad_setting_is_named_at_once() -> None:
    env = {"NSW_PORT": "abc", "NSW_KAFKA_PORT": "ninety", "NSW_AGENCY_SPS_MODE": "http", "NSW_KAFKA_USER": "u",
           "NSW_IPR_PROCEEDINGS_WORKING_DAYS": "-1"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 5, messages
    for name in ("NSW_PORT=", "NSW_KAFKA_PORT=", "NSW_AGENCY_SPS_URL", "NSW_KAFKA_PASSWORD",
                 "NSW_IPR_PROCEEDINGS_WORKING_DAYS="):
        assert any(name in m for m in messages), name
    assert str(caught.value).startswith("5 settings cannot be used: ")


def test_a_variable_two_sections_read_is_one_problem() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"NSW_KAFKA_SECURITY": "tls"})
    assert [p.message for p in caught.value.problems] == [
        "NSW_KAFKA_SECURITY='tls' is not one of plaintext, sasl"]


def test_a_pattern_setting_is_one_variable_per_agency() -> None:
    assert c.AGENCY_MODE.variable("export-control") == "NSW_AGENCY_EXPORT_CONTROL_MODE"
    env = Env({"NSW_DEADLINE_SPS": "x"})
    assert env.get(c.DEADLINE, "sps", default=600) == 600
    assert env.problems[0].message == "NSW_DEADLINE_SPS='x' is not a whole number"
    assert env.problems[0].hint == "unset NSW_DEADLINE_SPS for its default, 600"


def test_undeclared_variables_are_found() -> None:
    found = undeclared({"NSW_PROT": "1", "NSW_PORT": "1", "NSW_AGENCY_SPS_URL": "x", "HOME": "/"}, SETTINGS)
    assert found == ["NSW_PROT"]
    assert by_name("NSW_PORT") is c.PORT


def _show(env: dict[str, str], *flags: str) -> list[dict[str, object]]:
    out = io.StringIO()
    before = list(_kafka_auth._PROCESS)  # nsw hands its credentials to the process: give this one's back
    try:
        with redirect_stdout(out):
            assert cli_main(["config", "show", "--json", *flags], settings=Settings.from_env(env)) == 0
    finally:
        _kafka_auth._PROCESS[:] = before
    rows: list[dict[str, object]] = orjson.loads(out.getvalue())
    return rows


def test_config_show_prints_the_set_values_with_secrets_redacted() -> None:
    rows = _show({"NSW_PORT": "8181", "NSW_KAFKA_USER": "nsw-ops", "NSW_KAFKA_PASSWORD": "hunter2",
                  "NSW_WEBHOOK_KEY": "c2VjcmV0", "NSW_AGENCY_SPS_MODE": "topic"})
    shown = {row["name"]: row["value"] for row in rows}
    assert shown == {"NSW_PORT": 8181, "NSW_KAFKA_USER": "nsw-ops", "NSW_KAFKA_PASSWORD": REDACTED,
                     "NSW_WEBHOOK_KEY": REDACTED, "NSW_AGENCY_SPS_MODE": "topic"}
    every = _show({}, "--all")
    assert {row["name"] for row in every} >= {s.name for s in SETTINGS if not s.pattern}
    assert next(row for row in every if row["name"] == "NSW_PORT") == {
        "name": "NSW_PORT", "section": "hub", "set": False, "value": 8080, "default": "8080",
        "meaning": c.PORT.doc}
    in_effect = {row["name"]: row["value"] for row in every}
    assert in_effect["NSW_DEADLINE_CUSTOMS"] == HubConfig().deadlines["customs"]
    assert in_effect["NSW_SIGNING_KEY_DIR"] == str(Path(".nsw") / "keys")
    assert in_effect["NSW_KAFKA_HOME"] == str(Path.cwd() / ".nsw" / "kafka")
    assert in_effect["NSW_WEBHOOK_KEY"] is None


def test_secrets_are_declared_secret() -> None:
    secrets = {s.name for s in SETTINGS if s.secret}
    assert secrets == {"NSW_WEBHOOK_KEY", "NSW_CONSOLE_KEY", "NSW_API_KEY", "NSW_KAFKA_PASSWORD",
                       "NSW_AGENCY_<AGENCY>_TOKEN"}
    assert all(isinstance(s, Setting) for s in SETTINGS)
    assert "hunter2" not in repr(Settings.from_env({"NSW_KAFKA_USER": "u", "NSW_KAFKA_PASSWORD": "hunter2"}))
    assert LocalKafkaConfig.from_env({}).port == 9092
    assert AgencyModes.from_env({}).mode("sps") == "embedded"


def test_the_signing_key_dir_is_where_the_hub_and_provision_keep_the_keys(tmp_path: Path) -> None:
    from broker._provision import provision_files  # noqa: PLC0415

    config = Settings.from_env({"NSW_STATE_DIR": str(tmp_path / "state"),
                                "NSW_SIGNING_KEY_DIR": str(tmp_path / "shared-keys")}).hub
    assert config.signing_dir == tmp_path / "shared-keys"
    provision_files(config)
    assert list((tmp_path / "shared-keys").glob("*.jwk"))
    assert not (tmp_path / "state" / "keys").exists()
