"""One error root: every exception class the project defines is an ``NSWError`` with a typed ``retriable``,
except the few internal signals that never leave their module (listed here, each with why)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import errors
from errors import NSWError

PACKAGES = ("errors", "config", "bus", "refdata", "schemas", "routing", "broker", "adapters", "ops", "console")

#: Exceptions used as control flow inside one module, caught there, never raised to a caller.
INTERNAL_SIGNALS = {
    "adapters._callback._Refused": "carries the callback's HTTP answer out of a helper, caught in the endpoint",
    "broker._ingress.BodyTimeout": "a body deadline inside the ingress, answered 408 there",
    "console._app.FormError": "carries a console form's answer (an HTML page) to its route",
    "adapters._bridge._Retry": "tells the bridge's retry loop to try again, caught in the same function",
    "broker._verify_cmd._CannotCheckError": "ends `nsw verify` with its exit code, caught in the command",
    "config._declare._BadValueError": "a kind's parser says why a text is refused, caught by the reader (a Problem)",
    "schemas._codec._Slow": "the compiled Avro code hands an input to fastavro, caught in the same module",
    "schemas._codec._Unsupported": "a schema the codec does not compile, caught while the registry is built",
}


def project_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for name in PACKAGES:
        package = importlib.import_module(name)
        modules = [package] + [importlib.import_module(m.name) for m in
                               pkgutil.walk_packages(package.__path__, prefix=f"{name}.")
                               if not m.name.endswith("__main__")]
        for module in modules:
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                    found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return found


def test_every_project_error_is_an_nsw_error_with_a_typed_retriable() -> None:
    found = project_exceptions()
    assert len(found) > 20, "the walk found the project's errors"
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, NSWError)
                     and name not in INTERNAL_SIGNALS)
    assert outside == [], f"not under the one error root: {outside}"
    for name, cls in found.items():
        if issubclass(cls, NSWError):
            assert isinstance(cls.retriable, bool), name


def test_the_internal_signals_still_exist() -> None:
    assert set(INTERNAL_SIGNALS) <= set(project_exceptions()), "an internal signal was renamed: update the list"


def test_the_root_imports_nothing_of_the_project() -> None:
    source = inspect.getsource(errors)
    assert "\nimport " not in source.replace("from __future__ import annotations", "")
    assert "\nfrom " not in source.replace("from __future__ import annotations", "")
