"""YAML + environment → validated settings; every error names the file and the key path."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from adapter.catalog import Catalog, load_catalog
from adapter.configfile import format_validation_error, problem_line, read_yaml
from adapter.durations import parse_duration
from adapter.matchers import parse_matcher

Duration = Annotated[timedelta, BeforeValidator(lambda v: parse_duration(v) if isinstance(v, str) else v)]
AudienceChoice = Literal["technical", "business", "all"]
# What a person or token may do, each role doing all the ones before it may (adapter.web.identity).
Role = Literal["viewer", "author", "approver", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "author", "approver", "admin")
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]

# The shipped config's desk user `admin`, password "dualtrack": for `make run` on loopback only.
DEMO_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$ZHVhbHRyYWNrLWRlbW8$WAePvEIgK+v63X6Xgv6wEk6VMiyQoie++ZmzBbZsilk"  # noqa: S105
)
# Secrets anyone can know: the defaults the shipped configs fall back to when their environment
# variables are not set, and the placeholders of deploy/kubernetes/secret.example.yaml. `serve`
# refuses them beyond loopback; `check-config` names them (see `weak_secrets`).
DEMO_SECRETS = frozenset(
    {
        "dev-alertmanager-token",
        "dev-alertmanager-password",
        "dev-api-token",
        "devroutingkey0123456789abcdef012",
        "dev-status-page-secret-change-me",
        "dev-session-secret-change-me",
        "dev-feedback-secret-change-me",
        DEMO_PASSWORD_HASH,
        "REPLACE-ME-alertmanager-bearer-token",
        "REPLACE-ME-api-token",
        "REPLACE-ME-status-page-secret",
        "REPLACEME0123456789abcdef0123456",
    }
)


class ConfigError(Exception):
    """Invalid configuration; `problems` holds one `file: key.path: message` line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(Strict):
    bind: str = "127.0.0.1:9095"
    public_url: str = "http://127.0.0.1:9095"
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    workers: int = Field(default=2, ge=1)
    # Requests one worker serves at once; webhooks among them share one write transaction.
    threads: int = Field(default=4, ge=1)

    @field_validator("bind")
    @classmethod
    def _bind_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9095")
        return value


class StorageSettings(Strict):
    url: str = "sqlite:///data/dualtrack.db"
    # FULL makes every commit durable across power loss (SQLite syncs the WAL at each commit);
    # NORMAL: process crashes only.
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    # Incidents resolved longer ago lose their notices, alerts and timeline; their own rows, what
    # uptime bars and SLA figures need, stay. 0 keeps everything.
    retention: Duration = Field(default=timedelta(days=400), ge=timedelta(0))


class BasicAuthUser(Strict):
    username: str = Field(min_length=1)
    password: str = Field(min_length=1)


class SourceAuth(Strict):
    bearer_tokens: list[Annotated[str, Field(min_length=1)]] = []
    basic_auth: list[BasicAuthUser] = []


class PagerDutyAuth(Strict):
    # Several during secret rotation; any match accepts.
    signing_secrets: list[Annotated[str, Field(min_length=1)]] = []
    # Accept unsigned webhooks when no secret is configured: for trying things out only.
    allow_unsigned: bool = False


class EventsAuth(Strict):
    routing_keys: list[str] = []

    @field_validator("routing_keys")
    @classmethod
    def _pagerduty_format(cls, value: list[str]) -> list[str]:
        # PagerDuty's integration key format, which Events API senders may check before sending.
        for key in value:
            if not re.fullmatch(r"[A-Za-z0-9]{32}", key):
                raise ValueError("a routing key is 32 letters and digits, like a PagerDuty integration key")
        return value


