"""A small multi-language repository indexed for real (real LanceDB, real packaged model)."""

from __future__ import annotations

from pathlib import Path

FILES = {
    "pkg/http_client.py": """
import socket


def parse_header(line):
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


class HttpClient:
    def __init__(self, host, port=80):
        self.host = host
        self.port = port
        self.sock = None

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port))

    def send(self, data):
        if self.sock is None:
            self.connect()
        self.sock.sendall(data)

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, method, path, body=b"", headers=None):
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}"]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        lines.append(f"Content-Length: {len(body)}")
        payload = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body
        self.send(payload)
        return self.read_response()

    def read_response(self):
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("connection closed before the headers ended")
            buffer += chunk
        head, _, rest = buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, status, reason = status_line.split(" ", 2)
        headers = dict(parse_header(line) for line in header_lines)
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            rest += self.sock.recv(length - len(rest))
        return int(status), reason, headers, rest[:length]

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc_info):
        self.close()
""",
    "pkg/mail.py": """
class MailQueue:
    def __init__(self):
        self.pending = []

    def send(self, message):
        self.pending.append(message)

    def flush(self, transport):
        while self.pending:
            transport.deliver(self.pending.pop(0))


def compute_checksum(payload):
    total = 0
    for byte in payload:
        total = (total * 31 + byte) % 65521
    return total
""",
    "go/server.go": """package server

import "strings"

type Server struct {
\tAddr string
\troutes map[string]string
}

func ParseHeader(line string) (string, string) {
\tparts := strings.SplitN(line, ":", 2)
\treturn strings.ToLower(strings.TrimSpace(parts[0])), strings.TrimSpace(parts[1])
}

func (s *Server) Route(path string, handler string) {
\tif s.routes == nil {
\t\ts.routes = map[string]string{}
\t}
\ts.routes[path] = handler
}
""",
    "web/app.js": """
export class EventBus {
  constructor() {
    this.listeners = new Map();
  }
  subscribe(topic, fn) {
    const list = this.listeners.get(topic) || [];
    list.push(fn);
    this.listeners.set(topic, list);
  }
}

export async function fetchUserProfile(userId) {
  const response = await fetch(`/api/users/${userId}`);
  return response.json();
}
""",
    "docs/it's quoted.py": """
def quoted_path_marker():
    return "a file whose path holds a single quote"
""",
}


def write_repo(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.lstrip("\n"))
    return root


def build_index(tmp: Path, repo: str = "demo") -> str:
    """Chunk, embed and index the repository; returns the database URI."""
    from indexer_core.embedding.model import load_embedder
    from indexer_core.indexing.chunk_step import chunk_partition
    from indexer_core.indexing.embed_step import embed_partition
    from indexer_core.indexing.settings import IndexSettings
    from indexer_core.search import indexes as search_index
    from indexer_core.storage import registry

    root = write_repo(tmp / "repo")
    db_uri = str(tmp / "lancedb")
    settings = IndexSettings(shards=1, use_git=False)
    chunk_partition(db_uri, repo, str(root), 0, settings)
    embed_partition(db_uri, repo, 0, load_embedder(settings.model))
    registry.register(db_uri, repo, root)
    search_index.build_fts_indexes(db_uri)
    return db_uri
