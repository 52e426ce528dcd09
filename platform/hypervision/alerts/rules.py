"""The alert rule model: what a member declares under `alerts:` in its tenant file,
tenants/<slug>.yaml (fields: tenants/README.md; behaviour: alerts/README.md).

A rule watches one condition on the member's devices and says who to tell:

    - name: co2-salles
      metric: air.co2
      condition: above        # above | below | silent | leak | gateway_offline
      threshold: 1500
      duration: 15m           # the condition must hold this long before an alert opens
      severity: warning       # info | warning | critical
      buildings: ["École Jules Ferry"]   # optional: only these buildings' devices
      recipients:
        emails: [technique@commune.example.fr]
        webhooks: [https://supervision.commune.example.fr/hooks/hypervision]

`silent` opens when a device has sent nothing for `duration` (or, without a duration,
for the member's `health.silent_factor` times its model's usual interval); `leak` opens
when a water meter's night flow has not fallen to zero for `threshold` nights in a row
(default: the member's `water.leak_nights`); `gateway_offline`, for the syndicate's
operators only, opens when a gateway of the network (as ChirpStack lists it) is offline
or has not been seen for `duration` (default: the member's
`health.gateway_silent_minutes`).

This module imports nothing from `hypervision` (the tenant spec imports it, not the other
way round).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AnyHttpUrl,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    field_validator,
    model_validator,
)

from ingest.decode.metrics import METRICS

Condition = Literal["above", "below", "silent", "leak", "gateway_offline"]
Severity = Literal["info", "warning", "critical"]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: object) -> object:
    """Accept '90s', '15m', '2h', '1d' besides pydantic's seconds and ISO 8601."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return dt.timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])
    return value


Duration = Annotated[dt.timedelta, BeforeValidator(_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Recipients(_Strict):
    """Who is told when an alert opens: e-mail addresses and webhook URLs."""

    emails: list[EmailStr] = Field(default_factory=list)
    webhooks: list[AnyHttpUrl] = Field(default_factory=list)

    def targets(self) -> list[tuple[str, str]]:
        """(channel, target) pairs, in declaration order."""
        return [("email", str(e)) for e in self.emails] + [
            ("webhook", str(u)) for u in self.webhooks
        ]


class AlertRule(_Strict):
    """One alert rule of a member."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    description: str = ""
    metric: str | None = Field(default=None, description="canonical metric (above/below)")
    condition: Condition
    threshold: float | None = None
    duration: Duration = dt.timedelta(0)
    severity: Severity = "warning"
    devices: list[str] = Field(default_factory=list, description="DevEUIs; none = all")
    buildings: list[str] = Field(default_factory=list, description="location.building; none = all")
    recipients: Recipients = Field(default_factory=Recipients)

    @field_validator("metric")
    @classmethod
    def _canonical(cls, value: str | None) -> str | None:
        if value is not None and value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; see ingest/decode/metrics.py")
        return value

    @field_validator("devices")
    @classmethod
    def _dev_euis(cls, values: list[str]) -> list[str]:
        out = [v.strip().lower().replace(":", "").replace("-", "") for v in values]
        for v in out:
            if not re.fullmatch(r"[0-9a-f]{16}", v):
                raise ValueError(f"{v!r} is not a DevEUI (16 hexadecimal digits)")
        return out

    @field_validator("duration")
    @classmethod
    def _not_negative(cls, value: dt.timedelta) -> dt.timedelta:
        if value < dt.timedelta(0):
            raise ValueError("duration cannot be negative")
        return value

    @model_validator(mode="after")
    def _complete(self) -> AlertRule:
        if self.condition in ("above", "below"):
            if self.metric is None or self.threshold is None:
                raise ValueError(f"condition {self.condition!r} needs a metric and a threshold")
        elif self.condition == "leak":
            if self.threshold is not None and self.threshold < 1:
                raise ValueError("a leak threshold is a number of nights (1 or more)")
        elif self.metric is not None:
            raise ValueError(f"condition {self.condition!r} takes no metric")
        if self.condition == "gateway_offline" and (self.devices or self.buildings):
            raise ValueError("condition 'gateway_offline' watches every gateway of the network:"
                             " it takes no devices nor buildings")
        return self


def _unique_names(rules: list[AlertRule]) -> list[AlertRule]:
    names = [r.name for r in rules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"rule names must be unique: {', '.join(twice)} declared twice")
    return rules


AlertRules = Annotated[list[AlertRule], AfterValidator(_unique_names)]
"""A member's rules: names are unique, since alerts are kept per rule name and device."""
