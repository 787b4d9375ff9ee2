"""`python -m shared_world ...` is the `shared-world` command."""

from shared_world.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
