"""The dashboard app: server-rendered pages over the run directories under one output root.

Pages: ``/`` (runs, filter and sort), ``/runs/<project>/<group>/<name>`` (charts,
config, checkpoints, results, log, the reproducing command, stop), ``/compare?run=ID``
(overlaid curves) and ``/data`` (tokenized datasets). The pages' scripts read JSON from
``/api/...``: downsampled metrics and byte-offset increments of metrics and log.
"""

from __future__ import annotations

import contextlib
import shlex
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from theseus.checkpoint import list_checkpoints
from theseus.fsio import read_json
from theseus.rundir import RunDirectory, iso, iter_runs
from theseus.web import series
from theseus.web.actions import CannotStop, stop_run
from theseus.web.datasets import list_datasets
from theseus.web.files import NotFound, find_run, inside, parse_run_id, read_from, read_tail
from theseus.web.runs import RunSummary, list_runs, select, summarize
from theseus.web.security import Csrf, Guard

HERE = Path(__file__).parent
STATES = ("running", "completed", "failed", "preempted", "stale", "queued")
#: the longest config.yaml or result file shown inline
MAX_INLINE_BYTES = 512 * 1024
MAX_COMPARE = 12


def run_url(project: str, group: str, name: str, suffix: str = "") -> str:
    """The page of a run, each name percent-encoded as one path segment."""
    return "/runs/" + "/".join(quote(p, safe="") for p in (project, group, name)) + suffix


def fmt_number(value: Any, digits: int = 4) -> str:
    """A compact number for tables: ``2.314``, ``3.0e-04``, ``12.3k``; ``-`` when missing."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "-"
    v = float(value)
    if v != v:
        return "nan"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(v) >= 1e4:
        for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= scale:
                return f"{v / scale:.1f}{unit}"
    if v != 0 and abs(v) < 1e-2:
        return f"{v:.1e}"
    return f"{v:.{digits}g}"


def fmt_seconds(value: float | None) -> str:
    """``42s``, ``3m 05s``, ``2h 14m``; ``-`` when unknown."""
    if value is None:
        return "-"
    s = int(value)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def fmt_bytes(n: float) -> str:
    """``512 B``, ``1.5 MB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(num=fmt_number, seconds=fmt_seconds, bytes=fmt_bytes, when=iso)
    env.globals.update(run_url=run_url, states=STATES)
    return env


def _read_text(root: Path, path: Path) -> str | None:
    try:
        real = inside(root, path)
        if real.stat().st_size > MAX_INLINE_BYTES:
            return f"({path.name} is larger than {fmt_bytes(MAX_INLINE_BYTES)}; open it from {path})"
        return real.read_text(errors="replace")
    except (OSError, NotFound):
        return None


def _results(root: Path, run: RunDirectory) -> list[dict[str, Any]]:
    out = []
    try:
        files = sorted(p for p in run.results_dir.glob("*.json") if p.is_file())
    except OSError:
        return []
    for path in files:
        try:
            inside(root, path)
        except NotFound:
            continue
        data = read_json(path)
        rows = _flatten(data) if isinstance(data, dict) else []
        out.append({"name": path.stem, "rows": rows})
    return out


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, name + "."))
        elif isinstance(value, (int, float, str, bool)) or value is None:
            rows.append((name, value))
    return rows


def _commands(root: Path, run: RunDirectory, summary: RunSummary) -> dict[str, str]:
    job = run.read_job() or {}
    argv = job.get("argv")
    started = shlex.join(["theseus", *argv[1:]]) if isinstance(argv, list) and argv else ""
    rerun = [
        "theseus", "run", f"{summary.name}-rerun", str(run.config_path), str(root.resolve()),
        "-p", summary.project, "-g", summary.group,
    ]
    return {"started": started, "reproduce": shlex.join(rerun)}


