"""Books and the shelf that holds them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Book:
    """One book, identified by its ISBN."""

    isbn: str
    title: str
    author: str
    year: int


class Shelf:
    """An in-memory catalogue of books, keyed by ISBN."""

    def __init__(self) -> None:
        self._books: dict[str, Book] = {}

    def add(self, book: Book) -> None:
        """Add a book; adding the same ISBN twice is an error."""
        if book.isbn in self._books:
            raise ValueError(f"duplicate ISBN {book.isbn}")
        self._books[book.isbn] = book

    def get(self, isbn: str) -> Book:
        """The book with this ISBN (KeyError if absent)."""
        return self._books[isbn]

    def by_author(self, author: str) -> list[Book]:
        """Books by an author (case-insensitive), oldest first."""
        wanted = author.casefold()
        return sorted((b for b in self._books.values() if b.author.casefold() == wanted), key=lambda b: b.year)

    def __len__(self) -> int:
        return len(self._books)
