"""Find and fix database bottlenecks in SQLAlchemy 2 apps: keyset pagination and batch loading.

- `Paginator` / `paginate`: keyset pagination by a statement's ORDER BY, with signed cursors.
- `BatchLoader` / `model_loader`: DataLoader-style batching of lookups into one IN query.
"""

from overdrive.db.keyset import Page, Paginator, paginate, paginate_sync
from overdrive.db.loader import BatchLoader, model_loader

__all__ = ["BatchLoader", "Page", "Paginator", "model_loader", "paginate", "paginate_sync"]
