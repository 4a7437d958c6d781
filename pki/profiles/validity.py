"""Deployment-specific validity limits.

Each profile carries a default validity and a hard maximum (the standards' and reference PKIs' figures, see
docs/profiles.md). An operator may set their own default and maximum per certificate kind, for example shorter SECC
leaves (``secc-leaf=60:90``), but only *within* the profile's hard maximum: configuration can tighten policy, never
loosen it. Written as ``kind=default[:max]`` items separated by commas (``PNC_VALIDITY_DAYS``).
"""

from __future__ import annotations

from dataclasses import dataclass

from pki.errors import InvalidRequest
from pki.profiles.base import CertKind, Profile


@dataclass(frozen=True)
class ValidityLimit:
    default_days: int
    max_days: int | None = None  # None: the profile's maximum


@dataclass(frozen=True)
class ValidityPolicy:
    overrides: dict[CertKind, ValidityLimit]

    def limits(self, profile: Profile) -> tuple[int, int]:
        """(default, maximum) validity in days for ``profile`` under this policy."""
        limit = self.overrides.get(profile.kind)
        if limit is None:
            return profile.default_validity_days, profile.max_validity_days
        maximum = min(limit.max_days or profile.max_validity_days, profile.max_validity_days)
        return min(limit.default_days, maximum), maximum


NO_OVERRIDES = ValidityPolicy({})


def parse_validity_policy(text: str, profiles: list[Profile]) -> ValidityPolicy:
    """Parse ``kind=default[:max],...``; every mistake is one precise :class:`InvalidRequest`."""
    caps: dict[CertKind, int] = {}
    for p in profiles:
        caps[p.kind] = min(caps.get(p.kind, p.max_validity_days), p.max_validity_days)
    overrides: dict[CertKind, ValidityLimit] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        if not sep:
            raise InvalidRequest(f"validity item {item!r}: expected kind=default[:max]")
        try:
            kind = CertKind(name.strip())
        except ValueError:
            raise InvalidRequest(f"validity item {item!r}: unknown certificate kind {name.strip()!r}") from None
        if kind in overrides:
            raise InvalidRequest(f"validity item {item!r}: {kind.value} is set twice")
        default_text, _, max_text = value.partition(":")
        try:
            default = int(default_text)
            maximum = int(max_text) if max_text else None
        except ValueError:
            raise InvalidRequest(f"validity item {item!r}: days must be whole numbers") from None
        if default <= 0 or (maximum is not None and maximum <= 0):
            raise InvalidRequest(f"validity item {item!r}: days must be positive")
        cap = caps.get(kind)
        if cap is None:
            raise InvalidRequest(f"validity item {item!r}: {kind.value} has no fixed profile")
        if maximum is not None and maximum > cap:
            raise InvalidRequest(f"validity item {item!r}: maximum {maximum} days exceeds the {kind.value} "
                                 f"profile's hard limit of {cap} days")
        if default > (maximum or cap):
            raise InvalidRequest(f"validity item {item!r}: default {default} days exceeds the maximum "
                                 f"{maximum or cap} days")
        overrides[kind] = ValidityLimit(default, maximum)
    return ValidityPolicy(overrides)
