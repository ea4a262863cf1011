#!/usr/bin/env python3
"""A durable transactional key-value store, as an example of a system Faultline tests
without Rust: lists you append to, registers you overwrite, and bank accounts.

It speaks Faultline's generic client protocol, one JSON object per line over TCP, and
runs the list-append, rw-register and bank workloads:

    -> {"id": 7, "worker": 3, "f": "txn", "value": [["append", 1, 4], ["r", 2, null]]}
    <- {"id": 7, "type": "ok", "value": [["append", 1, 4], ["r", 2, [1, 3]]]}
    -> {"id": 8, "worker": 3, "f": "transfer", "value": {"from": 0, "to": 5, "amount": 3}}
    <- {"id": 8, "type": "ok"}                  (or "fail" when account 0 holds less than 3)
    -> {"id": 9, "worker": 3, "f": "read", "value": null}
    <- {"id": 9, "type": "ok", "value": {"0": 97, "1": 100, ...}}

A transaction's micro-ops are ["r", k, null], ["append", k, v] and ["w", k, v]; a read
answers the key's list (list-append) or value (rw-register), null when the key was never
written. The bank has accounts 0 to 7, each opened with 100.

One event loop runs one operation at a time, so every history is strictly serializable.
A transaction that changes anything is appended to a log and fsynced before its answer
leaves; a restart replays the log (a torn last line, from a kill mid-write, is dropped,
and that transaction was never acknowledged).

--bug aborted-reads plants a bug: one writing transaction in ten is applied and logged,
then answered "fail", so later reads see writes of a transaction its client was told
failed. Faultline's transactional checker calls that G1a (aborted read).
"""

import argparse
import asyncio
import json
import os

MAX_LINE_BYTES = 1 << 20
ACCOUNTS = 8
INITIAL_BALANCE = 100
BUGGY_EVERY = 10


class Store:
    def __init__(self, data_dir, aborted_reads):
        os.makedirs(data_dir, exist_ok=True)
        self.path = os.path.join(data_dir, "log.jsonl")
        self.aborted_reads = aborted_reads
        self.writes = 0
        self.kv = {}
        self.balances = {str(a): INITIAL_BALANCE for a in range(ACCOUNTS)}
        self.replay()
        self.log = open(self.path, "a")

    def replay(self):
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(len(whole))
        for line in whole.splitlines():
            self.redo(json.loads(line))

    def redo(self, entry):
        for kind, key, value in entry.get("kv", []):
            if kind == "append":
                self.kv.setdefault(key, []).append(value)
            else:
                self.kv[key] = value
        for account, balance in entry.get("balances", {}).items():
            self.balances[account] = balance

    def commit(self, entry):
        """Applies `entry` and makes it durable before anyone hears of it."""
        self.log.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self.log.flush()
        os.fsync(self.log.fileno())
        self.redo(entry)
        self.writes += 1
        return not (self.aborted_reads and self.writes % BUGGY_EVERY == 0)

    def txn(self, mops):
        if not isinstance(mops, list) or not mops:
            return {"type": "fail", "error": "a txn is a non-empty list of micro-ops"}
        # Reads see the transaction's own earlier writes: run it on a scratch copy.
        scratch, done, changes = {}, [], []
        for mop in mops:
            if not isinstance(mop, list) or len(mop) != 3 or mop[0] not in ("r", "append", "w"):
                return {"type": "fail", "error": "bad micro-op %r" % (mop,)}
            kind, key, value = mop
            key = str(key)
            if key not in scratch:
                current = self.kv.get(key)
                scratch[key] = list(current) if isinstance(current, list) else current
            if kind == "r":
                done.append(["r", mop[1], scratch[key]])
                continue
            if kind == "append":
                scratch[key] = (scratch[key] or []) + [value]
            else:
                scratch[key] = value
            changes.append([kind, key, value])
            done.append(mop)
        if changes and not self.commit({"kv": changes}):
            return {"type": "fail", "error": "planted bug: applied, then answered fail"}
        return {"type": "ok", "value": done}

    def transfer(self, value):
        try:
            src, dst, amount = str(value["from"]), str(value["to"]), int(value["amount"])
        except (KeyError, TypeError, ValueError):
            return {"type": "fail", "error": "a transfer is {from, to, amount}"}
        if src not in self.balances or dst not in self.balances or src == dst or amount < 0:
            return {"type": "fail", "error": "no such transfer"}
        if self.balances[src] < amount:
            return {"type": "fail", "error": "insufficient funds"}
        moved = {src: self.balances[src] - amount, dst: self.balances[dst] + amount}
        if not self.commit({"balances": moved}):
            return {"type": "fail", "error": "planted bug: applied, then answered fail"}
        return {"type": "ok"}

    def apply(self, f, value):
        if f == "txn":
            return self.txn(value)
        if f == "transfer":
            return self.transfer(value)
        if f == "read":
            return {"type": "ok", "value": dict(self.balances)}
        return {"type": "fail", "error": "unknown f %r" % (f,)}


async def serve(store, reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                return
            try:
                request = json.loads(line)
                rid = request["id"]
            except (ValueError, KeyError, TypeError):
                writer.write(b'{"error": "not a request"}\n')
                await writer.drain()
                return
            # One event loop: operations apply one at a time, in arrival order.
            response = store.apply(request.get("f"), request.get("value"))
            response["id"] = rid
            writer.write((json.dumps(response) + "\n").encode())
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--data", required=True, help="data directory")
    parser.add_argument("--bug", choices=["aborted-reads"])
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    store = Store(args.data, args.bug == "aborted-reads")

    async def run():
        server = await asyncio.start_server(
            lambda r, w: serve(store, r, w), host, int(port), limit=MAX_LINE_BYTES
        )
        async with server:
            await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    main()
