"""Running the dashboard: check the bind address and token, print the URL once, serve."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from theseus.errors import TheseusError
from theseus.web.security import check_bind, is_loopback, new_token

log = logging.getLogger("theseus")


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 8765, *, token: str | None = None,
          generate_token: bool = False) -> None:
    """Serve the dashboard of ``root`` on ``host:port`` until interrupted."""
    import uvicorn

    from theseus.web.app import create_app

    out = Path(root)
    if not out.is_dir():
        raise TheseusError(f"{out} does not exist (give the OUT directory your runs write to)")
    if generate_token:
        if token:
            raise TheseusError("give either --token or --generate-token, not both")
        token = new_token()
    check_bind(host, token)
    app = create_app(out, token=token, port=port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    click.echo(f"theseus web: {out.resolve()} on {url}" + (f"?token={token}" if token else ""), err=False)
    if not is_loopback(host):
        click.echo("  every request must carry the token (the link above sets it as a cookie)")
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            server_header=False, proxy_headers=False)
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits 1 when it cannot bind
        raise TheseusError(f"cannot serve on {host}:{port} (is the port in use?)") from exc
    if not server.started:
        raise TheseusError(f"cannot serve on {host}:{port} (is the port in use?)")
