#!/usr/bin/env python3
"""An IEEE 802.1Q access port in userspace, for the VM rig (qemu/rig.sh rig_vlan_up).

    vlan-port.py TRUNK ACCESS VID

Frames from TRUNK (QEMU's tap0) tagged VID are forwarded to ACCESS (a veth whose peer is on the
rig's bridge) without the tag; every other frame from TRUNK — untagged, or another VID — is
dropped. Frames from ACCESS go to TRUNK tagged VID. This is what a VLAN-filtering bridge port
(`bridge vlan add dev tap0 vid VID`, no untagged PVID) does; the host kernel of the build machine
has neither bridge VLAN filtering nor 8021q, so the rig does it here.

The kernel moves a received tag into the packet's metadata before packet sockets see it
(net/core/dev.c __netif_receive_skb_core: skb_vlan_untag), so the tag is read from
PACKET_AUXDATA (packet(7): tp_vlan_tci, TP_STATUS_VLAN_VALID), or from the frame itself when it
is still inline. TCP/UDP checksums left to offload (TP_STATUS_CSUMNOTREADY) are computed here.
Counts go to stderr every 5 s when they changed, and at exit.
"""
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_CSUMNOTREADY = 0x08


def open_port(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((ifname, 0))
    return s


def csum16(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f">{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def fill_checksum(frame):
    """TCP/UDP checksum of an untagged Ethernet frame, computed afresh: a frame the kernel sent
    with checksum offload (TP_STATUS_CSUMNOTREADY, e.g. from a veth) leaves a packet socket
    with the field unfilled, and the guest would drop it."""
    eth = frame[12:14]
    if eth == b"\x08\x00" and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        proto, src, dst = frame[23], frame[26:30], frame[30:34]
        total, = struct.unpack_from(">H", frame, 16)
        l4 = 14 + ihl
        payload = frame[l4:14 + total]
        pseudo = src + dst + struct.pack(">BBH", 0, proto, len(payload))
    elif eth == b"\x86\xdd" and len(frame) >= 54:
        proto, src, dst = frame[20], frame[22:38], frame[38:54]
        plen, = struct.unpack_from(">H", frame, 18)
        l4 = 54
        payload = frame[l4:l4 + plen]
        pseudo = src + dst + struct.pack(">IxxxB", len(payload), proto)
    else:
        return frame
    off = {6: 16, 17: 6}.get(proto)
    if off is None or len(payload) < off + 2:
        return frame
    payload = payload[:off] + b"\0\0" + payload[off + 2:]
    c = csum16(pseudo + payload) or (0xFFFF if proto == 17 else 0)
    return frame[:l4] + payload[:off] + struct.pack(">H", c) + payload[off + 2:] + frame[l4 + len(payload):]


def csum_not_ready(ancdata):
    for level, kind, cdata in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= 4:
            status, = struct.unpack_from("I", cdata, 0)
            return bool(status & TP_STATUS_CSUMNOTREADY)
    return False


def vlan_of(data, ancdata):
    """(vid or None, frame without any inline tag)."""
    for level, kind, cdata in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= 20:
            status, = struct.unpack_from("I", cdata, 0)
            tci, = struct.unpack_from("H", cdata, 16)
            if status & TP_STATUS_VLAN_VALID:
                return tci & 0x0FFF, data
    if len(data) >= 18 and data[12:14] in (b"\x81\x00", b"\x88\xa8"):
        tci, = struct.unpack_from(">H", data, 14)
        return tci & 0x0FFF, data[:12] + data[16:]
    return None, data


def main():
    trunk_name, access_name, vid = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trunk, access = open_port(trunk_name), open_port(access_name)
    tag = struct.pack(">HH", 0x8100, vid)
    n = {"in": 0, "dropped": 0, "out": 0}
    shown = dict(n)
    last = time.monotonic()

    def show(*_):
        print(f"vlan-port {trunk_name}<->{access_name} vid {vid}: {n}", file=sys.stderr, flush=True)

    def stop(*_):
        show()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"vlan-port {trunk_name}<->{access_name} vid {vid}: ready", file=sys.stderr, flush=True)
    while True:
        ready, _, _ = select.select([trunk, access], [], [], 5)
        for s in ready:
            data, anc, _, addr = s.recvmsg(65535, socket.CMSG_SPACE(32))
            if addr[2] == PACKET_OUTGOING:
                continue
            if s is trunk:
                got, frame = vlan_of(data, anc)
                if got == vid:
                    if csum_not_ready(anc):
                        frame = fill_checksum(frame)
                    access.send(frame)
                    n["in"] += 1
                else:
                    n["dropped"] += 1
            else:
                got, frame = vlan_of(data, anc)
                if got is None:
                    if csum_not_ready(anc):
                        frame = fill_checksum(frame)
                    trunk.send(frame[:12] + tag + frame[12:])
                    n["out"] += 1
        if time.monotonic() - last >= 5 and n != shown:
            show()
            shown, last = dict(n), time.monotonic()


if __name__ == "__main__":
    main()
