"""ZeroMQ CURVE for tcp links: encryption, and only peers whose public key is authorized get in.

`vigil keys gen DIR NAME` writes a key pair in ZeroMQ's certificate format (NAME.key with the
public key, NAME.key_secret with both). A pipeline names its own secret key and a folder of
authorized public keys; its tcp links then serve with CURVE, connect with it, and a ZAP handler
refuses (and counts) every peer whose key is not in the folder. A peer without CURVE at all
cannot even complete the handshake.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from pipeline.errors import ConfigError

log = logging.getLogger("vigil.curve")


def generate_keypair(folder: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key (public) and NAME.key_secret (public + secret, mode 0600) into `folder`."""
    if not zmq.has("curve"):
        raise ConfigError("this ZeroMQ build has no CURVE support")
    folder.mkdir(parents=True, exist_ok=True)
    public, secret = (Path(p) for p in zmq.auth.create_certificates(str(folder), name))
    secret.chmod(0o600)
    return public, secret


@dataclass(frozen=True)
class CurveKeys:
    """This run's key pair and the public keys allowed to connect to its links."""

    public: bytes
    secret: bytes
    authorized: frozenset[bytes] = field(default_factory=frozenset)

    @classmethod
    def load(cls, secret_file: Path, authorized: Path | None = None) -> CurveKeys:
        """Read a `vigil keys gen` secret file and the *.key files of `authorized` (a folder or one
        file); the run's own public key is always authorized (its links talk to each other)."""
        try:
            public, secret = zmq.auth.load_certificate(str(secret_file))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"links.curve.secret_key: cannot read {secret_file}: {exc}") from None
        if secret is None:
            raise ConfigError(
                f"links.curve.secret_key: {secret_file} holds no secret key (use NAME.key_secret)"
            )
        keys = {public}
        if authorized is not None:
            files = sorted(authorized.glob("*.key")) if authorized.is_dir() else [authorized]
            if not files:
                raise ConfigError(f"links.curve.authorized: no *.key file in {authorized}")
            for f in files:
                try:
                    keys.add(zmq.auth.load_certificate(str(f))[0])
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"links.curve.authorized: cannot read {f}: {exc}") from None
        return cls(public, secret, frozenset(keys))

    def serve(self, sock: zmq.Socket) -> None:
        """Make a binding socket a CURVE server (before bind)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def connect(self, sock: zmq.Socket) -> None:
        """Make a connecting socket a CURVE client of a server holding this run's key (before connect)."""
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_serverkey = self.public


class Gatekeeper:
    """The ZAP handler of a ZeroMQ context: lets in authorized public keys, counts the rest."""

    def __init__(self, ctx: zmq.Context, keys: CurveKeys) -> None:
        self.keys = keys
        self.refused = 0
        self._lock = threading.Lock()
        self._auth = ThreadAuthenticator(ctx, log=logging.getLogger("vigil.curve.zap"))
        self._auth.start()
        self._auth.configure_curve_callback(domain="*", credentials_provider=self)

    def callback(self, domain: str, key: bytes) -> bool:
        """Called by the authenticator for every CURVE handshake."""
        allowed = key in self.keys.authorized
        if not allowed:
            with self._lock:
                self.refused += 1
                first = self.refused == 1
            if first or self.refused % 100 == 0:
                log.warning("refused %d connection(s) from unauthorized CURVE keys", self.refused)
        return allowed

    def stop(self) -> None:
        self._auth.stop()
