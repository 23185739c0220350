"""The reference shop app (`naive`, one cumulative profile per step, `tuned`), its seed data, and `overdrive demo`.

Import from the submodule that owns a name: `overdrive.demo.app.create_app`, `overdrive.demo.runner.DemoRunner`.
"""

__all__: list[str] = []
