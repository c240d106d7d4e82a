# N sequential GET /bytes/13 requests to 127.0.0.1:PORT: keep (one connection) or close (new each).
# usage: nreq.py PORT N keep|close
import socket, sys
port, n, mode = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
def read_resp(s, buf):
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d: raise SystemExit("eof")
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    cl = 0
    for line in head.split(b"\r\n")[1:]:
        k, v = line.split(b":", 1)
        if k.strip().lower() == b"content-length": cl = int(v)
    while len(rest) < cl:
        rest += s.recv(65536)
    return rest[cl:]
if mode == "close":
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /bytes/13 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        read_resp(s, b"")
        s.close()
else:
    s = socket.create_connection(("127.0.0.1", port))
    buf = b""
    for _ in range(n):
        s.sendall(b"GET /bytes/13 HTTP/1.1\r\nHost: a\r\n\r\n")
        buf = read_resp(s, buf)
    s.close()
