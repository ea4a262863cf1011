#!/usr/bin/env python3
"""A durable key-value register, as an example of a system Faultline tests without Rust.

It speaks Faultline's generic client protocol: one JSON object per line over TCP.

    -> {"id": 7, "worker": 3, "f": "write", "value": [1, 4]}
    <- {"id": 7, "type": "ok"}

--protocol text makes it speak its own protocol instead, as most systems do, which
Faultline reaches through a client process (client.py, stdio.toml): one command per line,
values as compact JSON.

    -> SET 1 4            <- OK
    -> GET 1              <- VALUE 4          (VALUE null when unset)
    -> CAS 1 4 5          <- OK, or MISMATCH <current value>
                          <- ERR <why> for a line it does not understand

Operations: read [k, null] answers [k, v] (v null when unset); write [k, v]; cas
[k, [old, new]] fails unless k holds old. Every change is written to a new file, fsynced
and renamed over the state file before the answer leaves, so a kill loses nothing that was
acknowledged, and a paused server answers late but never wrongly.

--stale-reads plants a bug: reads come from a copy of the state refreshed once a second,
so a read can miss a write that completed before it began. Faultline's linearizability
checker catches it.
"""

import argparse
import asyncio
import json
import os
import time

MAX_LINE_BYTES = 1 << 20


class Register:
    def __init__(self, data_dir, stale_reads):
        self.path = os.path.join(data_dir, "state.json")
        self.stale_reads = stale_reads
        os.makedirs(data_dir, exist_ok=True)
        try:
            with open(self.path) as f:
                self.state = json.load(f)
        except FileNotFoundError:
            self.state = {}
        self.cache = dict(self.state)
        self.cached_at = time.monotonic()

    def persist(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, self.path)
        dirfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def read(self, key):
        source = self.state
        if self.stale_reads:
            if time.monotonic() - self.cached_at > 1.0:
                self.cache, self.cached_at = dict(self.state), time.monotonic()
            source = self.cache
        return source.get(key)

    def write(self, key, value):
        self.state[key] = value
        self.persist()

    def cas(self, key, old, new):
        """None if it swapped, else what the key holds."""
        current = self.state.get(key)
        if current != old:
            return {"holds": current}
        self.state[key] = new
        self.persist()
        return None

    def apply(self, f, value):
        """The response fields for one operation of the generic protocol."""
        if not isinstance(value, list) or len(value) != 2:
            return {"type": "fail", "error": "value must be [key, ...]"}
        key = str(value[0])
        if f == "read":
            return {"type": "ok", "value": [value[0], self.read(key)]}
        if f == "write":
            self.write(key, value[1])
            return {"type": "ok"}
        if f == "cas":
            pair = value[1]
            if not isinstance(pair, list) or len(pair) != 2:
                return {"type": "fail", "error": "cas value must be [key, [old, new]]"}
            if self.cas(key, pair[0], pair[1]) is not None:
                return {"type": "fail", "error": "cas mismatch"}
            return {"type": "ok"}
        return {"type": "fail", "error": "unknown f %r" % (f,)}

    def command(self, line):
        """The answer line to one line of the text protocol."""
        words = line.split()
        try:
            if len(words) == 2 and words[0] == "GET":
                return "VALUE " + compact(self.read(words[1]))
            if len(words) == 3 and words[0] == "SET":
                self.write(words[1], json.loads(words[2]))
                return "OK"
            if len(words) == 4 and words[0] == "CAS":
                differs = self.cas(words[1], json.loads(words[2]), json.loads(words[3]))
                return "OK" if differs is None else "MISMATCH " + compact(differs["holds"])
        except ValueError as e:
            return "ERR " + str(e).replace("\n", " ")
        return "ERR unknown command"


def compact(value):
    return json.dumps(value, separators=(",", ":"))


async def serve(register, text, reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            if text:
                # One event loop: commands apply one at a time, in arrival order.
                writer.write((register.command(line.decode(errors="replace")) + "\n").encode())
                await writer.drain()
                continue
            try:
                request = json.loads(line)
                rid = request["id"]
            except (ValueError, KeyError, TypeError):
                writer.write(b'{"error": "not a request"}\n')
                await writer.drain()
                return
            # One event loop: operations apply one at a time, in arrival order.
            response = register.apply(request.get("f"), request.get("value"))
            response["id"] = rid
            writer.write((json.dumps(response) + "\n").encode())
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--data", required=True, help="data directory")
    parser.add_argument("--stale-reads", action="store_true")
    parser.add_argument("--protocol", choices=["jsonl", "text"], default="jsonl")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    register = Register(args.data, args.stale_reads)
    text = args.protocol == "text"

    async def run():
        server = await asyncio.start_server(
            lambda r, w: serve(register, text, r, w), host, int(port), limit=MAX_LINE_BYTES
        )
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
