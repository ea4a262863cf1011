#!/usr/bin/env python3
"""Faultline's client for the example register when it speaks its own text protocol
(server.py --protocol text): Faultline starts one per worker and talks to it over stdin and
stdout, in the generic protocol's lines.

    stdin  <- {"id": 7, "worker": 3, "f": "cas", "value": [1, [4, 5]]}
    stdout -> {"id": 7, "type": "fail", "error": "cas mismatch: holds 6"}

The Connection class stands for a system's own client library; the loop below is all the
glue a system needs. It must say `fail` only when the operation certainly did not happen
(no connection, a definite refusal) and `info` when it may have (the connection broke
after the command left). Faultline kills and restarts this process after any `info`, and
when it does not answer within the operation's deadline (a paused server), so it keeps no
timeouts of its own.
"""

import argparse
import json
import socket
import sys


class Connection:
    """The register's client library: its text protocol over one TCP connection."""

    def __init__(self, address):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)))
        self.file = self.sock.makefile("rwb")

    def call(self, *words):
        self.file.write((" ".join(words) + "\n").encode())
        self.file.flush()
        answer = self.file.readline()
        if not answer:
            raise ConnectionError("the server closed the connection")
        kind, _, rest = answer.decode().strip().partition(" ")
        if kind == "ERR":
            raise ValueError(rest)
        return kind, rest

    def get(self, key):
        kind, rest = self.call("GET", key)
        return json.loads(rest)

    def set(self, key, value):
        self.call("SET", key, compact(value))

    def cas(self, key, old, new):
        """(True, None) if it swapped, else (False, what the key holds), which may be None:
        a mismatch on an unset key."""
        kind, rest = self.call("CAS", key, compact(old), compact(new))
        if kind == "OK":
            return True, None
        return False, json.loads(rest)


def compact(value):
    return json.dumps(value, separators=(",", ":"))


def perform(conn, f, value):
    """The response fields for one operation, once the connection is up."""
    key = str(value[0])
    if f == "read":
        return {"type": "ok", "value": [value[0], conn.get(key)]}
    if f == "write":
        conn.set(key, value[1])
        return {"type": "ok"}
    if f == "cas":
        swapped, holds = conn.cas(key, value[1][0], value[1][1])
        if swapped:
            return {"type": "ok"}
        return {"type": "fail", "error": "cas mismatch: holds %s" % compact(holds)}
    return {"type": "fail", "error": "unknown f %r" % (f,)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="HOST:PORT of the worker's node")
    parser.add_argument("--worker", required=True, type=int)
    args = parser.parse_args()
    print("client.py for worker %d, server %s" % (args.worker, args.server), file=sys.stderr)
    conn = None
    for line in sys.stdin:
        request = json.loads(line)
        if conn is None:
            try:
                conn = Connection(args.server)
            except OSError as e:
                # Nothing was sent: the operation certainly did not happen.
                response = {"type": "fail", "error": "connect: %s" % e}
                answer(request, response)
                continue
        try:
            response = perform(conn, request["f"], request["value"])
        except ValueError as e:
            # The server refused the command outright.
            response = {"type": "fail", "error": "refused: %s" % e}
        except OSError as e:
            # The command may have been applied before the connection broke.
            response = {"type": "info", "error": "connection lost: %s" % e}
            conn = None
        answer(request, response)


def answer(request, response):
    response["id"] = request["id"]
    sys.stdout.write(json.dumps(response) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
