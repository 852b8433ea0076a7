"""``grader serve``: the Starlette app and the uvicorn server that runs it on a socket bound here.

Routes (every one needs the token or the session cookie it sets; POSTs need the CSRF token):

| route | what |
|---|---|
| ``GET /`` | items with "graded / students", answer groups, rubric changes, publish |
| ``GET, POST /name`` | the TA's name, recorded with every mark |
| ``GET /item/{item}`` | the next student to grade for an item |
| ``GET /next/{item}?after=S`` | the next ungraded student after S |
| ``GET, POST /grade/{item}/{student}`` | one answer: rubric lines, comment, scores; POST saves (JSON or redirect) |
| ``GET /state/{item}/{student}`` | the current mark and scores as JSON |
| ``GET, POST /groups/{item}`` | near-identical answers; POST marks a whole group |
| ``POST /rubric/{item}`` | add a rubric line or change a line's text or points |
| ``POST /publish`` | re-render the reports of the students whose marks changed |
| ``GET /report/{student}``, ``GET /summary`` | the published report, the class summary |
| ``GET /export/{format}`` | the current marks as YAML or CSV |
| ``GET /static/{name}`` | serve.js, serve.css |
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import Response
from starlette.routing import Route

from grader.serve.routes import Pages
from grader.serve.security import Keys, SecurityHeaders
from grader.serve.state import Grading


class PortInUse(OSError):
    """The port is taken (another grader serve, a notebook server...)."""


def create_app(grading: Grading, keys: Keys) -> Starlette:
    pages = Pages(grading, keys)
    guard = pages.guard
    routes = [
        Route("/", guard(pages.index)),
        Route("/name", guard(pages.name), methods=["GET"]),
        Route("/name", guard(pages.name, write=True), methods=["POST"]),
        Route("/item/{item}", guard(pages.item_start, needs_name=True)),
        Route("/next/{item}", guard(pages.next_ungraded, needs_name=True)),
        Route("/grade/{item}/{student}", guard(pages.grade, needs_name=True), methods=["GET"]),
        Route("/grade/{item}/{student}", guard(pages.save, write=True, needs_name=True), methods=["POST"]),
        Route("/state/{item}/{student}", guard(pages.state_json)),
        Route("/groups/{item}", guard(pages.groups, needs_name=True), methods=["GET"]),
        Route("/groups/{item}", guard(pages.groups, write=True, needs_name=True), methods=["POST"]),
        Route("/rubric/{item}", guard(pages.rubric_change, write=True, needs_name=True), methods=["POST"]),
        Route("/publish", guard(pages.publish, write=True, needs_name=True), methods=["POST"]),
        Route("/report/{student}", guard(pages.report)),
        Route("/summary", guard(pages.summary)),
        Route("/export/{format:str}", guard(pages.export)),
        Route("/static/{name}", pages.static),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
    ]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); ``PortInUse`` when it is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {host} is in use (another 'grader serve'?); pass another --port, "
                            "or --port 0 for a free one") from None
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by each connection: no 40 ms stalls
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass
class Server:
    """uvicorn on a socket bound beforehand (so a taken port is a clear error, and port 0 works)."""

    grading: Grading
    keys: Keys
    sock: socket.socket

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def url(self, host: str | None = None) -> str:
        bound, port = self.address
        shown = host or bound
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{port}/?token={self.keys.token}"

    def uvicorn(self) -> uvicorn.Server:
        config = uvicorn.Config(create_app(self.grading, self.keys), log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=3)
        return uvicorn.Server(config)

    def run(self) -> None:
        self.uvicorn().run(sockets=[self.sock])
