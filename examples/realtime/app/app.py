#!/usr/bin/env python3
"""A small real-time web app: a page with a live stream of updates.

Standard library only. Each instance tells who it is (instance id, zone,
private IP) from the instance metadata service, as on EC2, falling back to
environment variables and the hostname.

  GET /         the page
  GET /events   Server-Sent Events: a tick every second, with who served it
  GET /health   200 "ok" (503 once /health/fail was called: for demos)
  GET /whoami   JSON of the instance identity
  GET /burn?seconds=N  burn one CPU for N seconds (at most 10; for demos
                of CPU metrics and scaling); answers at once with /whoami
  GET /ws       WebSocket echo (text and binary messages come back as sent)
"""
import base64
import hashlib
import struct
import json
import os
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(os.environ.get("PORT", "8000"))
HOST = os.environ.get("HOST", "0.0.0.0")
IMDS = os.environ.get("MOAT_IMDS", "http://169.254.169.254")
healthy = True
started = time.time()


def imds(path, default):
    """Reads one instance metadata path (IMDSv2), or returns default."""
    try:
        req = urllib.request.Request(IMDS + "/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})
        token = urllib.request.urlopen(req, timeout=0.5).read().decode()
        req = urllib.request.Request(IMDS + "/latest/meta-data/" + path,
                                     headers={"X-aws-ec2-metadata-token": token})
        return urllib.request.urlopen(req, timeout=0.5).read().decode()
    except Exception:
        return default


def local_ip():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.connect(("10.255.255.255", 9))  # UDP connect sends nothing; it picks the source address
        ip = s.getsockname()[0]
        s.close()
        return ip
    except OSError:
        return "127.0.0.1"


IDENTITY = {
    "instance": imds("instance-id", os.environ.get("MOAT_INSTANCE_ID", socket.gethostname())),
    "zone": imds("placement/availability-zone", os.environ.get("MOAT_ZONE", "local")),
    "ip": imds("local-ipv4", os.environ.get("MOAT_PRIVATE_IP", "")) or local_ip(),
}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>moat realtime</title>
<style>body{font-family:sans-serif;margin:2em}#log{font-family:monospace}</style></head>
<body><h1>moat realtime</h1>
<p>Page served by <b id="who">%(instance)s</b> in zone <b>%(zone)s</b> at <b>%(ip)s</b>.</p>
<p>Status: <span id="status">connecting</span></p>
<ol id="log"></ol>
<script>
const log = document.getElementById("log");
const es = new EventSource("/events");
es.onopen = () => document.getElementById("status").textContent = "live";
es.onerror = () => document.getElementById("status").textContent = "reconnecting";
es.onmessage = (e) => {
  const d = JSON.parse(e.data);
  const li = document.createElement("li");
  li.textContent = `#${d.seq} ${d.time} from ${d.instance} (${d.zone}, ${d.ip})`;
  log.prepend(li);
  while (log.children.length > 20) log.lastChild.remove();
};
</script></body></html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response: the head and the body are buffered and leave
    # together when the handler returns (streams flush themselves). A head
    # and a body in two small writes would wait ~40 ms for the client's
    # delayed ACK under Nagle's algorithm, on every keep-alive request.
    wbufsize = -1
    # TCP_NODELAY, so that the streams' flushed writes leave at once too.
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def handle_expect_100(self):
        super().handle_expect_100()
        self.wfile.flush()  # the interim response must not wait in the buffer
        return True

    def send(self, code, ctype, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        global healthy
        path = self.path.split("?", 1)[0]
        if path == "/":
            self.send(200, "text/html; charset=utf-8", PAGE % IDENTITY)
        elif path == "/health":
            self.send(200 if healthy else 503, "text/plain", "ok\n" if healthy else "failing\n")
        elif path == "/health/fail":
            healthy = False
            self.send(200, "text/plain", "health will now fail\n")
        elif path == "/whoami":
            self.send(200, "application/json", json.dumps(IDENTITY) + "\n")
        elif path == "/burn":
            query = dict(p.split("=", 1) for p in self.path.partition("?")[2].split("&") if "=" in p)
            try:
                seconds = min(max(float(query.get("seconds", "5")), 0), 10)
            except ValueError:
                seconds = 5
            threading.Thread(target=burn, args=(seconds,), daemon=True).start()
            self.send(200, "application/json", json.dumps(IDENTITY) + "\n")
        elif path == "/events":
            self.events()
        elif path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.websocket()
        else:
            self.send(404, "text/plain", "not found\n")

    def events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        seq = 0
        try:
            while True:
                seq += 1
                d = dict(IDENTITY, seq=seq, time=time.strftime("%H:%M:%S"))
                self.wfile.write(("data: " + json.dumps(d) + "\n\n").encode())
                self.wfile.flush()
                time.sleep(1)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def websocket(self):
        """RFC 6455 echo: the handshake, then every data frame back."""
        key = self.headers.get("Sec-WebSocket-Key", "")
        accept = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        rd, wr = self.rfile, self.wfile
        try:
            while True:
                head = rd.read(2)
                if len(head) < 2:
                    return
                opcode, n = head[0] & 0x0F, head[1] & 0x7F
                if n == 126:
                    n = struct.unpack(">H", rd.read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", rd.read(8))[0]
                mask = rd.read(4) if head[1] & 0x80 else b"\0\0\0\0"
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(rd.read(n)))
                if opcode == 0x8:  # close: answer and end
                    wr.write(b"\x88\x00")
                    wr.flush()
                    return
                if opcode == 0x9:  # ping -> pong
                    opcode = 0xA
                elif opcode not in (0x1, 0x2):
                    continue
                if len(data) < 126:
                    hdr = struct.pack(">BB", 0x80 | opcode, len(data))
                elif len(data) < 65536:
                    hdr = struct.pack(">BBH", 0x80 | opcode, 126, len(data))
                else:
                    hdr = struct.pack(">BBQ", 0x80 | opcode, 127, len(data))
                wr.write(hdr + data)
                wr.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def burn(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def main():
    server = ThreadingHTTPServer((HOST, PORT), Handler)
    server.daemon_threads = True
    print(f"listening on :{PORT} as {IDENTITY}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
