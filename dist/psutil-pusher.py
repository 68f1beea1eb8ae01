#!/usr/bin/env python3
"""The baseline a user would otherwise pick: a small Python + psutil loop
that pushes the same metrics and services to the StackSense agent API.
Written for dist/bench-pushes (not shipped; the server's own agent is not
copied here). Usage:

    psutil-pusher.py URL TOKEN CAFILE INTERVAL [tcp HOST:PORT] [http URL] [disk PATH]
                     [discover DOCKER-SOCKET|-]

It keeps one HTTPS connection open, takes cpu_percent from the previous
sample like our agent (never a sleep), and runs the checks before each push.
Like the agent it sends top_processes (psutil's process_iter, per-process
CPU since the previous push), disk_hardware and the disks' tags (from
/sys/block, as lsblk reads it, without spawning lsblk) and ipc_stats
(/proc/sysvipc and /dev/shm). With "discover", it also finds services as
the server's own agent does (`systemctl list-units`, psutil's listening
sockets with their processes, a TCP connect to each) and sends the
containers push, asking the engine's socket directly (cheaper than the
`docker ps` the server's agent runs).
"""
import http.client
import json
import os
import platform
import socket
import ssl
import subprocess
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


def top_processes():
    procs = []
    for p in psutil.process_iter(["pid", "name", "username", "memory_info", "create_time"]):
        try:
            procs.append((p.cpu_percent(interval=None), p))
        except psutil.Error:
            continue
    total = psutil.virtual_memory().total

    def row(cpu, p):
        rss = p.info["memory_info"].rss if p.info["memory_info"] else 0
        return {"pid": p.info["pid"], "name": p.info["name"] or "",
                "user": p.info["username"] or "", "cpu_percent": round(cpu, 1),
                "memory_percent": round(rss * 100.0 / total, 2), "rss": rss,
                "start_time": round(p.info["create_time"] or 0, 2)}

    by_cpu = sorted(procs, key=lambda x: x[0], reverse=True)[:5]
    by_mem = sorted(procs, key=lambda x: x[1].info["memory_info"].rss
                    if x[1].info["memory_info"] else 0, reverse=True)[:5]
    return {"cpu": [row(c, p) for c, p in by_cpu], "memory": [row(c, p) for c, p in by_mem]}


def read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def disk_hardware():
    disks, arrays = [], []
    for dev in sorted(os.listdir("/sys/block")):
        base = "/sys/block/" + dev
        size = read(base + "/size")
        size = int(size) * 512 if size and size.isdigit() else None
        if dev.startswith("md"):
            level = read(base + "/md/level")
            if level and level.startswith("raid"):
                arrays.append({"name": dev, "level": level, "size": size})
            continue
        if dev.startswith(("loop", "ram", "zram", "dm-", "sr", "fd", "nbd")):
            continue
        rota = read(base + "/queue/rotational") == "1"
        kind = "NVMe" if dev.startswith("nvme") else ("HDD" if rota else "SSD")
        disks.append({"name": dev, "type": kind, "model": read(base + "/device/model") or None,
                      "size": size, "transport": None, "rotational": rota})
    return {"physical_disk_count": len(disks), "disks": disks, "raid_arrays": arrays,
            "raid": arrays[0]["level"] if arrays else "none"}


def placement(mount):
    try:
        st = os.stat(mount)
    except OSError:
        return {}
    path = os.path.realpath(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}")
    if os.path.exists(path + "/partition"):
        path = os.path.dirname(path)
    dev = os.path.basename(path)
    if not os.path.exists("/sys/block/" + dev):
        return {}
    rota = read(f"/sys/block/{dev}/queue/rotational") == "1"
    kind = "NVMe" if dev.startswith("nvme") else ("HDD" if rota else "SSD")
    return {"disk_type": kind, "physical_disk": dev, "raid": "none"}


