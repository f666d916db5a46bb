"""Run the service on uvicorn: `digit-keras serve`, in one process or several on one port.

One process answers on its event loop and so uses about one core (app.py says why); `workers`
processes share one listening socket, each loading the model named in $DIGIT_KERAS_SERVE_MODEL
(`app.app_from_environment`).
"""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

from digit_keras.errors import UserError
from digit_keras.serving.app import MODEL_ENV, load_served_model

APP_FACTORY = "digit_keras.serving.app:app_from_environment"


def serve(model_path: Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Serve `model_path` (an .onnx file or a run directory with one) until Ctrl-C."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    if workers < 1:
        raise UserError(f"--workers must be 1 or more, not {workers}")
    model = load_served_model(model_path)  # a bad model is an error here, not in every worker
    os.environ[MODEL_ENV] = str(model.path.resolve())
    sockets = [listening_socket(host, port)]
    # uvicorn sets up its logging when its Config is made: only once the server will run.
    config = uvicorn.Config(
        APP_FACTORY, factory=True, host=host, port=port, workers=workers, log_level="warning"
    )
    processes = f" in {workers} processes" if workers > 1 else ""
    print(f"serving {model.path} at http://{host}:{port}/{processes} (Ctrl-C stops)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        if workers > 1:
            Multiprocess(config, sockets=sockets).run()
        else:
            uvicorn.Server(config).run(sockets=sockets)


def listening_socket(host: str, port: int) -> socket.socket:
    """The socket the server listens on (shared by its processes), made as uvicorn makes it but
    with its protocol set; a port in use is a one-line error.

    uvicorn's own (`Config.bind_socket`) leaves `proto` at 0; accepted connections inherit it and
    asyncio then skips TCP_NODELAY, so on Linux every keep-alive request after the first waits
    ~40 ms for the client's delayed ACK (Kludex/uvicorn#3149; measured here: p50 44 ms at any
    load). getaddrinfo gives the family and `IPPROTO_TCP`. Drop this once uvicorn sets it.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {err.strerror}") from None
    sock.set_inheritable(True)
    return sock
