"""Per-execution loaders generated for every table's keys and relationships."""

from app.dataloaders.loaders import Loaders

__all__ = ["Loaders"]
