"""Entry point for `python -m pipeline`."""

from pipeline.cli import main

if __name__ == "__main__":  # not when multiprocessing imports it in the sender process
    raise SystemExit(main())
