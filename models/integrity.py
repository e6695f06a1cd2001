"""sha256 of model files, hashed once: digests are cached by path + size + mtime.

The cache is one small JSON file in the user cache (`~/.cache/vigil/verified-sha256.json`,
honouring `$XDG_CACHE_HOME`), so a 13 MB graph is hashed on first use and never again
until it changes on disk. A read-only cache directory only costs the re-hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

log = logging.getLogger("vigil.models")

_CHUNK = 1 << 20


def vigil_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/vigil`, else `~/.cache/vigil`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "vigil"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class DigestCache:
    """Remembers sha256 digests of files keyed by absolute path, size and mtime_ns."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or vigil_cache_dir() / "verified-sha256.json"
        self._lock = threading.Lock()

    def _load(self) -> dict[str, dict[str, int | str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def _store(self, key: str, record: dict[str, int | str]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            data = self._load()  # merge: other processes may have written meanwhile
            data[key] = record
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".verified-", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=0, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.debug("cannot write the digest cache %s: %s", self.path, exc)

    def digest(self, path: Path) -> str:
        """sha256 of `path`, from the cache when size and mtime are unchanged."""
        resolved = path.resolve()
        st = resolved.stat()
        key = str(resolved)
        with self._lock:
            record = self._load().get(key)
            if record and record.get("size") == st.st_size and record.get("mtime_ns") == st.st_mtime_ns:
                return str(record["sha256"])
            value = sha256_file(resolved)
            self._store(key, {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": value})
            return value


def file_matches(
    path: Path, sha256: str | None, size: int | None, cache: DigestCache | None = None
) -> tuple[bool, str]:
    """(ok, reason): size is checked first so a truncated file costs no hashing."""
    if size is not None and path.stat().st_size != size:
        return False, f"size {path.stat().st_size} bytes, expected {size}"
    if sha256 is None:
        return True, ""
    actual = (cache or DigestCache()).digest(path)
    if actual != sha256:
        return False, f"sha256 {actual[:12]}… does not match the catalog's {sha256[:12]}…"
    return True, ""
