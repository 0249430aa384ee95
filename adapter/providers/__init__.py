"""Status-page and notification providers, one module each, behind an explicit registry."""

from __future__ import annotations

from pydantic import ValidationError

from adapter.config import ProviderSettings, format_validation_error
from adapter.providers.base import DeliveryError, Message, Provider
from adapter.providers.builtin import BuiltinStatusPage
from adapter.providers.cachet import Cachet
from adapter.providers.instatus import Instatus
from adapter.providers.smtp import Smtp
from adapter.providers.statuspage import Statuspage
from adapter.providers.webhook import Webhook

REGISTRY: dict[str, type[Provider]] = {
    BuiltinStatusPage.type: BuiltinStatusPage,
    Webhook.type: Webhook,
    Smtp.type: Smtp,
    Statuspage.type: Statuspage,
    Instatus.type: Instatus,
    Cachet.type: Cachet,
}

__all__ = [
    "REGISTRY",
    "DeliveryError",
    "Message",
    "Provider",
    "build_providers",
    "validate_provider",
]


def validate_provider(settings: ProviderSettings, where: str) -> list[str]:
    """Problems with one provider's settings, as `file: providers[i].key: message` lines."""
    file, _, prefix = where.partition(": ")
    kind = REGISTRY.get(settings.type)
    if kind is None:
        known = ", ".join(sorted(REGISTRY))
        return [f"{file}: {prefix}.type: unknown provider type {settings.type!r} (known: {known})"]
    try:
        options = kind.Options.model_validate(settings.options())
    except ValidationError as exc:
        return format_validation_error(file, exc, prefix)
    return [f"{file}: {prefix}.{key}: {message}" for key, message in kind.check(settings, options)]


def build_providers(all_settings: list[ProviderSettings]) -> dict[str, Provider]:
    return {s.name: REGISTRY[s.type](s) for s in all_settings}