def ipc_stats():
    def rows(name):
        try:
            with open("/proc/sysvipc/" + name) as f:
                return [line.split() for line in f.readlines()[1:] if line.strip()]
        except OSError:
            return []
    shm, msg = rows("shm"), rows("msg")
    orphaned = [r for r in shm if r[6] == "0"]
    return {"shm_segments": len(shm), "shm_bytes": sum(int(r[3]) for r in shm),
            "shm_orphaned": len(orphaned), "shm_orphaned_bytes": sum(int(r[3]) for r in orphaned),
            "sem_arrays": len(rows("sem")), "msg_queues": len(msg),
            "msg_bytes": sum(int(r[3]) for r in msg),
            "devshm_bytes": psutil.disk_usage("/dev/shm").used}


def metrics(prev):
    now = time.time()
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    disks = {}
    for part in psutil.disk_partitions(all=False):
        if part.fstype.lower() in IGNORED or ephemeral(part.mountpoint):
            continue
        u = psutil.disk_usage(part.mountpoint)
        disks[part.mountpoint] = {"total": u.total, "used": u.used, "free": u.free,
                                  "percent": u.percent, **placement(part.mountpoint)}
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
        "top_processes": top_processes(),
        "disk_hardware": disk_hardware(),
        "ipc_stats": ipc_stats(),
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


def discovered_services():
    found = []
    try:
        listing = subprocess.run(
            ["systemctl", "list-units", "--type=service", "--state=running",
             "--no-pager", "--no-legend", "--plain"],
            capture_output=True, text=True, timeout=10).stdout
    except OSError:
        listing = ""
    for line in listing.splitlines():
        unit = (line.split() or [""])[0]
        if unit.endswith(".service"):
            found.append({"name": unit[:-len(".service")], "status": "running",
                          "service_type": "systemd"})
    ports = set()
    for conn in psutil.net_connections(kind="inet"):
        port = conn.laddr.port if conn.laddr else 0
        if conn.status != psutil.CONN_LISTEN or not port or port in ports:
            continue
        ports.add(port)
        name = ""
        if conn.pid:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                pass
        item = {"name": f"port-{port}", "status": "running", "service_type": "port",
                "port": port, "bind_address": conn.laddr.ip,
                "process_id": str(conn.pid or ""),
                "display_name": f"{name} (:{port})" if name else f"port-{port}",
                "detected_via": "port-process" if name else "port-unknown",
                "latency_type": "TCP"}
        target = "127.0.0.1" if conn.laddr.ip in ("0.0.0.0", "::", "") else conn.laddr.ip
        started = time.monotonic()
        try:
            socket.create_connection((target, port), timeout=1.5).close()
            item.update(latency_ms=round((time.monotonic() - started) * 1000, 1),
                        latency_success=True)
        except OSError as e:
            item.update(latency_ms=None, latency_success=False, latency_error=str(e)[:200])
        found.append(item)
    return found


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=5)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.unix_path)


def containers(engine):
    conn = UnixHTTPConnection(engine)
    try:
        conn.request("GET", "/containers/json?all=1")
        listed = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    rows = []
    for c in listed:
        ports = ", ".join(
            f"{p['IP']}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}" if p.get("PublicPort")
            else f"{p['PrivatePort']}/{p['Type']}" for p in c.get("Ports") or [])
        rows.append({"container_id": c["Id"][:64], "name": (c.get("Names") or ["/"])[0][1:],
                     "image": c.get("Image", ""), "state": c.get("State", ""),
                     "status_text": c.get("Status", "")[:200], "ports": ports[:300],
                     "runtime": "docker"})
    return rows


def main():
    url, token, cafile, interval = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    checks = list(zip(sys.argv[5::2], sys.argv[6::2]))
    engine = next((a for k, a in checks if k == "discover"), None)
    discover = engine is not None
    engine = None if engine == "-" else engine
    checks = [(k, a) for k, a in checks if k != "discover"]
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
        if checks or discover:
            services = [check(k, a) for k, a in checks]
            if discover:
                services += discovered_services()
            posts.append(("/api/agent/services/", {"agent_version": "psutil-pusher",
                                                   "services": services}))
        if engine:
            posts.append(("/api/agent/containers/", {"agent_version": "psutil-pusher",
                                                     "containers": containers(engine)}))
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
