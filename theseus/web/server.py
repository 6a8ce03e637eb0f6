"""Running the dashboard: check the bind address and token, listen, print the URL once, serve."""

from __future__ import annotations

import socket
from pathlib import Path

import click

from theseus.errors import TheseusError
from theseus.web.security import check_bind, is_loopback, new_token


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port), or a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise TheseusError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


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
    sock = listen(host, port)
    port = sock.getsockname()[1]
    app = create_app(out, token=token, port=port)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"theseus web: {out.resolve()} on {url}")
    if not is_loopback(host):
        click.echo("  every request must carry the token (opening the link above stores it in a cookie)")
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])
