"""How each agency is connected: which adapter (if any) the hub runs for it.

Read once at start-up from the environment (declared in config/_catalogue.py)::

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

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal, cast, get_args

from adapters._breaker import BreakerConfig
from adapters._bridge import BridgeConfig, HttpBridge
from adapters._runner import AdapterRunner
from adapters.errors import AdapterConfigError
from adapters.ipr._clock import ClockSettings
from bus import Handler
from config import Env
from config import catalogue as c
from schemas import AGENCIES

Mode = Literal["embedded", "topic", "http"]
MODES: Final[tuple[Mode, ...]] = get_args(Mode)
CALLBACK_ENV: Final = c.CALLBACK_BASE_URL.name


def bridge_config_from_env(agency: str, env: Mapping[str, str]) -> BridgeConfig:
    """The bridge settings of ``agency`` (see the module docstring for the variables)."""
    reader = Env(env)
    config = read_bridge_config(agency, reader)
    reader.check(AdapterConfigError)
    assert config is not None
    return config


def read_bridge_config(agency: str, env: Env) -> BridgeConfig | None:
    """The bridge settings of ``agency`` from ``env``; None (and a problem in ``env``) when they cannot be used."""
    url = env.get(c.AGENCY_URL, agency)
    if not url:
        env.fail(f"{c.AGENCY_MODE.variable(agency)}=http needs {c.AGENCY_URL.variable(agency)}",
                 f"set {c.AGENCY_URL.variable(agency)} to the agency's endpoint, or choose another mode")
        return None
    token = env.get(c.AGENCY_TOKEN, agency)
    callback = env.get(c.AGENCY_CALLBACK_BASE_URL, agency) or env.get(c.CALLBACK_BASE_URL)
    try:
        return BridgeConfig(
            agency=agency,
            url=url,
            connect_timeout=env.get(c.AGENCY_CONNECT_TIMEOUT, agency),
            read_timeout=env.get(c.AGENCY_READ_TIMEOUT, agency),
            write_timeout=env.get(c.AGENCY_WRITE_TIMEOUT, agency),
            pool_timeout=env.get(c.AGENCY_POOL_TIMEOUT, agency),
            retries=env.get(c.AGENCY_RETRIES, agency),
            backoff_base=env.get(c.AGENCY_BACKOFF_BASE, agency),
            backoff_max=env.get(c.AGENCY_BACKOFF_MAX, agency),
            budget=env.get(c.AGENCY_BUDGET, agency),
            breaker=BreakerConfig(
                failures_to_open=env.get(c.AGENCY_BREAKER_FAILURES, agency),
                open_seconds=env.get(c.AGENCY_BREAKER_OPEN, agency),
                half_open_probes=env.get(c.AGENCY_BREAKER_PROBES, agency),
            ),
            callback_base_url=callback or None,
            headers={"authorization": f"Bearer {token}"} if token else {},
        )
    except ValueError as exc:  # BridgeConfig's and BreakerConfig's own checks (a URL that is not http, ...)
        env.adopt(exc)
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateBounds:
    """How long an embedded engine's open state stays in memory (the hub's NSW_STATE_* settings; None: always)."""

    retain_seconds: float | None = None
    max_in_memory: int | None = None
    #: Keys of values that left memory kept in memory by the compact index (older ones on disk).
    memory_keys: int | None = None


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
        env = Env(environ)
        modes = cls.read(env, agencies=agencies)
        env.check(AdapterConfigError)
        return modes

    @classmethod
    def read(cls, env: Env, *, agencies: Collection[str] = AGENCIES) -> AgencyModes:
        """The agencies' section from ``env``; problems are collected there (``env.check()`` raises them)."""
        modes: dict[str, Mode] = {}
        bridges: dict[str, BridgeConfig] = {}
        for agency in agencies:
            mode = cast("Mode", env.get(c.AGENCY_MODE, agency))
            if mode == "http":
                bridge = read_bridge_config(agency, env)
                if bridge is None:
                    continue  # the problem is recorded; the agency stays embedded until it is fixed
                bridges[agency] = bridge
            modes[agency] = mode
        return cls(modes=modes, bridges=bridges, ipr_clock=read_ipr_clock(env),
                   customs_random_rate=env.get(c.CUSTOMS_RANDOM_RATE))


def ipr_clock_from_env(env: Mapping[str, str]) -> ClockSettings:
    """The Art. 55 clock settings (see the module docstring)."""
    reader = Env(env)
    settings = read_ipr_clock(reader)
    reader.check(AdapterConfigError)
    return settings


def read_ipr_clock(env: Env) -> ClockSettings:
    deadline = env.get(c.IPR_DEADLINE_SECONDS)
    return ClockSettings(working_days=env.get(c.IPR_PROCEEDINGS_WORKING_DAYS),
                         extension_working_days=env.get(c.IPR_EXTENSION_WORKING_DAYS),
                         deadline_ms=int(deadline * 1000) if deadline is not None else None)


def adapter_handler(agency: str, modes: AgencyModes, *, bootstrap: str | None = None,
                    state: StateBounds | None = None) -> Handler | None:
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

        bounds = state if state is not None else StateBounds()
        return IPRAdapter(bootstrap=bootstrap, settings=modes.ipr_clock, retain_seconds=bounds.retain_seconds,
                          max_resting=bounds.max_in_memory, memory_keys=bounds.memory_keys)
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
