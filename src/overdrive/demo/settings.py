"""Settings of the reference shop app, read once at start-up."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

from overdrive.demo.generator import DEFAULT_SEED, SEED_VERSION, SeedPlan
from overdrive.exceptions import ConfigurationError

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["PROFILES", "PROFILE_STEPS", "ProfileName", "ShopSettings", "Step"]

ProfileName = Literal["naive", "database", "caching", "tuned"]
"""Cumulative steps: each profile is the one before it plus one fix; `tuned` is everything landed so far."""
PROFILES: tuple[ProfileName, ...] = get_args(ProfileName)
Step = Literal["database", "caching", "observability"]
PROFILE_STEPS: dict[ProfileName, frozenset[Step]] = {
    "naive": frozenset(),
    "database": frozenset({"database"}),
    "caching": frozenset({"database", "caching"}),
    # Everything landed: caching plus the monitoring stack, so tuned vs caching is what observability costs.
    "tuned": frozenset({"database", "caching", "observability"}),
}
MIN_SECRET_BYTES = 16
DEMO_CURSOR_SECRET = "overdrive-demo-cursor-secret"  # noqa: S105 - a public demo default; set OVERDRIVE_CURSOR_SECRET


@dataclass(frozen=True, kw_only=True)
class ShopSettings:
    """How to run the shop: which profile, which database, how much data.

    Attributes:
        profile: `naive` (the problems the seven steps fix), then one cumulative profile per landed step
            (`database`, `caching`), and `tuned` (every landed step).
        database_url: a SQLAlchemy async URL; empty means the embedded SQLite file under `data_dir`.
        data_dir: where the embedded SQLite database lives.
        plan: the seed and scale of the data set.
        confirmation_delay: seconds the order confirmation "e-mail" takes to send.
        redis_url: with the caching step, a Redis URL adds a shared L2 tier behind the in-process memory tier.
        cursor_secret: the key that signs the listings' pagination cursors (at least 16 bytes).

    """

    profile: ProfileName = "naive"
    database_url: str = ""
    data_dir: Path = field(default_factory=lambda: Path(".data"))
    plan: SeedPlan = field(default_factory=SeedPlan)
    confirmation_delay: float = 0.2
    redis_url: str = ""
    cursor_secret: str = DEMO_CURSOR_SECRET

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            msg = f"Unknown profile {self.profile!r}; choose one of: {', '.join(PROFILES)}."
            raise ConfigurationError(msg)
        if self.confirmation_delay < 0:
            msg = f"The confirmation delay cannot be negative ({self.confirmation_delay!r} s)."
            raise ConfigurationError(msg)
        if len(self.cursor_secret.encode()) < MIN_SECRET_BYTES:
            msg = f"The cursor secret must be at least {MIN_SECRET_BYTES} bytes long."
            raise ConfigurationError(msg)

    @property
    def steps(self) -> frozenset[Step]:
        """The optimisation steps this profile applies."""
        return PROFILE_STEPS[self.profile]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ShopSettings:
        """Read the settings from `DATABASE_URL`, `REDIS_URL` and the `OVERDRIVE_*` variables `to_env` writes.

        Raises:
            ConfigurationError: a variable holds a value that cannot be used.

        """
        env = os.environ if environ is None else environ
        profile = env.get("OVERDRIVE_PROFILE", "naive")
        if profile not in PROFILES:
            msg = f"OVERDRIVE_PROFILE must be one of {', '.join(PROFILES)}, not {profile!r}."
            raise ConfigurationError(msg)
        try:
            plan = SeedPlan(
                seed=int(env.get("OVERDRIVE_SEED", DEFAULT_SEED)),
                scale=float(env.get("OVERDRIVE_SCALE", "1.0")),
            )
            delay = float(env.get("OVERDRIVE_CONFIRMATION_DELAY", "0.2"))
        except ValueError as exc:
            msg = f"Invalid shop setting in the environment: {exc}"
            raise ConfigurationError(msg) from exc
        return cls(
            profile=profile,
            database_url=env.get("DATABASE_URL", ""),
            data_dir=Path(env.get("OVERDRIVE_DATA_DIR", ".data")),
            plan=plan,
            confirmation_delay=delay,
            redis_url=env.get("REDIS_URL", ""),
            cursor_secret=env.get("OVERDRIVE_CURSOR_SECRET", DEMO_CURSOR_SECRET),
        )

    def to_env(self) -> dict[str, str]:
        """The environment variables that make `from_env` rebuild these settings in a server process."""
        return {
            "OVERDRIVE_PROFILE": self.profile,
            "DATABASE_URL": self.database_url,
            "OVERDRIVE_DATA_DIR": str(self.data_dir),
            "OVERDRIVE_SEED": str(self.plan.seed),
            "OVERDRIVE_SCALE": repr(self.plan.scale),
            "OVERDRIVE_CONFIRMATION_DELAY": repr(self.confirmation_delay),
            "REDIS_URL": self.redis_url,
            "OVERDRIVE_CURSOR_SECRET": self.cursor_secret,
        }

    @property
    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL to connect to; PostgreSQL URLs are moved onto the asyncpg driver."""
        url = self.database_url
        if not url:
            name = f"shop-v{SEED_VERSION}-seed{self.plan.seed}-scale{self.plan.scale:g}.sqlite3"
            return f"sqlite+aiosqlite:///{(self.data_dir / name).resolve()}"
        for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url.removeprefix(prefix)
        if url.startswith("sqlite://"):
            return "sqlite+aiosqlite://" + url.removeprefix("sqlite://")
        if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            return url
        msg = f"DATABASE_URL must be a PostgreSQL or SQLite URL, not {url!r}."
        raise ConfigurationError(msg)
