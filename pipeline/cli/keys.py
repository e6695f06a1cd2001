"""`vigil keys gen`: CURVE key pairs for tcp links (see the README's "Links across hosts")."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def cmd_gen(args: argparse.Namespace) -> int:
    """Write NAME.key (public: give it to peers) and NAME.key_secret (keep it) into DIR."""
    from pipeline.curve import generate_keypair

    public, secret = generate_keypair(Path(args.dir), args.name)
    print(f"public key: {public}  (copy into the peers' authorized folder)")
    print(f"secret key: {secret}  (keep private; name it in links.curve.secret_key)")
    return 0


def add_commands(sub: Any) -> None:
    keys = sub.add_parser("keys", help="CURVE key pairs for encrypted, authenticated tcp links")
    verbs = keys.add_subparsers(dest="keys_command", required=True, metavar="VERB")
    gen = verbs.add_parser("gen", help="make a key pair", description=cmd_gen.__doc__)
    gen.add_argument("dir", help="folder to write the two files into")
    gen.add_argument("name", nargs="?", default="vigil", help="file name stem (default: vigil)")
    gen.set_defaults(func=cmd_gen)
