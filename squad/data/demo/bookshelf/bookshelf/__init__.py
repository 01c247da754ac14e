"""bookshelf: a tiny library catalogue (the example project of `squad demo`)."""

from bookshelf.core import Book, Shelf

__all__ = ["Book", "Shelf"]
