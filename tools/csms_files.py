"""The dev CSMS's file server (tools/csms.py serve --files DIR): what an operator's HTTP
server does for a wallbox, on the host, over HTTP or HTTPS.

    GET /<name>        the file DIR/<name> (an update bundle for UpdateFirmware's location)
    PUT /<path>/<name> stored as DIR/uploads/<name> (GetDiagnostics / GetLog upload here:
                       a location ending in "/" gets the file name appended by the wallbox)

Names are single path components (no "..", no folders under DIR): anything else is 404.
Each upload is logged with its size; the last ones are kept in `uploads` (name, bytes)."""
import http.server
import os
import ssl
import threading

_MAX_UPLOAD = 1 << 20


class FileServer:
    def __init__(self, root, port=0, host="127.0.0.1", cert=None, key=None, log=print):
        self.root = os.path.abspath(root)
        self.uploads = []
        self.log = log
        srv = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _reply(self, code, body=b""):
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)

            def do_GET(self):
                name = self.path.split("?")[0].lstrip("/")
                p = srv._file(name)
                if p is None or not os.path.isfile(p):
                    return self._reply(404)
                with open(p, "rb") as f:
                    data = f.read()
                self._reply(200, data)

            def do_PUT(self):
                try:
                    n = int(self.headers.get("Content-Length", ""))
                except ValueError:
                    return self._reply(411)
                if not 0 <= n <= _MAX_UPLOAD:
                    return self._reply(413)
                body = self.rfile.read(n)
                name = self.path.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
                if srv._file(name) is None:
                    return self._reply(404)
                up = os.path.join(srv.root, "uploads")
                os.makedirs(up, exist_ok=True)
                with open(os.path.join(up, name), "wb") as f:
                    f.write(body)
                srv.uploads.append((name, body))
                srv.log("files: upload %s, %d bytes" % (name, len(body)))
                self._reply(201)

        self.httpd = http.server.ThreadingHTTPServer((host, port), H)
        self.port = self.httpd.server_address[1]
        scheme = "http"
        if cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = "%s://%s:%d/" % (scheme, host, self.port)
        self._thread = None

    def _file(self, name):
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            return None
        return os.path.join(self.root, name)

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="csms-files",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