class AuthSettings(Strict):
    alertmanager: SourceAuth = SourceAuth()
    pagerduty: PagerDutyAuth = PagerDutyAuth()
    events: EventsAuth = EventsAuth()
    # Desk sessions are signed with this; the desk's log-in needs it.
    session_secret: str | None = Field(default=None, min_length=16)
    session_lifetime: Duration = Field(default=timedelta(hours=12), gt=timedelta(0))
    # Failed log-ins allowed per address and per user name within `login_window`.
    login_attempts: int = Field(default=5, ge=1)
    login_window: Duration = Field(default=timedelta(minutes=15), gt=timedelta(0))
    # Behind oauth2-proxy and the like: the user name in this header, from `trusted_proxies` only.
    trusted_header: str | None = None
    trusted_proxies: list[str] = ["127.0.0.1/32", "::1/128"]
    groups_header: str = "X-Forwarded-Groups"
    # The proxy's groups (comma-separated in groups_header) → roles; the highest one applies.
    group_roles: dict[str, Role] = {}
    # The role of a proxied user in none of those groups; none: refused.
    default_role: Role | None = None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not an address or network such as 10.0.0.0/8") from None
        return value


class User(Strict):
    """A person who logs in to the desk."""

    name: Name
    # An argon2 hash: `dualtrack users hash` prints one.
    password_hash: str = Field(pattern=r"^\$argon2(id|i|d)\$")
    role: Role = "viewer"
    team: str | None = Field(default=None, min_length=1, max_length=100)


class PagerDutySettings(Strict):
    priorities: dict[str, int] = {"P1": 5, "P2": 4, "P3": 3, "P4": 2, "P5": 1}
    urgencies: dict[str, int] = {"high": 4, "low": 2}
    # What an acknowledgement in PagerDuty makes of the incident's status.
    acknowledged_status: Literal["investigating", "identified"] = "investigating"
    # How long webhook and event ids are remembered for dedupe: PagerDuty retries for 48 hours.
    dedupe_window: Duration = Field(default=timedelta(hours=48), gt=timedelta(0))

    @field_validator("priorities", "urgencies")
    @classmethod
    def _levels(cls, value: dict[str, int]) -> dict[str, int]:
        for name, level in value.items():
            if not 1 <= level <= 5:
                raise ValueError(f"{name}: level must be 1 to 5, got {level}")
        return value


class ApiToken(Strict):
    name: Name
    token: str = Field(min_length=1)
    role: Role


# A plain string is an unnamed admin token, as before tokens had names (check-config warns).
TokenEntry = Annotated[
    Annotated[str, Field(min_length=1), Tag("~text")] | Annotated[ApiToken, Tag("~named")],
    Discriminator(lambda value: "~text" if isinstance(value, str) else "~named"),
]


class ApiSettings(Strict):
    tokens: list[TokenEntry] = []

    def named(self) -> list[ApiToken]:
        return [
            t if isinstance(t, ApiToken) else ApiToken(name="api-token", token=t, role="admin")
            for t in self.tokens
        ]


class AlertmanagerSource(Strict):
    url: str = Field(pattern=r"^https?://")
    interval: Duration = timedelta(minutes=1)
    # How long an alert may be missing from Alertmanager before its incident side resolves it.
    grace: Duration = timedelta(minutes=10)
    bearer_token: str | None = None
    timeout: Duration = timedelta(seconds=10)


class ReconcileSettings(Strict):
    # Alertmanagers to compare open incidents with; several for an HA pair (any one holding an
    # alert keeps it open).
    alertmanager: list[AlertmanagerSource] = []


class CorrelationSettings(Strict):
    service_labels: list[str] = ["service", "job"]
    reopen_window: Duration = timedelta(minutes=30)
    # Alertmanager → PagerDuty → dualtrack: one outage, one incident (dedup key = sha256(groupKey)).
    cross_source: bool = True
    # A new alert group on a catalog service joins an open incident of that service opened this
    # long ago or less: two groups on one service are one outage to its customers. 0s: never.
    service_window: Duration = timedelta(minutes=10)