class Dashboard:
    """The route handlers, sharing the output root, the templates and the metrics cache."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = _environment()
        self.csrf = Csrf()
        self.metrics = series.MetricsCache(self.root)

    def warm_all(self) -> None:
        """Start parsing the metrics of the most recently active runs in the background."""
        paths = [run.metrics_path for run in iter_runs(self.root) if run.metrics_path.is_file()]
        paths.sort(key=_mtime, reverse=True)
        series.warm(self.metrics, paths)

    # ---- helpers
    def render(self, template: str, code: int = 200, **context: Any) -> HTMLResponse:
        page = self.env.get_template(template).render(csrf=self.csrf.token, **context)
        return HTMLResponse(page, status_code=code)

    def not_found(self, request: Request, what: str = "page") -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"no such {what}"}, status_code=404)
        return self.render("error.html", 404, title="Not found", message=f"No such {what} under this output root.")

    def _run(self, request: Request) -> RunDirectory:
        p = request.path_params
        return find_run(self.root, p["project"], p["group"], p["name"])

    # ---- pages
    def runs_page(self, request: Request) -> Response:
        return self.render("runs.html", **self._runs_context(request))

    def runs_table(self, request: Request) -> Response:
        return self.render("_runs_table.html", **self._runs_context(request))

    def _runs_context(self, request: Request) -> dict[str, Any]:
        q = request.query_params
        sort = q.get("sort", "started")
        order = q.get("order", "desc")
        runs = select(list_runs(self.root), q.get("q", ""), q.get("state", ""), sort, order != "asc")
        return {"runs": runs, "query": q.get("q", ""), "state": q.get("state", ""), "sort": sort,
                "order": order, "root": str(self.root)}

    def run_page(self, request: Request) -> Response:
        try:
            run = self._run(request)
        except NotFound:
            return self.not_found(request, "run")
        series.warm(self.metrics, [run.metrics_path])  # parsing starts while the page loads
        summary = summarize(run)
        status = run.read_status() or {}
        log = read_tail(self.root, run.log_path)
        checkpoints = list_checkpoints(run.checkpoints_dir)
        stopped = request.query_params.get("stopped")
        return self.render(
            "run.html",
            run=summary,
            status=status,
            identity=run.read_job() or {},
            config=_read_text(self.root, run.config_path),
            checkpoints=checkpoints,
            results=_results(self.root, run),
            commands=_commands(self.root, run, summary),
            log_text=log.text,
            stoppable=summary.state == "running" and status.get("host") == socket.gethostname(),
            stopped=stopped if stopped and stopped.isdigit() else None,
            page={"kind": "run", "id": summary.id, "api": f"/api{run_url(summary.project, summary.group, summary.name)}",
                  "log_offset": log.offset, "live": summary.state in ("running", "queued")},
        )

    def compare_page(self, request: Request) -> Response:
        ids = request.query_params.getlist("run")[:MAX_COMPARE]
        runs = []
        for run_id in ids:
            try:
                runs.append(summarize(parse_run_id(self.root, run_id)))
            except NotFound:
                return self.render("error.html", 404, title="Not found", message="A compared run does not exist.")
        page = {"kind": "compare", "runs": [
            {"id": r.id, "api": f"/api{run_url(r.project, r.group, r.name)}"} for r in runs
        ]}
        return self.render("compare.html", runs=runs, page=page)

    def data_page(self, request: Request) -> Response:
        return self.render("data.html", datasets=list_datasets(self.root), root=str(self.root))

    # ---- actions
    async def stop(self, request: Request) -> Response:
        body = (await request.body())[:4096].decode(errors="replace")
        fields = dict(parse_qsl(body))
        given = fields.get(Csrf.FIELD) or request.headers.get(Csrf.HEADER)
        if not self.csrf.valid(given, request.headers.get("origin"), request.headers.get("host")):
            return self.render("error.html", 403, title="Forbidden", message="Missing or wrong CSRF token.")
        try:
            run = self._run(request)
        except NotFound:
            return self.not_found(request, "run")
        try:
            pid = stop_run(run)
        except CannotStop as exc:
            return self.render("error.html", 409, title="Cannot stop", message=str(exc))
        p = request.path_params
        return RedirectResponse(run_url(p["project"], p["group"], p["name"], f"?stopped={pid}"), status_code=303)

    # ---- API
    def api_runs(self, request: Request) -> Response:
        rows = []
        for r in list_runs(self.root):
            rows.append({
                "id": r.id, "project": r.project, "group": r.group, "name": r.name, "job": r.job,
                "state": r.state, "step": r.step, "total": r.total, "loss": r.loss, "val_loss": r.val_loss,
                "tokens_per_s": r.tokens_per_s, "started_at": r.started_at, "duration": r.duration,
                "heartbeat_age": r.heartbeat_age, "location": r.location,
            })
        return JSONResponse({"runs": rows})

    def api_metrics(self, request: Request) -> Response:
        try:
            run = self._run(request)
            since = _int_param(request, "since", None, 0, 1 << 62)
            points = _int_param(request, "points", series.DEFAULT_POINTS, 2, series.MAX_POINTS)
        except NotFound:
            return self.not_found(request, "run")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if since is None:
            data = series.snapshot(self.metrics, run.metrics_path, points or series.DEFAULT_POINTS)
        else:
            data = series.increment(self.root, run.metrics_path, since)
        data["state"] = run.effective_state()
        data["step"] = (run.read_status() or {}).get("step")
        return JSONResponse(data)

    def api_log(self, request: Request) -> Response:
        try:
            run = self._run(request)
            since = _int_param(request, "since", None, 0, 1 << 62)
        except NotFound:
            return self.not_found(request, "run")
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        chunk = read_tail(self.root, run.log_path) if since is None else read_from(self.root, run.log_path, since)
        return JSONResponse({"text": chunk.text, "offset": chunk.offset, "reset": chunk.reset})


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}]")
    return int(raw)


def create_app(root: str | Path, *, token: str | None = None, port: int = 8765) -> Guard:
    """The dashboard for the runs under ``root``, behind the access guard."""
    dash = Dashboard(Path(root))
    run_path = "/runs/{project}/{group}/{name}"
    routes = [
        Route("/", dash.runs_page),
        Route("/runs-table", dash.runs_table),
        Route(run_path, dash.run_page),
        Route(run_path + "/stop", dash.stop, methods=["POST"]),
        Route("/compare", dash.compare_page),
        Route("/data", dash.data_page),
        Route("/api/runs", dash.api_runs),
        Route("/api" + run_path + "/metrics", dash.api_metrics),
        Route("/api" + run_path + "/log", dash.api_log),
        Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
    ]

    async def missing(request: Request, exc: Exception) -> Response:
        return dash.not_found(request)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dash.warm_all()
        yield

    app = Starlette(routes=routes, exception_handlers={404: missing}, lifespan=lifespan)
    return Guard(app, token=token, port=port)
