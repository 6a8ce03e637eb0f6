"""The documentation site builds with `mkdocs build --strict`, in the dashboard's style, offline."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from clihelp import REPO

STYLES = REPO / "theseus" / "web" / "static" / "styles.css"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        if os.environ.get("THESEUS_CI"):
            raise AssertionError("the docs extra is not installed: make test installs it")
        pytest.skip("the docs extra is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_site_uses_the_dashboard_palette_and_fonts(site):
    css = STYLES.read_text()
    block = css[css.index("/* theme:start */") + len("/* theme:start */") : css.index("/* theme:end */")].strip()
    theme = (site / "assets" / "theseus" / "theme.css").read_text()
    assert block in theme
    for color in ("#F7F7F7", "#2F3338", "#37A5BE", "#26A671", "#F27200", "#FF3900"):
        assert color in theme
    fonts = re.findall(r'url\("fonts/([^"]+)"\)', block)
    assert fonts and all((site / "assets" / "theseus" / "fonts" / name).is_file() for name in fonts)
    assert (site / "assets" / "theseus" / "fonts" / "OFL.txt").is_file()
    home = (site / "index.html").read_text()
    assert "assets/theseus/theme.css" in home and "stylesheets/theseus.css" in home
    assert "fonts.googleapis" not in home and "fonts.gstatic" not in home


def test_api_reference_is_generated_from_the_docstrings(site):
    pages = {
        "quick": ["quick", "QuickJob"],
        "config": ["field", "configure"],
        "model": ["Module", "sharding", "flops_per_token"],
        "trainer": ["BaseTrainer", "schedule", "evaluator", "BaseTrainerConfig"],
        "evaluation": ["Evaluator", "from_trainer", "from_checkpoint", "TrainerView"],
        "trained-run": ["TrainedRun", "locate", "load", "tokenizer"],
        "registry": ["Registry", "JOBS", "load_module"],
        "web": ["RunSummary", "add_source"],
    }
    for page, names in pages.items():
        html = (site / "reference" / page / "index.html").read_text()
        for name in names:
            assert f'id="{name}' in html or f"<code>{name}</code>" in html or f">{name}<" in html, (page, name)
        assert ":class:<code>" not in html and ":meth:<code>" not in html, page


def test_configuration_keys_page_is_generated_from_the_fields(site):
    html = (site / "reference" / "keys" / "index.html").read_text()
    for job in ("gpt/train/pretrain", "data/tokenize_variable_dataset", "hf/train/finetune"):
        assert f"<code>{job}</code>" in html, job
    row = html[html.index("<code>optimization.lr</code>") :].split("</tr>")[0]
    assert "changeable" in row and "peak learning rate" in row
    row = html[html.index("<code>architecture.n_layers</code>") :].split("</tr>")[0]
    assert "fixed" in row and "number of transformer blocks" in row
