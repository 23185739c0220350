"""Shop settings: environment parsing, URL normalisation and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from overdrive.demo.generator import SeedPlan
from overdrive.demo.settings import ShopSettings
from overdrive.exceptions import ConfigurationError


def test_defaults_use_the_embedded_sqlite_file(tmp_path: Path) -> None:
    settings = ShopSettings.from_env({"OVERDRIVE_DATA_DIR": str(tmp_path)})
    assert settings.profile == "naive"
    assert settings.resolved_database_url.startswith(f"sqlite+aiosqlite:///{tmp_path.resolve()}/shop-v1-")


def test_round_trip_through_the_environment(tmp_path: Path) -> None:
    settings = ShopSettings(
        profile="caching",
        data_dir=tmp_path,
        plan=SeedPlan(seed=5, scale=0.25),
        confirmation_delay=0.05,
        redis_url="redis://127.0.0.1:6379/3",
        cursor_secret="another secret of 16+ bytes",  # noqa: S106 - a test value
    )
    assert ShopSettings.from_env(settings.to_env()) == settings


@pytest.mark.parametrize(
    ("url", "resolved"),
    [
        ("postgresql://u@h:5432/d", "postgresql+asyncpg://u@h:5432/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("sqlite:////tmp/x.db", "sqlite+aiosqlite:////tmp/x.db"),
    ],
)
def test_database_urls_are_moved_onto_async_drivers(url: str, resolved: str) -> None:
    assert ShopSettings(database_url=url).resolved_database_url == resolved


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OVERDRIVE_PROFILE": "fast"}, "OVERDRIVE_PROFILE must be one of naive, database, caching, tuned"),
        ({"OVERDRIVE_SCALE": "big"}, "Invalid shop setting"),
        ({"OVERDRIVE_SCALE": "50"}, "between 0.001 and 10"),
        ({"OVERDRIVE_CONFIRMATION_DELAY": "-1"}, "cannot be negative"),
    ],
)
def test_bad_environment_values_are_refused_with_a_message(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ShopSettings.from_env(environ)


def test_unknown_profile_and_database_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="Unknown profile 'fast'"):
        ShopSettings(profile="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a PostgreSQL or SQLite URL"):
        _ = ShopSettings(database_url="mysql://x/y").resolved_database_url


def test_profiles_are_cumulative_steps() -> None:
    """Each profile adds one step to the one before; tuned applies every landed step."""
    steps = [ShopSettings(profile=profile).steps for profile in ("naive", "database", "caching", "tuned")]
    assert steps == [set(), {"database"}, {"database", "caching"}, {"database", "caching", "observability"}]


def test_a_short_cursor_secret_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="at least 16 bytes"):
        ShopSettings(cursor_secret="short")  # noqa: S106 - a test value
