"""The handlers' configuration: every environment variable they read, parsed once per process.

:func:`settings` (also ``functions.shared.wiring.settings``) builds
:class:`Settings` from ``os.environ`` on first use (not at import) and keeps
it until :func:`functions.shared.wiring.reset`. Empty values count as unset. A malformed
value is a :class:`SettingsError` naming the variable; a variable only some
functions need (``TABLE_NAME``, ``STEP_QUEUE_URL``) is checked when a function
first asks for it.

The variables of the functions that load no pydantic (the WebSocket authorizer's
``JWT_*``, and the logger, metrics and tracer every function makes at import)
are in :mod:`functions.shared.environment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.limits import MAX_BODY_BYTES
from functions.shared.environment import SettingsError, flag, set_values

ISOLATION_MODES = ("suspects", "always", "never")
DEFAULT_WAIT_BUDGET_SECONDS = 25.0
DEFAULT_RUN_TTL_DAYS = 30.0

Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _FromEnvironment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    _required: ClassVar[dict[str, str]] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the variables from ``environ`` (default ``os.environ``); :class:`SettingsError` for a bad one."""
        values = set_values([field.alias for field in cls.model_fields.values() if field.alias], environ)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError("; ".join(_describe(error) for error in exc.errors())) from None

    def _require(self, field: str) -> str:
        value = getattr(self, field)
        if value is None:
            alias = type(self).model_fields[field].alias
            raise SettingsError(f"{alias} is not set; {self._required[field]}")
        return str(value)


def _describe(error: Any) -> str:
    name = ".".join(str(part) for part in error["loc"])
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    return f"{name} must be {error['msg'].removeprefix('Input should be ')}, not {error['input']!r}"


class Settings(_FromEnvironment):
    """The handlers' variables (:mod:`functions.shared.wiring` and the API's limits)."""

    _required: ClassVar[dict[str, str]] = {
        "table_name_value": "it names the DynamoDB table",
        "step_queue_url_value": "it is the URL of the FIFO step queue",
    }

    table_name_value: str | None = Field(None, alias="TABLE_NAME")
    blob_bucket: str | None = Field(None, alias="BLOB_BUCKET")
    step_queue_url_value: str | None = Field(None, alias="STEP_QUEUE_URL")
    ws_endpoint: str | None = Field(None, alias="WS_MANAGEMENT_ENDPOINT")
    replay_queue_url: str | None = Field(None, alias="WS_REPLAY_QUEUE_URL")
    tool_modules_value: str | None = Field(None, alias="WORKFLOW_TOOL_MODULES")
    builtin_tools: bool = Field(True, alias="WORKFLOW_BUILTIN_TOOLS")
    ttl_days: Positive = Field(DEFAULT_RUN_TTL_DAYS, alias="RUN_TTL_DAYS")
    isolation: Literal["suspects", "always", "never"] = Field("suspects", alias="STEP_ISOLATION")
    step_function_timeout_seconds: Positive | None = Field(None, alias="STEP_FUNCTION_TIMEOUT_SECONDS")
    function_memory_mb: int | None = Field(None, gt=0, alias="AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    max_subscribers_value: int | None = Field(None, ge=1, alias="MAX_SUBSCRIBERS_PER_RUN")
    wait_budget_seconds: float = Field(
        DEFAULT_WAIT_BUDGET_SECONDS, ge=0, allow_inf_nan=False, alias="WAIT_BUDGET_SECONDS"
    )
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1, alias="MAX_BODY_BYTES")
    scheduler_group: str | None = Field(None, alias="SCHEDULER_GROUP")
    scheduler_role_arn: str | None = Field(None, alias="SCHEDULER_ROLE_ARN")
    step_queue_arn: str | None = Field(None, alias="STEP_QUEUE_ARN")
    trigger_function_arn: str | None = Field(None, alias="TRIGGER_FUNCTION_ARN")
    trigger_role_arn: str | None = Field(None, alias="TRIGGER_ROLE_ARN")
    local_clock_file: str | None = Field(None, alias="LOCAL_CLOCK_FILE")

    @field_validator("isolation", mode="before")
    @classmethod
    def _isolation(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ISOLATION_MODES:
            return value.lower()
        raise ValueError(f"STEP_ISOLATION must be one of {', '.join(ISOLATION_MODES)}, not {value!r}")

    @field_validator("builtin_tools", mode="before")
    @classmethod
    def _builtin_tools(cls, value: Any) -> Any:
        return flag("WORKFLOW_BUILTIN_TOOLS", value)

    @property
    def table_name(self) -> str:
        return self._require("table_name_value")

    @property
    def step_queue_url(self) -> str:
        return self._require("step_queue_url_value")

    @property
    def tool_modules(self) -> tuple[str, ...]:
        """The tool modules to load: the built-ins unless left out, then ``WORKFLOW_TOOL_MODULES``."""
        from engine.registry import configured_tool_modules

        return configured_tool_modules(self.tool_modules_value, "true" if self.builtin_tools else "false")

    @property
    def max_subscribers(self) -> int:
        """WebSocket connections one run takes (default :data:`engine.model.DEFAULT_MAX_SUBSCRIBERS_PER_RUN`)."""
        from engine.model import DEFAULT_MAX_SUBSCRIBERS_PER_RUN

        return self.max_subscribers_value or DEFAULT_MAX_SUBSCRIBERS_PER_RUN

    @property
    def timers_configured(self) -> bool:
        """Whether long delays go to EventBridge Scheduler (``SCHEDULER_GROUP``, ``SCHEDULER_ROLE_ARN``, ``STEP_QUEUE_ARN``)."""
        return bool(self.scheduler_group and self.scheduler_role_arn and self.step_queue_arn)

    @property
    def triggers_configured(self) -> bool:
        """Whether graph triggers get schedules (``SCHEDULER_GROUP``, ``TRIGGER_FUNCTION_ARN``, ``TRIGGER_ROLE_ARN``)."""
        return bool(self.scheduler_group and self.trigger_function_arn and self.trigger_role_arn)

    def isolates(self, receives: int) -> bool:
        """Whether a record delivered ``receives`` times runs its tool in a forked child."""
        return self.isolation == "always" or (self.isolation == "suspects" and receives > 1)


@cache
def settings() -> Settings:
    """The handlers' settings, read from ``os.environ`` on first use; ``settings.cache_clear()`` forgets them."""
    return Settings.from_env()
