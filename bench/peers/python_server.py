#!/usr/bin/env python3
"""Python's http.server as a benchmark peer: ThreadingHTTPServer speaking HTTP/1.1,
GET /hello answered by the handler, everything else by SimpleHTTPRequestHandler.

    python3 python_server.py --port 8080 --dir /tmp/files
"""

import argparse
import functools
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

HELLO = b"Hello, world!"


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The head and the body leave in separate writes; with Nagle's algorithm on, the body
    # waits for the client's delayed ACK (40 ms) and the benchmark would measure that.
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path != "/hello":
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(HELLO)))
        self.end_headers()
        self.wfile.write(HELLO)

    def log_message(self, format, *args):
        pass


class Server(ThreadingHTTPServer):
    # The default backlog of 5 would make the 1000-connection runs measure SYN retries;
    # the other servers listen with 511 to 4096.
    request_queue_size = 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--dir", default=".")
    args = parser.parse_args()
    handler = functools.partial(Handler, directory=args.dir)
    with Server(("127.0.0.1", args.port), handler) as server:
        print(f"python http.server listening on 127.0.0.1:{server.server_port}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
