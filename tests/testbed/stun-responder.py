#!/usr/bin/python3
"""A minimal STUN responder (RFC 5389 Binding: MAPPED-ADDRESS and XOR-MAPPED-ADDRESS) for a test
network's WAN side. miniupnpd maps nothing when its WAN address is reserved (198.18.0.0/15 is);
with ext_perform_stun=yes pointed here, all four of its probes are answered, it takes the answer
as its external address and enables forwarding (see miniupnpd.conf.template).
Usage: stun-responder.py ADDRESS   (listens on ADDRESS:3478/udp until killed)"""
import socket
import struct
import sys

MAGIC = 0x2112A442
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 3478))
while True:
    data, (host, port) = sock.recvfrom(2048)
    if len(data) < 20 or struct.unpack(">H", data[:2])[0] != 0x0001:
        continue
    address = socket.inet_aton(host)
    xored = bytes(a ^ b for a, b in zip(address, struct.pack(">I", MAGIC)))
    attributes = struct.pack(">HHBBH4s", 0x0001, 8, 0, 1, port, address) + struct.pack(">HHBBH4s", 0x0020, 8, 0, 1, port ^ 0x2112, xored)
    sock.sendto(struct.pack(">HHI", 0x0101, len(attributes), MAGIC) + data[8:20] + attributes, (host, port))
