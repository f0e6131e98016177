"""The environment variables of the functions that load no pydantic, read without it.

The WebSocket authorizer imports nothing of the engine, and every function makes
its logger, metrics and tracer at import; pydantic would add about 100 ms to
the authorizer's cold start. :class:`AuthSettings` and
:class:`ObservabilitySettings` are therefore plain dataclasses, with the same
rules as :class:`functions.shared.settings.Settings`: empty values count as
unset, and a missing or malformed variable is a :class:`SettingsError` naming it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


class SettingsError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


def set_values(names: Iterable[str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``names`` that are set and not blank in ``environ`` (default ``os.environ``), stripped."""
    source = os.environ if environ is None else environ
    return {name: source[name].strip() for name in names if source.get(name, "").strip()}


def flag(name: str, value: Any) -> Any:
    """``value`` as a bool if it is a string spelling one (``true``/``1``/``yes``/``on`` or the opposites)."""
    if isinstance(value, str):
        lowered = value.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError(f"{name} must be true or false, not {value!r}")
    return value


def _checked_flag(values: dict[str, str], name: str, default: bool) -> bool:
    try:
        return bool(flag(name, values.get(name, str(default))))
    except ValueError as exc:
        raise SettingsError(str(exc)) from None


@dataclass(frozen=True)
class AuthSettings:
    """The WebSocket JWT authorizer's variables: ``JWT_ISSUER``, ``JWT_AUDIENCE`` (required), ``JWKS_URL``."""

    jwt_issuer: str
    jwt_audience: str
    jwks_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        values = set_values(("JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL"), environ)
        missing = [name for name in ("JWT_ISSUER", "JWT_AUDIENCE") if name not in values]
        if missing:
            raise SettingsError(
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set; "
                "the JWT authorizer checks tokens against them"
            )
        return cls(values["JWT_ISSUER"], values["JWT_AUDIENCE"], values.get("JWKS_URL"))


@dataclass(frozen=True)
class ObservabilitySettings:
    """``GRAPHFLOW_LOG_FORMAT`` (json or text), ``POWERTOOLS_METRICS_NAMESPACE``, ``POWERTOOLS_TRACE_DISABLED``."""

    log_format: Literal["json", "text"] = "json"
    metrics_namespace: str = "graphflow"
    trace_disabled: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ObservabilitySettings:
        values = set_values(
            ("GRAPHFLOW_LOG_FORMAT", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_TRACE_DISABLED"), environ
        )
        log_format = values.get("GRAPHFLOW_LOG_FORMAT", "json").lower()
        if log_format not in ("json", "text"):
            raise SettingsError(
                f"GRAPHFLOW_LOG_FORMAT must be json or text, not {values['GRAPHFLOW_LOG_FORMAT']!r}"
            )
        return cls(
            log_format=cast(Literal["json", "text"], log_format),
            metrics_namespace=values.get("POWERTOOLS_METRICS_NAMESPACE", "graphflow"),
            trace_disabled=_checked_flag(values, "POWERTOOLS_TRACE_DISABLED", False),
        )