class SeverityRule(Strict):
    matchers: list[str] = Field(min_length=1)
    level: int = Field(ge=1, le=5)

    @field_validator("matchers")
    @classmethod
    def _parse_matchers(cls, value: list[str]) -> list[str]:
        for text in value:
            parse_matcher(text)
        return value


def _default_rules() -> list[SeverityRule]:
    return [
        SeverityRule(matchers=['severity="critical"'], level=4),
        SeverityRule(matchers=['severity=~"error|major"'], level=3),
        SeverityRule(matchers=['severity="warning"'], level=2),
        SeverityRule(matchers=['severity="info"'], level=1),
    ]


class SeveritySettings(Strict):
    level_label: str = "incident_level"
    rules: list[SeverityRule] = Field(default_factory=_default_rules)
    default_level: int = Field(default=2, ge=1, le=5)
    # Matchers that make an alert "critical" for the critical-infrastructure bump.
    critical_matchers: list[str] = ['severity="critical"']
    critical_infrastructure_level: int = Field(default=5, ge=1, le=5)


class BreakerSettings(Strict):
    # Consecutive retryable failures that open a provider's breaker.
    failures: int = Field(default=5, ge=1)
    # While open, one probe delivery per interval tests whether the provider is back.
    probe_every: Duration = timedelta(seconds=30)


class DeliverySettings(Strict):
    backoff_initial: Duration = timedelta(seconds=1)
    backoff_max: Duration = timedelta(minutes=5)
    max_age: Duration = timedelta(hours=24)
    lease: Duration = timedelta(seconds=60)
    poll_interval: Duration = timedelta(seconds=1)
    # After a wake-up, wait this long so a burst's notices are claimed together.
    coalesce: Duration = timedelta(milliseconds=50)
    batch: int = Field(default=50, ge=1)
    breaker: BreakerSettings = BreakerSettings()


class AudiencePolicy(Strict):
    hold_for: Duration = timedelta(0)
    first_notice_within: Duration
    update_every: Duration


def _audience_policy(hold: str, within: str, every: str) -> dict[str, str]:
    return {"hold_for": hold, "first_notice_within": within, "update_every": every}


# The seed's severity table: business customers hear less often, and not about 10-minute blips.
_DEGRADATION = {
    "technical": _audience_policy("0s", "30m", "2h"),
    "business": _audience_policy("10m", "45m", "3h"),
}
_OUTAGE = {
    "technical": _audience_policy("0s", "15m", "1h"),
    "business": _audience_policy("0s", "15m", "1h"),
}
_CRITICAL = {
    "technical": _audience_policy("0s", "0s", "30m"),
    "business": _audience_policy("0s", "0s", "1h"),
}
_DEFAULT_LEVELS: dict[int, dict[str, dict[str, str]]] = {
    1: _DEGRADATION,
    2: _DEGRADATION,
    3: _OUTAGE,
    4: _OUTAGE,
    5: _CRITICAL,
}


def _merge_levels(value: Any) -> Any:
    """A level or audience left out keeps its default; given keys override one by one."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return value
    merged: dict[Any, Any] = {}
    for level, audiences in _DEFAULT_LEVELS.items():
        given = value.get(level, value.get(str(level), {}))
        if not isinstance(given, dict):
            merged[level] = given
            continue
        merged[level] = {
            audience: {**defaults, **(given.get(audience) or {})}
            if isinstance(given.get(audience, {}), dict)
            else given.get(audience)
            for audience, defaults in audiences.items()
        }
        for extra in set(given) - set(audiences):
            merged[level][extra] = given[extra]
    for key in value:
        if str(key) not in {str(level) for level in _DEFAULT_LEVELS}:
            merged[key] = value[key]
    return merged


class LevelPolicy(Strict):
    """One level's cadence per audience, and the channels that hear of its incidents at once."""

    technical: AudiencePolicy
    business: AudiencePolicy
    # Providers that get the business version of this level's incidents at once, never held,
    # whatever their own targeting: the framework's level-5 "immediate social media updates".
    social: list[str] = []


