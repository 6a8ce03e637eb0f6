"""Shipping code: the exact theseus and user code of this machine, as one content-addressed tarball.

The bundle holds:

- the ``theseus`` package as it is installed here (committed or not, git or not);
- every ``--load`` module: a ``.py`` file together with the modules it imported from
  its own directory tree, or a dotted module's whole top-level package;
- the top-level packages of installed ``theseus.plugins`` entry points, plus a small
  ``.dist-info`` that declares those entry points, so the remote finds them as here.

The tarball is deterministic (sorted names, fixed times and owners), so its digest
names the remote directory it unpacks into: identical code is sent once per machine.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import io
import site
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import theseus
from theseus.errors import TheseusError
from theseus.registry import PLUGIN_GROUP

SKIP_DIRS = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
SKIP_SUFFIXES = (".pyc", ".pyo")
PLUGIN_DIST = "theseus_shipped_plugins-0.dist-info"


@dataclass
class Bundle:
    """The code to ship: files by archive name, and the ``--load`` arguments the remote uses."""

    files: dict[str, bytes] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)  # relative to the bundle root, or dotted names

    def add_file(self, arcname: str, path: Path) -> None:
        """Add one file (the first one given for a name wins)."""
        self.files.setdefault(arcname, path.read_bytes())

    def add_tree(self, arcname: str, root: Path) -> None:
        """Add every file under ``root`` (caches skipped) as ``arcname/...``."""
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if path.is_dir() or any(p in SKIP_DIRS for p in rel.parts) or path.suffix in SKIP_SUFFIXES:
                continue
            self.add_file(f"{arcname}/{rel.as_posix()}", path)

    def tar(self) -> bytes:
        """The bundle as a deterministic ``.tar`` (uncompressed; ssh compresses if asked)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name in sorted(self.files):
                data = self.files[name]
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                info.mtime = 0
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    @property
    def digest(self) -> str:
        """A short content hash: the name of the remote code directory."""
        h = hashlib.sha256()
        for name in sorted(self.files):
            h.update(name.encode() + b"\0" + hashlib.sha256(self.files[name]).digest())
        h.update("\0".join(self.loads).encode())
        return h.hexdigest()[:16]


def _library_roots() -> list[Path]:
    """Directories of installed packages and the standard library: never user code."""
    roots = {Path(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    try:
        roots.update(Path(p) for p in site.getsitepackages())
    except AttributeError:  # some virtualenv builds
        pass
    roots.add(Path(site.getusersitepackages()))
    return [r.resolve() for r in roots]


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or r in path.parents for r in roots)


def _module_file(module: object) -> Path | None:
    name = getattr(module, "__file__", None)
    return Path(name).resolve() if isinstance(name, str) else None


def _add_load_file(bundle: Bundle, spec: str, index: int) -> None:
    path = Path(spec).resolve()
    if not path.is_file():
        raise TheseusError(f"--load {spec}: no such file")
    root = path.parent
    prefix = f"loads/{index}"
    bundle.add_file(f"{prefix}/{path.name}", path)
    skip = [*_library_roots(), Path(theseus.__file__).resolve().parent]
    for module in list(sys.modules.values()):
        file = _module_file(module)
        if file is None or not file.is_file() or root not in file.parents or _under(file, skip):
            continue
        bundle.add_file(f"{prefix}/{file.relative_to(root).as_posix()}", file)
    bundle.loads.append(f"{prefix}/{path.name}")


def _add_package_of(bundle: Bundle, dotted: str) -> None:
    top = dotted.split(".")[0]
    if top == "theseus":
        return
    spec = importlib.util.find_spec(top)
    if spec is None:
        raise TheseusError(f"--load {dotted}: no module named {top!r} here to ship")
    if spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            bundle.add_tree(top, Path(location))
    elif spec.origin and Path(spec.origin).is_file():
        bundle.add_file(f"{top}{Path(spec.origin).suffix}", Path(spec.origin))
    else:
        raise TheseusError(f"--load {dotted}: module {top!r} has no source file to ship")


def _add_plugins(bundle: Bundle) -> None:
    lines = []
    for ep in importlib.metadata.entry_points(group=PLUGIN_GROUP):
        _add_package_of(bundle, ep.module)
        lines.append(f"{ep.name} = {ep.value}")
    if lines:
        bundle.files[f"{PLUGIN_DIST}/METADATA"] = (
            b"Metadata-Version: 2.1\nName: theseus-shipped-plugins\nVersion: 0\n"
        )
        entry_points = f"[{PLUGIN_GROUP}]\n" + "\n".join(sorted(lines)) + "\n"
        bundle.files[f"{PLUGIN_DIST}/entry_points.txt"] = entry_points.encode()


def build_bundle(loads: Sequence[str] = ()) -> Bundle:
    """Collect theseus, the ``--load`` modules (already imported here) and the plugins."""
    bundle = Bundle()
    bundle.add_tree("theseus", Path(theseus.__file__).resolve().parent)
    for index, spec in enumerate(loads):
        if spec.endswith(".py") or "/" in spec:
            _add_load_file(bundle, spec, index)
        else:
            _add_package_of(bundle, spec)
            bundle.loads.append(spec)
    _add_plugins(bundle)
    return bundle
