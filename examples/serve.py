"""Serve a folder of static pages on 127.0.0.1 and print the URL of each page.

Usage: python examples/serve.py examples/site --port 0 --print-urls urls.txt

Port 0 picks a free port. The URLs of the folder's .html files go to stdout,
one per line, and with --print-urls to a file that lhfleet reads with
``lhfleet run --input FILE``. The server runs until it is interrupted or killed.
It uses only the standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

# Loopback only, so that nothing outside this machine can read the folder.
HOST = "127.0.0.1"


class QuietHandler(SimpleHTTPRequestHandler):
    """Static file handler that logs only the requests that failed."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if isinstance(code, int) and code >= 400:
            super().log_request(code, size)

    def log_error(self, format: str, *args: Any) -> None:
        # send_error calls this before log_request, which names the path too.
        pass


def page_paths(folder: Path) -> list[str]:
    """Return the folder's .html files as URL paths, the top index.html first."""
    paths = [path.relative_to(folder).as_posix() for path in folder.rglob("*.html")]
    return sorted(paths, key=lambda path: (path != "index.html", path))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f"Serve a folder of static pages on {HOST} "
        "and print the URL of each page."
    )
    parser.add_argument("folder", type=Path, help="Folder to serve.")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port to listen on, or 0 for a free one [default: 0].",
    )
    parser.add_argument(
        "--print-urls",
        type=Path,
        metavar="FILE",
        help="Also write the page URLs to FILE, one per line.",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port is {args.port}; use 0 or a port from 1 to 65535.")
    if not args.folder.is_dir():
        parser.error(f"The folder {args.folder} does not exist or is not a folder.")
    return args


def publish_urls(path: Path, text: str) -> bool:
    """Write the URL list to ``path``. On failure, print the error and return False.

    The file appears whole or not at all, because scripts wait for it to be
    non-empty and then read it at once.
    """
    partial_path = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        partial_path.write_text(text, encoding="utf-8")
        os.replace(partial_path, path)
    except OSError as error:
        print(f"Cannot write the URL list {path}: {error.strerror}.", file=sys.stderr)
        partial_path.unlink(missing_ok=True)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = args.folder.resolve()
    pages = page_paths(folder)
    if not pages:
        print(
            f"No .html files found in {folder}. Pass a folder of static pages.",
            file=sys.stderr,
        )
        return 2

    handler = partial(QuietHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer((HOST, args.port), handler)
    except OSError as error:
        print(
            f"Cannot listen on {HOST}:{args.port}: {error.strerror}. "
            "Pick another port, or 0 for a free one.",
            file=sys.stderr,
        )
        return 1

    with server:
        port = server.server_address[1]
        text = "".join(f"http://{HOST}:{port}/{quote(page)}\n" for page in pages)
        if args.print_urls and not publish_urls(args.print_urls, text):
            return 1
        sys.stdout.write(text)
        sys.stdout.flush()
        print(f"Serving {folder} on http://{HOST}:{port}/", file=sys.stderr)
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