class SlaFollowupSettings(Strict):
    enabled: bool = False
    delay: Duration = timedelta(hours=2)
    # Incidents from this level up count as downtime against the availability target.
    min_level: int = Field(default=3, ge=1, le=5)


class ApprovalGate(Strict):
    min_level: int = Field(ge=1, le=5)


class ApprovalSettings(Strict):
    """Notices of an audience at or above its level wait for an approver (none by default)."""

    business: ApprovalGate | None = None
    technical: ApprovalGate | None = None
    # Publish a waiting notice unapproved this long after it was written, rather than miss its
    # deadline (recorded in the audit trail); 0: it waits for a person however long it takes.
    auto_publish_after: Duration = timedelta(0)

    def gates(self, audience: str, level: int) -> bool:
        gate: ApprovalGate | None = getattr(self, audience, None)
        return gate is not None and level >= gate.min_level


class SeniorAuthoringSettings(Strict):
    """From this level an `authoring_request` asks senior staff (through these providers) to write
    the incident's updates; no providers, no requests."""

    min_level: int = Field(default=3, ge=1, le=5)
    providers: list[str] = []


class PolicySettings(Strict):
    levels: Annotated[dict[Literal[1, 2, 3, 4, 5], LevelPolicy], BeforeValidator(_merge_levels)] = Field(
        default_factory=dict, validate_default=True
    )
    # Business notices word the default ETA as "within 2 hours" unless a human gives one.
    expected_resolution: dict[Literal[1, 2, 3, 4, 5], Duration] = {
        1: timedelta(hours=8),
        2: timedelta(hours=4),
        3: timedelta(hours=2),
        4: timedelta(hours=2),
        5: timedelta(hours=1),
    }
    scheduler_interval: Duration = timedelta(seconds=5)
    # A short business summary of preventive measures beside the technical post-mortem.
    business_summary: bool = False
    postmortem_due: Duration = timedelta(hours=48)
    # Below this level nobody is asked for a post-mortem: a two-minute blip needs none.
    postmortem_min_level: int = Field(default=3, ge=1, le=5)
    # An "immediate" first notice (first_notice_within: 0s) is on time when sent within this.
    immediate_grace: Duration = timedelta(seconds=60)
    # Providers that reach the team itself: post-mortem reminders and level-5 executive notices.
    internal_providers: list[str] = []
    # Shown in business notices of level 3 and up, for urgent concerns.
    urgent_contact: str | None = None
    sla_followup: SlaFollowupSettings = SlaFollowupSettings()
    # Who signs customer notices written by a person: the author's name, team, or nobody.
    sign_notices: Literal["name", "team", "none"] = "none"
    approval: ApprovalSettings = ApprovalSettings()
    senior_authoring: SeniorAuthoringSettings = SeniorAuthoringSettings()

    @field_validator("scheduler_interval")
    @classmethod
    def _at_least_every_5s(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= timedelta(seconds=5):
            raise ValueError("the scheduler must check at least every 5s")
        return value

    def audience(self, level: int, audience: str) -> AudiencePolicy:
        policy: AudiencePolicy = getattr(self.levels[level], audience)  # type: ignore[index]
        return policy

    def social(self, level: int) -> list[str]:
        return self.levels[level].social  # type: ignore[index]


class ProviderSettings(BaseModel):
    """Common provider keys; each provider type validates the rest with its own model."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str
    audience: AudienceChoice = "all"
    # Business notices show times in this zone (per-tenant notices use the tenant's).
    timezone: str = "UTC"
    # Post only incidents that affect a tenant of this provider's audience.
    only_when_affected: bool = True
    # One notice per affected tenant, to the tenant's own contact, in its own segment.
    per_tenant: bool = False
    min_level: int = Field(default=1, ge=1, le=5)
    tiers: list[str] = []
    # Deliveries under way at once, per worker: notices of different streams (incidents, tenants);
    # a stream's own go one after the other. A rate-limited provider still keeps to its limit.
    # More threads also take more of the CPU that answers webhooks (bench/fanout.py: at 8, other
    # webhooks' p99 went from 78 ms to 1.9 s during a 10,000-tenant fan-out).
    concurrency: int = Field(default=4, ge=1, le=64)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import available_timezones

        if value != "UTC" and value not in available_timezones():
            raise ValueError(f"unknown time zone {value!r}")
        return value

    @property
    def audiences(self) -> tuple[str, ...]:
        return ("technical", "business") if self.audience == "all" else (self.audience,)

    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StatusPageSettings(Strict):
    # Per-tenant pages live at /status/t/<token>; the token is HMAC(secret, tenant id) unless the
    # catalog sets the tenant's `status_token`. No secret and no token: no page for that tenant.
    tenant_token_secret: str | None = Field(default=None, min_length=16)
    resolved_days: int = Field(default=7, ge=1, le=90)
    uptime_days: int = Field(default=90, ge=7, le=365)
    # Bounds of one page, so that its size does not grow with the history: the rest is a page on.
    incidents_per_page: int = Field(default=50, ge=1, le=500)
    notices_per_incident: int = Field(default=5, ge=1, le=100)
    notices_per_page: int = Field(default=50, ge=1, le=500)
    body_chars: int = Field(default=2000, ge=100, le=100_000)
    # How long a rendered public response is served again (0: rendered for every request).
    cache: Duration = timedelta(seconds=5)

    @field_validator("cache")
    @classmethod
    def _cache_is_short(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= timedelta(minutes=10):
            raise ValueError("expected a duration from 0s to 10m")
        return value


class PublishSettings(Strict):
    # Hosts whose links may reach customers; ".example.com" also admits its subdomains. Alert
    # links (runbooks, dashboards, generatorURL) usually point inside: by default none go out.
    link_hosts: list[str] = []
    # An incident on no catalog service: `triage` keeps it from customers (its raw alert title,
    # an unknown service id) until a human assigns services or publishes it; `publish` sends it.
    unknown_services: Literal["triage", "publish"] = "triage"


class FeedbackSettings(Strict):
    """ "Was this update helpful?" and "technical details" links in customer notices."""

    # Signs the links; none: notices carry no links.
    secret: str | None = Field(default=None, min_length=16)
    # How long a link keeps working.
    expire_after: Duration = Field(default=timedelta(days=30), gt=timedelta(0))
    # Status-page providers (Statuspage, Instatus, Cachet) whose bodies carry the links too;
    # e-mail, webhooks and the built-in page always do.
    providers: list[str] = []
    # A business tenant asking this many times for technical details may be in the wrong segment.
    flag_detail_requests: int = Field(default=3, ge=1)


class Settings(Strict):
    """Everything dualtrack needs to run, validated; paths already resolved."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    server: ServerSettings = ServerSettings()
    storage: StorageSettings = StorageSettings()
    catalog_file: str = Field(default="catalog.yaml", alias="catalog")
    templates_dir: str | None = None
    auth: AuthSettings = AuthSettings()
    api: ApiSettings = ApiSettings()
    correlation: CorrelationSettings = CorrelationSettings()
    severity: SeveritySettings = SeveritySettings()
    delivery: DeliverySettings = DeliverySettings()
    policy: PolicySettings = Field(default_factory=PolicySettings)
    pagerduty: PagerDutySettings = PagerDutySettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    status_page: StatusPageSettings = StatusPageSettings()
    publish: PublishSettings = PublishSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    users: list[User] = []
    providers: list[ProviderSettings] = Field(
        default_factory=lambda: [ProviderSettings(name="status", type="builtin", audience="all")]
    )
    # Filled by load_settings, never read from YAML (the aliases cannot occur there).
    config_path: str = Field(default="", validation_alias="__config_path__")
    catalog: Catalog = Field(default_factory=Catalog, validation_alias="__catalog__")
    # Key path -> the environment variable whose `${VAR:-default}` default it holds.
    env_defaults: dict[str, str] = Field(default_factory=dict, validation_alias="__env_defaults__")

    def provider(self, name: str) -> ProviderSettings:
        for provider in self.providers:
            if provider.name == name:
                return provider
        raise KeyError(name)


def _resolve_storage_url(url: str, base: Path) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and rest != ":memory:" and not rest.startswith("file:"):
            return prefix + str((base / rest).resolve())
    return url


class WeakSecret(NamedTuple):
    """An inbound secret anyone may know: a public demo value, or none where one is needed."""

    path: str  # its key path, e.g. api.tokens[0]
    problem: str
    variable: str | None = None  # the environment variable that would replace it

    def named(self) -> str:
        return f"{self.path} ({self.variable})" if self.variable else self.path


def weak_secrets(settings: Settings) -> list[WeakSecret]:
    """Every secret of an enabled endpoint that is a demo value or empty, in config order."""
    found: list[WeakSecret] = []

    def check(path: str, value: str) -> None:
        variable = settings.env_defaults.get(path)
        if value in DEMO_SECRETS:
            unset = f" ({variable} is not set)" if variable else ""
            found.append(WeakSecret(path, f"a public demo value{unset}", variable))
        elif not value.strip():
            found.append(WeakSecret(path, "empty", variable))

    auth = settings.auth
    for i, token in enumerate(auth.alertmanager.bearer_tokens):
        check(f"auth.alertmanager.bearer_tokens[{i}]", token)
    for i, user in enumerate(auth.alertmanager.basic_auth):
        check(f"auth.alertmanager.basic_auth[{i}].password", user.password)
    for i, secret in enumerate(auth.pagerduty.signing_secrets):
        check(f"auth.pagerduty.signing_secrets[{i}]", secret)
    if auth.pagerduty.allow_unsigned and not auth.pagerduty.signing_secrets:
        found.append(
            WeakSecret(
                "auth.pagerduty.allow_unsigned",
                "PagerDuty webhooks are accepted without a signature; anyone who can reach "
                "/webhooks/pagerduty can post incidents",
            )
        )
    for i, key in enumerate(auth.events.routing_keys):
        check(f"auth.events.routing_keys[{i}]", key)
    for i, api_token in enumerate(settings.api.tokens):
        if isinstance(api_token, ApiToken):
            check(f"api.tokens[{i}].token", api_token.token)
        else:
            check(f"api.tokens[{i}]", api_token)
    if auth.session_secret is not None:
        check("auth.session_secret", auth.session_secret)
    if settings.feedback.secret is not None:
        check("feedback.secret", settings.feedback.secret)
    for i, person in enumerate(settings.users):
        if person.password_hash == DEMO_PASSWORD_HASH:
            found.append(WeakSecret(f"users[{i}].password_hash", 'the demo password "dualtrack"'))
    if settings.status_page.tenant_token_secret is not None:
        check("status_page.tenant_token_secret", settings.status_page.tenant_token_secret)
    return found


def is_loopback(bind: str) -> bool:
    """Whether a listen address (HOST:PORT, or unix:PATH) is reachable from this machine only."""
    if bind.startswith("unix:"):
        return True
    host, sep, port = bind.rpartition(":")
    if not sep or not port.isdigit():
        host = bind
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def config_warnings(settings: Settings) -> list[str]:
    """Valid but risky choices, as `file: key.path: message` lines (weak secrets: see above)."""
    where = settings.config_path
    found = []
    if not settings.auth.alertmanager.bearer_tokens and not settings.auth.alertmanager.basic_auth:
        found.append(f"{where}: auth.alertmanager: no credentials: every Alertmanager webhook gets 401")
    for i, api_token in enumerate(settings.api.tokens):
        if isinstance(api_token, str):
            found.append(
                f"{where}: api.tokens[{i}]: a plain token is an unnamed admin token and is deprecated; "
                "write {name: ..., token: ..., role: ...}"
            )
    if (settings.users or settings.auth.trusted_header) and settings.auth.session_secret is None:
        found.append(f"{where}: auth.session_secret: not set, so nobody can log in to the desk")
    return found


# A provider's own settings → (key path within the provider, message) problems; the provider
# registry has the one (adapter.providers.check_settings), which this module cannot import.
ProviderCheck = Callable[[ProviderSettings], list[tuple[str, str]]]


def load_settings(path: str | os.PathLike[str], check_provider: ProviderCheck | None = None) -> Settings:
    """Read and validate the main config and its catalog; raise ConfigError listing every problem.

    Without `check_provider` only the keys every provider shares are checked, not each type's own.
    """
    config_path = Path(path)
    problems: list[str] = []
    env_defaults: dict[str, str] = {}
    data = read_yaml(config_path, problems, env_defaults)
    if data is None:
        raise ConfigError(problems)
    where = str(config_path)
    base = config_path.parent
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(format_validation_error(where, exc))
    if settings is None:
        # Still check each provider's own keys and the catalog, so that one run lists every
        # problem of both files.
        raw_providers = data.get("providers")
        if isinstance(raw_providers, list):
            for index, raw in enumerate(raw_providers):
                try:
                    provider = ProviderSettings.model_validate(raw)
                except ValidationError:
                    continue  # reported above, as providers[index]
                if check_provider is not None:
                    for key, message in check_provider(provider):
                        problems.append(problem_line(where, f"providers[{index}]", key, message))
        catalog_file = data.get("catalog", "catalog.yaml")
        if isinstance(catalog_file, str):
            load_catalog(base / catalog_file, problems)
        raise ConfigError(problems)

    seen: set[str] = set()
    for index, provider in enumerate(settings.providers):
        if provider.name in seen:
            problems.append(
                f"{where}: providers[{index}].name: provider name {provider.name!r} is used twice"
            )
        seen.add(provider.name)
        if check_provider is not None:
            for key, message in check_provider(provider):
                problems.append(problem_line(where, f"providers[{index}]", key, message))

    provider_names = {p.name for p in settings.providers}
    policy = settings.policy
    socials = [(f"policy.levels.{level}.social", rules.social) for level, rules in policy.levels.items()]
    for key, names in (
        ("policy.internal_providers", policy.internal_providers),
        ("policy.senior_authoring.providers", policy.senior_authoring.providers),
        ("feedback.providers", settings.feedback.providers),
        *socials,
    ):
        for index, name in enumerate(names):
            if name not in provider_names:
                problems.append(f"{where}: {key}[{index}]: no provider named {name!r}")
    for key, names in socials:
        for index, name in enumerate(names):
            if name in provider_names and settings.provider(name).per_tenant:
                problems.append(
                    f"{where}: {key}[{index}]: {name!r} delivers per tenant; social channels are shared"
                )

    catalog_path = base / settings.catalog_file
    catalog = load_catalog(catalog_path, problems)
    if catalog is not None:
        for index, service in enumerate(catalog.services):
            for name in service.components:
                if name not in provider_names:
                    problems.append(
                        f"{catalog_path}: services[{index}].components.{name}: no provider named {name!r}"
                    )
    templates_dir = settings.templates_dir
    if templates_dir is not None:
        resolved = base / templates_dir
        if not resolved.is_dir():
            problems.append(f"{where}: templates_dir: {resolved} is not a folder")
        templates_dir = str(resolved)
    if problems:
        raise ConfigError(problems)
    assert catalog is not None
    storage = settings.storage.model_copy(update={"url": _resolve_storage_url(settings.storage.url, base)})
    return settings.model_copy(
        update={
            "storage": storage,
            "catalog": catalog,
            "templates_dir": templates_dir,
            "config_path": str(config_path.resolve()),
            "env_defaults": env_defaults,
        }
    )
