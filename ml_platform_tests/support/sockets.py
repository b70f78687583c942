"""Which TCP addresses a group of processes listens on (from /proc, no extra tools)."""

import ipaddress
import os
import socket
import struct
from pathlib import Path


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except (FileNotFoundError, PermissionError):
        pass
    return inodes


def _address(hex_address: str) -> tuple[str, int]:
    host, port = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        address = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:  # /proc prints IPv6 as four little-endian 32-bit words
        address = socket.inet_ntop(
            socket.AF_INET6,
            b"".join(struct.pack(">I", struct.unpack("<I", raw[i : i + 4])[0]) for i in range(0, 16, 4)),
        )
    return str(ipaddress.ip_address(address)), int(port, 16)


def listening_addresses(pgid: int) -> set[tuple[str, int]]:
    """(address, port) of every listening TCP socket of the processes in process group ``pgid``."""
    inodes = set()
    for pid in _group(pgid):
        inodes |= _socket_inodes(pid)
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:] if Path(table).exists() else []
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.add(_address(fields[1]))
    return found


def only_loopback(addresses: set[tuple[str, int]]) -> bool:
    return all(ipaddress.ip_address(address).is_loopback for address, _ in addresses)


def owner_group_of_port(port: int) -> int | None:
    """The process group of the process that listens on ``port``, if any."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and _address(fields[1])[1] == port:
                inode = fields[9]
    if inode is None:
        return None
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and inode in _socket_inodes(int(entry.name)):
            try:
                return os.getpgid(int(entry.name))
            except ProcessLookupError:
                return None
    return None
