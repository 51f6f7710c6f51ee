"""A tiny HTTP server on 127.0.0.1 for download tests (no outside network needed).

Imported as ``from local_http import serve`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Iterator

#: path -> (HTTP status, body bytes, content type)
Routes = dict[str, tuple[int, bytes, str]]


@contextlib.contextmanager
def serve(routes: Routes) -> Iterator[str]:
    """Serve ``routes`` on a free local port; yields the base URL (``http://127.0.0.1:PORT``).

    ``routes`` may be changed while the server runs (the handler looks it up per request);
    unknown paths answer 404.
    """

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body, ctype = routes.get(self.path, (404, b"not found", "text/plain"))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # keep test output clean
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
