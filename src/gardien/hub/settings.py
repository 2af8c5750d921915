"""What a hub process is configured with (:class:`HubSettings`), and the objects its requests
share (:class:`HubContext`: the store, the clock, the rate limiter).

``HubSettings`` travels to uvicorn's worker processes as JSON in an environment variable
(:data:`SETTINGS_ENVIRONMENT`), so it holds plain values only.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from gardien.clock import Clock, SystemClock
from gardien.hub.model import AgentInfo, Consensus
from gardien.hub.ratelimit import RateLimiter

if TYPE_CHECKING:
    from gardien.hub.store import HubStore

__all__ = ["SETTINGS_ENVIRONMENT", "HubContext", "HubSettings"]

#: the environment variable through which ``gardien hub serve`` hands its settings (and the
#: database URL) to the worker processes uvicorn starts
SETTINGS_ENVIRONMENT = "GARDIEN_HUB_APP_SETTINGS"


@dataclass(frozen=True)
class HubSettings:
    """How one hub process behaves. Durations are seconds."""

    #: when an address is listed and for how long (the store applies it; the API uses the
    #: window to ignore reports too old to count)
    consensus: Consensus = field(default_factory=Consensus)
    #: per-agent token bucket: requests a second, and how many may come at once; 0 = no limit
    rate_limit: float = 20.0
    burst: float = 100.0
    #: the largest request body accepted (413 beyond)
    max_body: int = 1 << 20
    #: how far in the future a report's time may be (agents' clocks drift a little)
    clock_skew: float = 300.0
    #: how often each process unlists the entries whose time is up
    expire_interval: float = 60.0
    #: how often each process forgets old reports, stale addresses and old journal changes
    #: (the retentions are in ``consensus``)
    prune_interval: float = 3600.0
    #: how often an agent's "last seen" is written at most (per process)
    touch_interval: float = 60.0
    #: dashboard cookies only over HTTPS (turn off only for a plain-http test setup)
    secure_cookies: bool = True
    #: how long a process trusts an agent token it checked, before asking the database again;
    #: a disabled agent is refused at most this late (0: ask every time)
    token_cache: float = 10.0

    def to_json(self) -> str:
        """The settings as JSON, for :meth:`from_json` in another process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> HubSettings:
        """Settings written by :meth:`to_json`; unknown keys are ignored."""
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        consensus = values.pop("consensus", None)
        if isinstance(consensus, dict):
            values["consensus"] = Consensus(**consensus)
        return cls(**values)


#: tokens kept by one process (agents are hundreds, not millions)
_TOKEN_CACHE_SIZE = 10_000


class HubContext:
    """What every request of one hub process shares: the store, the settings, the clock and
    the per-agent rate limiter."""

    def __init__(self, store: HubStore, settings: HubSettings, clock: Clock | None = None) -> None:
        self.store = store
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.limiter = RateLimiter(settings.rate_limit, settings.burst, self.clock)
        self._touched: dict[int, tuple[float, str | None]] = {}
        self._touch_lock = threading.Lock()
        # token -> (agent, checked at); only enabled agents are kept, bounded in size
        self._tokens: dict[str, tuple[AgentInfo, float]] = {}

    def agent_for_token(self, token: str) -> AgentInfo | None:
        """The enabled agent of ``token``, from this process's cache when it was checked less
        than ``token_cache`` seconds ago, else from the store (which may raise HubError).
        Saves a database round trip on nearly every API request."""
        now = self.clock.now()
        cached = self._tokens.get(token)
        if cached is not None and now - cached[1] < self.settings.token_cache:
            return cached[0]
        agent = self.store.agent_for_token(token)
        if agent is None:
            self._tokens.pop(token, None)
        elif self.settings.token_cache > 0:
            if len(self._tokens) >= _TOKEN_CACHE_SIZE:
                self._tokens.clear()  # many agents or a token flood: start again
            self._tokens[token] = (agent, now)
        return agent

    def forget_tokens(self) -> None:
        """Check every token against the store again (an agent was disabled)."""
        self._tokens.clear()

    def cached_agent(self, token: str) -> AgentInfo | None:
        """The agent of ``token`` if this process checked it recently, without the store."""
        cached = self._tokens.get(token)
        if cached is not None and self.clock.now() - cached[1] < self.settings.token_cache:
            return cached[0]
        return None

    def should_touch(self, agent_id: int, address: str | None) -> bool:
        """Whether to record that ``agent_id`` was seen from ``address`` now: at most once a
        ``touch_interval`` per agent and process, or at once when its address changed."""
        now = self.clock.now()
        with self._touch_lock:
            last = self._touched.get(agent_id)
            if last and last[1] == address and now - last[0] < self.settings.touch_interval:
                return False
            self._touched[agent_id] = (now, address)
            return True
