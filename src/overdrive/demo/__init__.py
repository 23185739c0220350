"""The reference shop app (`naive` and `tuned` profiles), its seed data, and the `overdrive demo` runner.

Import from the submodule that owns a name: `overdrive.demo.app.create_app`, `overdrive.demo.runner.DemoRunner`.
"""

__all__: list[str] = []
