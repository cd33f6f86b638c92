"""How each agency is connected: which adapter (if any) the hub runs for it.

Read once at start-up from the environment::

    NSW_AGENCY_<AGENCY>_MODE        embedded (default) | topic | http
        embedded   the reference engine decides in-process (the hub runs with no real agency)
        topic      the hub runs no adapter: the agency's own system consumes
                   nsw.agency.<agency>.requests and produces to nsw.agency.<agency>.decisions
        http       the HTTP bridge calls the agency's REST system (adapters._bridge)

    for http mode (seconds unless said otherwise):
    NSW_AGENCY_<AGENCY>_URL                 required: the agency endpoint the requests are POSTed to
    NSW_AGENCY_<AGENCY>_CONNECT_TIMEOUT     2       NSW_AGENCY_<AGENCY>_READ_TIMEOUT     10
    NSW_AGENCY_<AGENCY>_WRITE_TIMEOUT       5       NSW_AGENCY_<AGENCY>_POOL_TIMEOUT     2
    NSW_AGENCY_<AGENCY>_RETRIES             3       further attempts after the first
    NSW_AGENCY_<AGENCY>_BACKOFF_BASE        0.2     NSW_AGENCY_<AGENCY>_BACKOFF_MAX      5
    NSW_AGENCY_<AGENCY>_BUDGET              30      all attempts of one request together
    NSW_AGENCY_<AGENCY>_BREAKER_FAILURES    5       consecutive failures that open the circuit
    NSW_AGENCY_<AGENCY>_BREAKER_OPEN        30      seconds the circuit stays open
    NSW_AGENCY_<AGENCY>_BREAKER_PROBES      1       calls let through when half-open
    NSW_AGENCY_<AGENCY>_TOKEN               -       bearer token sent to the agency (optional)
    NSW_AGENCY_<AGENCY>_CALLBACK_BASE_URL   -       overrides NSW_CALLBACK_BASE_URL for this agency
    NSW_CALLBACK_BASE_URL                   -       the hub's public base URL for reply_to
                                                    (callbacks: POST <base>/v1/agencies/<agency>/decisions)

    for the embedded IPR engine's TRIPS Art. 55 clock (adapters/ipr/_clock.py):
    NSW_IPR_PROCEEDINGS_WORKING_DAYS        10      working days the right holder has to start proceedings
    NSW_IPR_EXTENSION_WORKING_DAYS          10      the one extension on request
    NSW_IPR_DEADLINE_SECONDS                -       drills and tests only: the time-limit is this many seconds
                                                    after the suspension instead of the end of valid_until
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from adapters._breaker import BreakerConfig
from adapters._bridge import BridgeConfig, HttpBridge
from adapters._runner import AdapterRunner
from adapters.errors import AdapterConfigError
from adapters.ipr._clock import ClockSettings
from bus import Handler
from schemas import AGENCIES

Mode = Literal["embedded", "topic", "http"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)
CALLBACK_ENV: Final = "NSW_CALLBACK_BASE_URL"


def _env_name(agency: str, setting: str) -> str:
    return f"NSW_AGENCY_{agency.upper().replace('-', '_')}_{setting}"


def _number(env: Mapping[str, str], agency: str, setting: str, default: float) -> float:
    name = _env_name(agency, setting)
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError:
        raise AdapterConfigError(f"{name}={raw!r} is not a number") from None


def _whole(env: Mapping[str, str], agency: str, setting: str, default: int) -> int:
    value = _number(env, agency, setting, default)
    if value != int(value):
        raise AdapterConfigError(f"{_env_name(agency, setting)} must be a whole number")
    return int(value)


def bridge_config_from_env(agency: str, env: Mapping[str, str]) -> BridgeConfig:
    """The bridge settings of ``agency`` (see the module docstring for the variables)."""
    url = env.get(_env_name(agency, "URL"), "").strip()
    if not url:
        raise AdapterConfigError(f"{_env_name(agency, 'MODE')}=http needs {_env_name(agency, 'URL')}")
    token = env.get(_env_name(agency, "TOKEN"), "").strip()
    callback = (env.get(_env_name(agency, "CALLBACK_BASE_URL")) or env.get(CALLBACK_ENV) or "").strip()
    return BridgeConfig(
        agency=agency,
        url=url,
        connect_timeout=_number(env, agency, "CONNECT_TIMEOUT", 2.0),
        read_timeout=_number(env, agency, "READ_TIMEOUT", 10.0),
        write_timeout=_number(env, agency, "WRITE_TIMEOUT", 5.0),
        pool_timeout=_number(env, agency, "POOL_TIMEOUT", 2.0),
        retries=_whole(env, agency, "RETRIES", 3),
        backoff_base=_number(env, agency, "BACKOFF_BASE", 0.2),
        backoff_max=_number(env, agency, "BACKOFF_MAX", 5.0),
        budget=_number(env, agency, "BUDGET", 30.0),
        breaker=BreakerConfig(
            failures_to_open=_whole(env, agency, "BREAKER_FAILURES", 5),
            open_seconds=_number(env, agency, "BREAKER_OPEN", 30.0),
            half_open_probes=_whole(env, agency, "BREAKER_PROBES", 1),
        ),
        callback_base_url=callback or None,
        headers={"authorization": f"Bearer {token}"} if token else {},
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AgencyModes:
    """Each agency's delivery mode, and the bridge settings of those in ``http`` mode."""

    modes: Mapping[str, Mode] = field(default_factory=dict)
    bridges: Mapping[str, BridgeConfig] = field(default_factory=dict)
    ipr_clock: ClockSettings = field(default_factory=ClockSettings)
    #: NSW_CUSTOMS_RANDOM_RATE: the embedded customs engine's random selection rate instead of the one in
    #: refdata/customs-risk-profiles.json (a drill, a test hub that must answer deterministically).
    customs_random_rate: float | None = None

    def __post_init__(self) -> None:
        for agency, mode in self.modes.items():
            if mode not in MODES:
                raise AdapterConfigError(f"agency {agency}: mode {mode!r} is not one of {', '.join(MODES)}")
            if mode == "http" and agency not in self.bridges:
                raise AdapterConfigError(f"agency {agency}: http mode needs bridge settings")

    def mode(self, agency: str) -> Mode:
        return self.modes.get(agency, "embedded")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, agencies: Collection[str] = AGENCIES
                 ) -> AgencyModes:
        env = os.environ if environ is None else environ
        modes: dict[str, Mode] = {}
        bridges: dict[str, BridgeConfig] = {}
        for agency in agencies:
            name = _env_name(agency, "MODE")
            raw = env.get(name, "embedded").strip().lower() or "embedded"
            if raw not in MODES:
                raise AdapterConfigError(f"{name}={raw!r}: choose embedded, topic or http")
            mode: Mode = raw
            modes[agency] = mode
            if mode == "http":
                bridges[agency] = bridge_config_from_env(agency, env)
        raw_rate = env.get("NSW_CUSTOMS_RANDOM_RATE", "").strip()
        try:
            rate = float(raw_rate) if raw_rate else None
        except ValueError:
            raise AdapterConfigError(f"NSW_CUSTOMS_RANDOM_RATE={raw_rate!r} is not a number") from None
        if rate is not None and not 0 <= rate <= 1:
            raise AdapterConfigError("NSW_CUSTOMS_RANDOM_RATE must be between 0 and 1")
        return cls(modes=modes, bridges=bridges, ipr_clock=ipr_clock_from_env(env), customs_random_rate=rate)


