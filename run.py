"""`python run.py CONFIG [options]` is the same as `vigil run CONFIG [options]`."""

import sys

from pipeline.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(
        main(
            args
            if args
            and args[0].startswith("-")
            and args[0] not in ("--source", "--output")
            and not args[0].endswith((".yaml", ".yml"))
            else ["run", *args]
        )
    )
