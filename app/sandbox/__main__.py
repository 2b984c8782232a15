"""`python -m app.sandbox --port N [--seed-demo]`: serve the CTCT sandbox."""

from __future__ import annotations

import argparse

from app.sandbox.server import serve


def main() -> None:
    """Parse the command line and serve until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m app.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--seed-demo", action="store_true", help="load the demo accounts")
    args = parser.parse_args()
    serve(args.host, args.port, seed=args.seed_demo)


if __name__ == "__main__":
    main()
