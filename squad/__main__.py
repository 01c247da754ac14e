"""`python -m squad` runs the CLI."""

from squad.cli import main

if __name__ == "__main__":
    main()
