"""Build hook: compile `overdrive.observability._speedups`, the middleware's per-request path.

Without a C compiler the package still installs and runs the same work in Python, slower; set
``OVERDRIVE_REQUIRE_SPEEDUPS=1`` to make a failed compile fail the install instead (CI does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = "src/overdrive/observability/_speedups.c"
MODULE = "overdrive.observability._speedups"


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the extension in place (next to its source) and ships it in wheels."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        """Compile; on failure warn (or raise under OVERDRIVE_REQUIRE_SPEEDUPS) and build a pure-Python wheel."""
        if self.target_name != "wheel":
            return
        try:
            built = _compile(Path(self.root))
        except Exception as exc:
            if os.environ.get("OVERDRIVE_REQUIRE_SPEEDUPS") == "1":
                raise
            self.app.display_warning(f"overdrive: the compiled middleware path was not built ({exc}); using Python.")
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if version != "editable":  # an editable install imports it from src/ where it was built
            build_data["force_include"][str(built)] = str(built.relative_to(Path(self.root) / "src"))


def _compile(root: Path) -> Path:
    from setuptools import Distribution, Extension  # noqa: PLC0415 -- a build requirement, only needed here

    extension = Extension(MODULE, [SOURCE], extra_compile_args=["-O2", "-Wall", "-Wno-cast-function-type"])
    distribution = Distribution({"name": "overdrive-speedups", "ext_modules": [extension], "package_dir": {"": "src"}})
    command: Any = distribution.get_command_obj("build_ext")
    command.inplace = True
    command.build_temp = str(root / "build" / "speedups")
    command.ensure_finalized()
    previous = Path.cwd()
    os.chdir(root)
    try:
        command.run()
    finally:
        os.chdir(previous)
    return root / command.get_ext_fullpath(MODULE)
