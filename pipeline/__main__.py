"""Entry point for `python -m pipeline`."""

from pipeline.cli import main

if __name__ == "__main__":  # not when something merely imports the module
    raise SystemExit(main())
