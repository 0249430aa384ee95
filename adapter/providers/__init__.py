"""Status-page and notification providers, one module each, behind an explicit registry."""

from __future__ import annotations

from pydantic import ValidationError

from adapter.config import ProviderSettings
from adapter.configfile import error_paths
from adapter.providers.apprise import Apprise
from adapter.providers.base import DeliveryError, Message, Provider, RequestHooks
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
    Apprise.type: Apprise,
}

__all__ = [
    "REGISTRY",
    "DeliveryError",
    "Message",
    "Provider",
    "RequestHooks",
    "build_providers",
    "check_settings",
]


def check_settings(settings: ProviderSettings) -> list[tuple[str, str]]:
    """Problems with one provider's own settings, as (key path within the provider, message)."""
    kind = REGISTRY.get(settings.type)
    if kind is None:
        known = ", ".join(sorted(REGISTRY))
        return [("type", f"unknown provider type {settings.type!r} (known: {known})")]
    try:
        options = kind.Options.model_validate(settings.options())
    except ValidationError as exc:
        return error_paths(exc)
    return kind.check(settings, options)


def build_providers(
    all_settings: list[ProviderSettings], hooks: RequestHooks | None = None
) -> dict[str, Provider]:
    """Each configured provider by name, every one running `hooks` around its requests."""
    return {s.name: REGISTRY[s.type](s, hooks) for s in all_settings}
