"""Deletes the RabbitMQ objects of a Vidsnap queue named QUEUE: the queues QUEUE and QUEUE.dead
and the exchange QUEUE.dlx (its retry and hold queues expire by themselves). For `make cluster`
(scripts/cluster.sh), on the machine's broker, which every clone shares. Python's standard
library only: the few AMQP 0-9-1 methods it needs, spoken directly.

    amqp_delete.py AMQP_URL QUEUE
"""

import socket
import struct
import sys
from urllib.parse import unquote, urlparse

FRAME_METHOD, FRAME_END = 1, 0xCE


def shortstr(text):
    data = text.encode()
    return struct.pack("B", len(data)) + data


def longstr(data):
    return struct.pack(">I", len(data)) + data


class Connection:
    def __init__(self, url):
        parsed = urlparse(url)
        self.sock = socket.create_connection((parsed.hostname, parsed.port or 5672), timeout=10)
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(0, 10, 10)  # Connection.Start
        auth = b"\x00" + unquote(parsed.username or "guest").encode()
        auth += b"\x00" + unquote(parsed.password or "guest").encode()
        self.send(0, 10, 11, struct.pack(">I", 0) + shortstr("PLAIN") + longstr(auth)
                  + shortstr("en_US"))
        tune = self.expect(0, 10, 30)
        channel_max, frame_max, _ = struct.unpack(">HIH", tune[:8])
        self.send(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
        vhost = unquote(parsed.path[1:]) if len(parsed.path) > 1 else "/"
        self.send(0, 10, 40, shortstr(vhost) + shortstr("") + b"\x00")
        self.expect(0, 10, 41)
        self.send(1, 20, 10, shortstr(""))
        self.expect(1, 20, 11)

    def send(self, channel, class_id, method_id, args):
        payload = struct.pack(">HH", class_id, method_id) + args
        header = struct.pack(">BHI", FRAME_METHOD, channel, len(payload))
        self.sock.sendall(header + payload + bytes([FRAME_END]))

    def read(self, n):
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the broker closed the connection")
            data += chunk
        return data

    def expect(self, channel, class_id, method_id):
        """The arguments of the next method on `channel`, which must be the one named."""
        while True:
            kind, got_channel, size = struct.unpack(">BHI", self.read(7))
            payload = self.read(size)
            self.read(1)
            if kind != FRAME_METHOD or got_channel != channel:
                continue  # heartbeats
            got = struct.unpack(">HH", payload[:4])
            if got in ((10, 50), (20, 40)):  # Connection.Close, Channel.Close
                code = struct.unpack(">H", payload[4:6])[0]
                text = payload[7 : 7 + payload[6]].decode(errors="replace")
                raise RuntimeError(f"the broker refused: {code} {text}")
            if got != (class_id, method_id):
                raise RuntimeError(f"expected {(class_id, method_id)}, got {got}")
            return payload[4:]

    def close(self):
        self.send(0, 10, 50, struct.pack(">H", 200) + shortstr("done") + struct.pack(">HH", 0, 0))
        self.expect(0, 10, 51)
        self.sock.close()


def main(argv):
    if len(argv) != 3:
        sys.exit(__doc__)
    url, queue = argv[1:]
    connection = Connection(url)
    for name in (queue, f"{queue}.dead"):
        # Queue.Delete: deleting a queue that does not exist succeeds.
        connection.send(1, 50, 40, struct.pack(">H", 0) + shortstr(name) + b"\x00")
        connection.expect(1, 50, 41)
    connection.send(1, 40, 20, struct.pack(">H", 0) + shortstr(f"{queue}.dlx") + b"\x00")
    connection.expect(1, 40, 21)
    connection.close()


if __name__ == "__main__":
    main(sys.argv)
