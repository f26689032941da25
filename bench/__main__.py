"""Entry point: ``python -m bench [--engine sqlite|postgresql] [--quick] ...``."""

from bench.runner import main

if __name__ == "__main__":
    raise SystemExit(main())
