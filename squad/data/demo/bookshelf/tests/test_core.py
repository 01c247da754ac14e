import unittest

from bookshelf import Book, Shelf

DUNE = Book("9780441013593", "Dune", "Frank Herbert", 1965)
MESSIAH = Book("9780593098233", "Dune Messiah", "Frank Herbert", 1969)


class ShelfTest(unittest.TestCase):
    def test_add_and_get(self) -> None:
        shelf = Shelf()
        shelf.add(DUNE)
        self.assertIs(shelf.get(DUNE.isbn), DUNE)
        self.assertEqual(len(shelf), 1)

    def test_duplicate_isbn_is_refused(self) -> None:
        shelf = Shelf()
        shelf.add(DUNE)
        with self.assertRaises(ValueError):
            shelf.add(DUNE)

    def test_by_author_is_case_insensitive_and_sorted(self) -> None:
        shelf = Shelf()
        shelf.add(MESSIAH)
        shelf.add(DUNE)
        self.assertEqual(shelf.by_author("frank herbert"), [DUNE, MESSIAH])


if __name__ == "__main__":
    unittest.main()
