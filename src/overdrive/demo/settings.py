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

__all__ = ["ProfileName", "ShopSettings"]

ProfileName = Literal["naive", "tuned"]
PROFILES: tuple[ProfileName, ...] = get_args(ProfileName)


@dataclass(frozen=True, kw_only=True)
class ShopSettings:
    """How to run the shop: which profile, which database, how much data.

    Attributes:
        profile: `naive` (the problems the seven steps fix) or `tuned` (each landed step applied).
        database_url: a SQLAlchemy async URL; empty means the embedded SQLite file under `data_dir`.
        data_dir: where the embedded SQLite database lives.
        plan: the seed and scale of the data set.
        confirmation_delay: seconds the order confirmation "e-mail" takes to send.

    """

    profile: ProfileName = "naive"
    database_url: str = ""
    data_dir: Path = field(default_factory=lambda: Path(".data"))
    plan: SeedPlan = field(default_factory=SeedPlan)
    confirmation_delay: float = 0.2

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            msg = f"Unknown profile {self.profile!r}; choose one of: {', '.join(PROFILES)}."
            raise ConfigurationError(msg)
        if self.confirmation_delay < 0:
            msg = f"The confirmation delay cannot be negative ({self.confirmation_delay!r} s)."
            raise ConfigurationError(msg)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ShopSettings:
        """Read `OVERDRIVE_PROFILE`, `DATABASE_URL`, `OVERDRIVE_DATA_DIR`, `OVERDRIVE_SEED`, `OVERDRIVE_SCALE`.

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
