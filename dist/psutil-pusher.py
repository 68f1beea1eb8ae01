#!/usr/bin/env python3
"""The baseline a user would otherwise pick: a small Python + psutil loop
that pushes the same metrics and services to the StackSense agent API.
Written for dist/bench-pushes (not shipped; the server's own agent is not
copied here). Usage:

    psutil-pusher.py URL TOKEN CAFILE INTERVAL [tcp HOST:PORT] [http URL] [disk PATH]

It keeps one HTTPS connection open, takes cpu_percent from the previous
sample like our agent (never a sleep), and runs the checks before each push.
"""
import http.client
import json
import os
import platform
import socket
import ssl
import sys
import time
import urllib.parse
import urllib.request

import psutil

IGNORED = {"squashfs", "tmpfs", "devtmpfs", "proc", "sysfs", "cgroup", "cgroup2",
           "ramfs", "overlay", "udev", "virtfs"}
EPHEMERAL = ("/tmp", "/var/tmp", "/dev/shm", "/dev", "/run", "/var/run",
             "/var/lock", "/snap", "/boot/efi", "/proc", "/sys")


def ephemeral(path):
    m = "/" + path.strip("/")
    return m != "/" and any(m == p or m.startswith(p + "/") for p in EPHEMERAL)


def metrics(prev):
    now = time.time()
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    disks = {}
    for part in psutil.disk_partitions(all=False):
        if part.fstype.lower() in IGNORED or ephemeral(part.mountpoint):
            continue
        u = psutil.disk_usage(part.mountpoint)
        disks[part.mountpoint] = {"total": u.total, "used": u.used, "free": u.free,
                                  "percent": u.percent}
    nics = psutil.net_io_counters(pernic=True)
    dio, nio = psutil.disk_io_counters(), psutil.net_io_counters()
    load = os.getloadavg()
    body = {
        "agent_version": "psutil-pusher", "os_type": "linux",
        "os_version": platform.platform()[:200], "hostname": platform.node()[:200],
        "cpu_percent": psutil.cpu_percent(interval=None), "cpu_count": psutil.cpu_count(),
        "physical_cpu_count": psutil.cpu_count(logical=False),
        "cpu_load_avg_1m": load[0], "cpu_load_avg_5m": load[1], "cpu_load_avg_15m": load[2],
        "memory_total": mem.total, "memory_available": mem.available,
        "memory_percent": mem.percent, "memory_used": mem.used,
        "memory_buffers": mem.buffers, "memory_cached": mem.cached, "memory_shared": mem.shared,
        "swap_total": swap.total or None, "swap_used": swap.used or None,
        "swap_percent": swap.percent if swap.total else None,
        "system_uptime_seconds": int(now - psutil.boot_time()),
        "network_connections": len(psutil.net_connections()),
        "disk_read_bytes_total": dio.read_bytes, "disk_write_bytes_total": dio.write_bytes,
        "disk_usage": disks,
        "network_io": {n: {"bytes_sent": c.bytes_sent, "bytes_recv": c.bytes_recv,
                           "packets_sent": c.packets_sent, "packets_recv": c.packets_recv}
                       for n, c in nics.items()},
    }
    cur = (now, dio.read_bytes, dio.write_bytes, nio.bytes_sent, nio.bytes_recv)
    if prev:
        dt = now - prev[0]
        rates = [int((c - p) / dt) if c >= p else None for c, p in zip(cur[1:], prev[1:])]
        body.update(dict(zip(["disk_io_read", "disk_io_write", "net_io_sent", "net_io_recv"],
                             rates)))
    return body, cur


def check(kind, arg):
    started = time.monotonic()
    try:
        if kind == "tcp":
            host, port = arg.rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=5).close()
            ok, port = True, int(port)
        elif kind == "http":
            urllib.request.urlopen(arg, timeout=5).close()
            ok, port = True, urllib.parse.urlsplit(arg).port
        else:
            ok, port = psutil.disk_usage(arg).percent < 100, None
        err = None
    except OSError as e:
        ok, port, err = False, None, str(e)
    item = {"name": f"{kind} {arg}", "status": "running" if ok else "failed",
            "service_type": "check"}
    if kind != "disk":
        item.update({"port": port, "latency_ms": (time.monotonic() - started) * 1000,
                     "latency_success": ok, "latency_type": kind.upper()})
        if err:
            item["latency_error"] = err[:1000]
    return item


def main():
    url, token, cafile, interval = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    checks = list(zip(sys.argv[5::2], sys.argv[6::2]))
    parts = urllib.parse.urlsplit(url)
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection(parts.hostname, parts.port, context=ctx, timeout=10)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    psutil.cpu_percent(interval=None)
    prev = None
    while True:
        started = time.monotonic()
        body, prev = metrics(prev)
        posts = [("/api/agent/metrics/", body)]
        if checks:
            posts.append(("/api/agent/services/", {"agent_version": "psutil-pusher",
                                                   "services": [check(k, a) for k, a in checks]}))
        for path, payload in posts:
            try:
                conn.request("POST", path, json.dumps(payload), headers)
                conn.getresponse().read()
            except (OSError, http.client.HTTPException) as e:
                print(f"push failed: {e}", file=sys.stderr)
                conn.close()
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


if __name__ == "__main__":
    main()
