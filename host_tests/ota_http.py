# A small HTTP server on 127.0.0.1 (port chosen by the OS) for the download tests
# (host_tests/test_ota_download.py): serves one body as Content-Length, chunked, behind
# redirects, with Range, and a path that drops the connection half way the first times; over
# TLS when given a certificate and key; paced (burst bytes, then a pause) when asked, so that a
# download lasts long enough to be cut at a chosen moment (host_tests/test_ota_kill.py).
# PUT is the upload endpoint (GetDiagnostics, GetLog:
# firmware/secext/upload.py): the body is kept in `uploads` as (path, bytes); /refused
# answers 403, /flaky drops the first `drops` uploads before the headers are answered.
import http.server
import threading
import time


class Server:
    def __init__(self, body, drops=1, tls=None, pace=None):
        self.body = body
        self.pace = pace  # (burst bytes, pause s) for /b
        self.drops = drops  # /drop: connections cut half way before one goes through
        self.requests = []
        self.uploads = []  # (path, body) of every PUT that was stored
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                srv.requests.append((self.path, self.headers.get("Range")))
                b = srv.body
                if self.path == "/redir":
                    return self._redirect("/b")
                if self.path == "/redir-abs":
                    return self._redirect("http://127.0.0.1:%d/chunked" % srv.port)
                if self.path == "/loop":
                    return self._redirect("/loop")
                if self.path == "/chunked":
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(b), 777):
                        part = b[i:i + 777]
                        self.wfile.write(b"%x;ext=1\r\n" % len(part) + part + b"\r\n")
                    self.wfile.write(b"0\r\nX-Trailer: 1\r\n\r\n")
                    return
                if self.path not in ("/b", "/drop"):
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes=") and self.path == "/drop":
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes %d-%d/%d" % (
                        start, len(b) - 1, len(b)))
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(b) - start))
                self.end_headers()
                if self.path == "/drop" and srv.drops > 0:
                    srv.drops -= 1
                    self.wfile.write(b[start:start + (len(b) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if srv.pace is not None:
                    burst, gap = srv.pace
                    try:
                        for i in range(start, len(b), burst):
                            self.wfile.write(b[i:i + burst])
                            self.wfile.flush()
                            time.sleep(gap)
                    except ConnectionError:
                        pass  # the device was cut off
                    return
                self.wfile.write(b[start:])

            def do_PUT(self):
                srv.requests.append((self.path, "PUT"))
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                if self.path.startswith("/flaky") and srv.drops > 0:
                    srv.drops -= 1
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                code = 403 if self.path.startswith("/refused") else 201
                if code == 201:
                    srv.uploads.append((self.path, body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _redirect(self, loc):
                self.send_response(302)
                self.send_header("Location", loc)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        if tls is not None:  # (certificate file, key file): https
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.url = "https://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
