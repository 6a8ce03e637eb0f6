"""The remote environment: a virtualenv keyed by a hash of everything it must contain.

What goes in is theseus's own dependencies, pinned to the versions installed here (so a
remote run computes with the same libraries as a local one), the extras and packages
the dispatch config asks for, and its pip arguments. theseus itself is *not* installed:
the shipped code is put on ``PYTHONPATH``, so changing your code never rebuilds the
environment, and an environment is built once per machine and reused by every run
whose dependencies match.

On the remote, ``<work>/envs/<hash>/`` is built under a ``flock`` (concurrent
submissions wait for one build), its pip output goes to ``<work>/envs/<hash>.log``, and
a ``theseus-env.json`` marker written last says it is complete.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import dataclass

from theseus.dispatch.config import EnvironmentConfig
from theseus.dispatch.shell import command, fail, indent, join_path, word, write_file
from theseus.errors import TheseusError

FORMAT = 1
MARKER = "theseus-env.json"


@dataclass(frozen=True)
class EnvRecipe:
    """Everything that decides an environment's contents."""

    python: str
    requirements: tuple[str, ...]
    pip_args: tuple[str, ...]
    system_site_packages: bool

    @property
    def digest(self) -> str:
        """The environment's name on the remote."""
        blob = json.dumps(
            {
                "format": FORMAT,
                "python": self.python,
                "requirements": list(self.requirements),
                "pip_args": list(self.pip_args),
                "system_site_packages": self.system_site_packages,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def theseus_requirements(extras: list[str]) -> list[str]:
    """theseus's dependencies (plus ``extras``), each pinned to the version installed here."""
    from packaging.requirements import Requirement

    try:
        dist = importlib.metadata.distribution("theseus")
    except importlib.metadata.PackageNotFoundError:
        raise TheseusError(
            "theseus is not installed as a package here (pip install -e .), so its dependencies are unknown"
        ) from None
    known = set(dist.metadata.get_all("Provides-Extra") or [])
    unknown = sorted(set(extras) - known)
    if unknown:
        raise TheseusError(f"unknown theseus extra {unknown[0]!r} (known: {', '.join(sorted(known))})")
    out: list[str] = []
    for text in dist.requires or []:
        req = Requirement(text)
        marker = str(req.marker) if req.marker else ""
        wanted_extra = next((e for e in extras if f'extra == "{e}"' in marker), None)
        if "extra ==" in marker and wanted_extra is None:
            continue
        rest = marker.replace(f'extra == "{wanted_extra}"', "").strip(" and") if wanted_extra else marker
        name = req.name + (f"[{','.join(sorted(req.extras))}]" if req.extras else "")
        try:
            spec = f"=={importlib.metadata.version(req.name)}"
        except importlib.metadata.PackageNotFoundError:
            spec = str(req.specifier)
        out.append(name + spec + (f"; {rest}" if rest else ""))
    return sorted(set(out))


def env_recipe(python: str, cfg: EnvironmentConfig) -> EnvRecipe:
    """The environment a host or cluster needs."""
    return EnvRecipe(
        python=python,
        requirements=tuple(theseus_requirements(cfg.extras) + list(cfg.packages)),
        pip_args=tuple(cfg.pip_args),
        system_site_packages=cfg.system_site_packages,
    )


def env_dir(work: str, recipe: EnvRecipe) -> str:
    """The environment's directory on the remote."""
    return join_path(work, "envs", recipe.digest)


def python_in(work: str, recipe: EnvRecipe) -> str:
    """The environment's interpreter on the remote."""
    return join_path(env_dir(work, recipe), "bin", "python")


def setup_script(work: str, recipe: EnvRecipe, setup: list[str]) -> str:
    """Bash lines that make sure the environment exists (building it at most once, under a lock)."""
    env = env_dir(work, recipe)
    log = env + ".log"
    python = word(recipe.python)
    site = ["--system-site-packages"] if recipe.system_site_packages else []
    venv = command(python, "-m", "venv", *site, word(env))
    pip = command(
        word(python_in(work, recipe)),
        *("-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q"),
        *recipe.pip_args,
        *("-r", word(env + ".requirements.txt")),
    )
    marker = json.dumps({"digest": recipe.digest, "requirements": list(recipe.requirements)}) + "\n"
    build = "".join(
        [
            f"command -v {python} >/dev/null || "
            f"{fail(f'python {recipe.python!r} is not on the remote PATH; set python: to its full path')}\n",
            f"rm -rf {word(env)}\n",
            write_file(env + ".requirements.txt", "\n".join(recipe.requirements) + "\n"),
            f"if ! {{ {venv} && {pip}; }} > {word(log)} 2>&1; then\n",
            f"  tail -n 15 {word(log)} | sed 's/^/theseus-log: /' >&2\n",
            f"  {fail(f'the environment failed to install (log: {log})')}\n",
            "fi\n",
            write_file(join_path(env, MARKER), marker),
        ]
    )
    return "".join(
        [
            *(line + "\n" for line in setup),
            f"mkdir -p {word(join_path(work, 'envs'))}\n",
            f"exec 9>{word(env + '.lock')}\n",
            "flock 9\n",
            f"if [ ! -f {word(join_path(env, MARKER))} ]; then\n",
            indent(build),
            "fi\n",
            "exec 9>&-\n",
        ]
    )