def ipr_clock_from_env(env: Mapping[str, str]) -> ClockSettings:
    """The Art. 55 clock settings (see the module docstring)."""
    def whole(name: str, default: int) -> int:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        if not raw.isdigit():
            raise AdapterConfigError(f"{name}={raw!r} must be a whole number of days")
        return int(raw)

    deadline = env.get("NSW_IPR_DEADLINE_SECONDS", "").strip()
    try:
        deadline_ms = int(float(deadline) * 1000) if deadline else None
    except ValueError:
        raise AdapterConfigError(f"NSW_IPR_DEADLINE_SECONDS={deadline!r} is not a number") from None
    if deadline_ms is not None and deadline_ms <= 0:
        raise AdapterConfigError("NSW_IPR_DEADLINE_SECONDS must be positive")
    return ClockSettings(working_days=whole("NSW_IPR_PROCEEDINGS_WORKING_DAYS", 10),
                         extension_working_days=whole("NSW_IPR_EXTENSION_WORKING_DAYS", 10), deadline_ms=deadline_ms)


def adapter_handler(agency: str, modes: AgencyModes, *, bootstrap: str | None = None) -> Handler | None:
    """The handler the hub runs on ``nsw.agency.<agency>.requests``; None in topic mode.

    The embedded IPR engine runs with its Art. 55 timer and changelog when ``bootstrap`` is given (the hub
    always gives it); without, it decides like the other reference engines and keeps no clock. So does the
    embedded customs engine with its feedback reader (``nsw.inspections``, ``nsw.risk.tuning``): start it with
    :func:`start_handler` once the topics exist.

    Build it once per hub (not per service restart): an ``HttpBridge`` keeps its HTTP client and
    its circuit breaker's memory; close it with :func:`close_handler` when the hub stops.
    """
    mode = modes.mode(agency)
    if mode == "topic":
        return None
    if mode == "http":
        return HttpBridge(modes.bridges[agency])
    if agency == "ipr" and bootstrap is not None:
        from adapters.ipr._service import IPRAdapter  # noqa: PLC0415 - the Kafka edge, only when running

        return IPRAdapter(bootstrap=bootstrap, settings=modes.ipr_clock)
    if agency == "customs" and bootstrap is not None:
        from adapters.customs._service import CustomsAdapter  # noqa: PLC0415 - the Kafka edge, only when running

        return CustomsAdapter(bootstrap=bootstrap, random_rate=modes.customs_random_rate)
    if agency == "customs" and modes.customs_random_rate is not None:
        from adapters.customs import customs_engine_with_random_rate  # noqa: PLC0415

        return AdapterRunner(customs_engine_with_random_rate(modes.customs_random_rate)).handle
    from adapters import ENGINES  # noqa: PLC0415 - adapters/__init__.py imports this module

    engine = ENGINES.get(agency)
    if engine is None:  # configured without an engine (refdata/agencies.json): its own system decides
        return None
    return AdapterRunner(engine).handle


async def start_handler(handler: Handler | None) -> None:
    """Start what a handler reads besides its requests (the customs feedback reader); a no-op for the others."""
    from adapters.customs._service import CustomsAdapter  # noqa: PLC0415

    if isinstance(handler, CustomsAdapter):
        await handler.start()


async def close_handler(handler: Handler | None) -> None:
    """Release what a handler holds (the bridge's HTTP connections, the customs feedback reader); a no-op for
    the others."""
    from adapters.customs._service import CustomsAdapter  # noqa: PLC0415

    if isinstance(handler, HttpBridge | CustomsAdapter):
        await handler.aclose()
