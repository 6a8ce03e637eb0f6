"""mkdocs hooks: the site's house style, and Sphinx roles in docstrings shown as code.

**House style.** ``theseus/web/static/styles.css`` holds, between its ``theme:start`` and ``theme:end``
markers, the ``@font-face`` rules of IBM Plex and the colour variables (``--th-*``). This
hook copies that block to ``assets/theseus/theme.css`` and the font files beside it into
the built site; ``docs/stylesheets/theseus.css`` maps mkdocs-material's variables onto
``--th-*``. So there is one definition of the palette and the fonts, and the site, like the
dashboard, loads nothing from the network.

**Configuration keys.** ``reference/keys.md`` is generated from the built-in jobs' ``field()``
declarations (:func:`theseus.keys.markdown`, what ``theseus keys JOB`` prints), so the
reference can never disagree with the code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

STATIC = Path(__file__).resolve().parent.parent / "theseus" / "web" / "static"
START, END = "/* theme:start */", "/* theme:end */"
TARGET = "assets/theseus"
KEYS_PAGE = "reference/keys.md"
ROLE = re.compile(r":(?:class|meth|func|attr|mod|data|exc|obj):(?=<code>)")


def theme_block(css: str) -> str:
    """The text between the theme markers of the dashboard stylesheet."""
    start, end = css.find(START), css.find(END)
    if start < 0 or end < start:
        raise PluginError(f"{STATIC / 'styles.css'} has no {START} ... {END} block")
    return css[start + len(START) : end].strip() + "\n"


def on_files(files: Files, config: Any) -> Files:
    """Add the theme block and the fonts to the site."""
    block = theme_block((STATIC / "styles.css").read_text())
    note = "/* generated from theseus/web/static/styles.css by scripts/mkdocs_hooks.py */\n"
    files.append(File.generated(config, f"{TARGET}/theme.css", content=note + block))
    for font in sorted((STATIC / "fonts").iterdir()):
        files.append(File.generated(config, f"{TARGET}/fonts/{font.name}", abs_src_path=str(font)))
    files.append(File.generated(config, KEYS_PAGE, content=keys_page()))
    return files


def keys_page() -> str:
    """The configuration-key reference of every built-in job (those defined inside theseus)."""
    from theseus.keys import markdown
    from theseus.registry import JOBS

    builtin = [(key, cls) for key, cls in JOBS.items() if cls.__module__.startswith("theseus.")]
    return markdown(builtin)


def on_serve(server: Any, config: Any, builder: Any) -> Any:
    """``mkdocs serve`` rebuilds when the dashboard stylesheet changes."""
    server.watch(str(STATIC / "styles.css"))
    return server


def on_page_content(html: str, page: Any, config: Any, files: Files) -> str:
    """Drop the Sphinx role prefix in front of rendered cross-references."""
    return ROLE.sub("", html)
