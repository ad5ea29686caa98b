"""``python -m humanparse`` and the ``humanparse`` console script."""

import sys


def entry() -> None:
    """Run the command line; Ctrl-C while it is still importing exits 130 without a traceback
    (the commands handle it themselves once they run)."""
    try:
        from .cli import run
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    entry()
