"""vrrplab: a bridge LAN in network namespaces for VRRP tests and benchmarks.

Used by scripts/vrrp-system-tests and bench/failover-bench (Python 3 standard
library only, run as root).  One "switch" namespace holds a bridge (multicast
snooping, STP and forward delay off); every host is a namespace joined to it
by a veth pair whose inside end is called eth0 (so examples/vrrp-director*.toml
work as written) and whose switch end is `v-<host>` (set it down to cut a host
off: the node-death method of ../shared test-lab notes).

Directors run halb or keepalived (`keepalived -n -l -D -P` with its own pid
files).  Everything started is recorded and stopped by PID on exit; namespaces
are deleted.  TEST-NET addresses only.

Also a probe mode, run inside the client namespace:
    python3 vrrplab.py probe HOST PORT OUT.json
connects to HOST:PORT every 10 ms (non-blocking, each attempt abandoned after
0.5 s, before the kernel's 1 s SYN retransmission) until SIGTERM or 60 s, and
writes the start times of the attempts that succeeded.
"""

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.realpath(__file__))
REPO = os.path.dirname(HERE)


class LabError(Exception):
    pass


def log(tool, msg):
    print(f"[{tool} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def find_halb():
    h = os.environ.get("HALB")
    if h:
        return os.path.realpath(h)
    for c in ("target/release/halb", "target/debug/halb"):
        p = os.path.join(REPO, c)
        if os.access(p, os.X_OK):
            return p
    return None


class Inst:
    """One VRRP instance, written as halb TOML or keepalived.conf."""

    def __init__(self, name="VI_1", vrid=51, priority=100, advert=1.0, version=3, vips=("192.0.2.100/24",),
                 preempt=True, track_script=None, halb_extra="", iface="eth0", auth_pass=None, unicast=None):
        self.name, self.vrid, self.priority, self.advert = name, vrid, priority, advert
        self.version, self.vips, self.preempt, self.iface = version, list(vips), preempt, iface
        # track_script: (command argv string, weight) or None
        self.track_script, self.halb_extra, self.auth_pass = track_script, halb_extra, auth_pass
        # unicast: (source address, [peer addresses]) instead of multicast
        self.unicast = unicast


def advert_str(a):
    return f"{round(a * 1000)}ms" if a < 1 else f"{a:g}s"


def keepalived_text(insts, groups=(), fifo=None):
    """keepalived.conf: every instance state BACKUP (priority decides;
    keepalived needs BACKUP for nopreempt), VRRP version per instance."""
    lines = ["global_defs {", "  router_id hvt", "  script_user root", "  enable_script_security",
             "  vrrp_higher_prio_send_advert true"] + ([f"  vrrp_notify_fifo {fifo}"] if fifo else []) + ["}"]
    for i in insts:
        if i.track_script:
            cmd, weight = i.track_script
            lines += [f"vrrp_script chk_{i.name} {{", f'  script "{cmd}"', "  interval 1", "  fall 1",
                      "  rise 1", f"  weight {weight}", "}"]
    for i in insts:
        lines += [f"vrrp_instance {i.name} {{", "  state BACKUP", f"  interface {i.iface}",
                  f"  version {i.version}", f"  virtual_router_id {i.vrid}", f"  priority {i.priority}",
                  f"  advert_int {i.advert:g}"]
        if not i.preempt:
            lines.append("  nopreempt")
        if i.unicast:
            src, peers = i.unicast
            lines += [f"  unicast_src_ip {src}", "  unicast_peer {"] + [f"    {p}" for p in peers] + ["  }"]
        if i.auth_pass:
            lines += ["  authentication {", "    auth_type PASS", f"    auth_pass {i.auth_pass}", "  }"]
        lines.append("  virtual_ipaddress {")
        lines += [f"    {v} dev {i.iface}" for v in i.vips]
        lines.append("  }")
        if i.track_script:
            lines += ["  track_script {", f"    chk_{i.name}", "  }"]
        lines.append("}")
    for name, members in groups:
        lines += [f"vrrp_sync_group {name} {{", "  group {"] + [f"    {m}" for m in members] + ["  }", "}"]
    return "\n".join(lines) + "\n"


def halb_text(insts, socket_path, groups=(), extra=""):
    """halb TOML per the VRRP config contract (/work/wt/VRRP-CONFIG.md)."""
    out = [f'[global]\ncontrol_socket = "{socket_path}"\n']
    for i in insts:
        vip_list = ", ".join(f'"{v}"' for v in i.vips)
        out.append(f"""[[vrrp_instance]]
name = "{i.name}"
interface = "{i.iface}"
virtual_router_id = {i.vrid}
version = {i.version}
priority = {i.priority}
advert_interval = "{advert_str(i.advert)}"
preempt = {"true" if i.preempt else "false"}
virtual_ipaddress = [{vip_list}]
""")
        if i.unicast:
            src, peers = i.unicast
            ps = ", ".join(f'"{p}"' for p in peers)
            out.append(f'unicast_source = "{src}"\nunicast_peers = [{ps}]\n')
        if i.auth_pass:
            out.append(f'auth = {{ type = "pass", password = "{i.auth_pass}" }}\n')
        if i.halb_extra:
            out.append(i.halb_extra + "\n")
        if i.track_script:
            cmd, weight = i.track_script
            out.append(f"""  [[vrrp_instance.track_script]]
  name = "chk_{i.name}"
  command = "{cmd}"
  interval = "1s"
  timeout = "1s"
  rise = 1
  fall = 1
  weight = {weight}
""")
    for name, members in groups:
        ms = ", ".join(f'"{m}"' for m in members)
        out.append(f'[[vrrp_sync_group]]\nname = "{name}"\ninstances = [{ms}]\n')
    out.append(extra)
    return "\n".join(out)


def halb_conf(path, socket_path, *, priority=100, advert="1s", version=3, vips=("192.0.2.100/24",)):
    """A halb config with one instance VI_1 (advert as a halb duration string)."""
    adv = float(advert[:-2]) / 1000 if advert.endswith("ms") else float(advert[:-1])
    with open(path, "w") as f:
        f.write(halb_text([Inst(priority=priority, advert=adv, version=version, vips=vips)], socket_path))


class Lab:
    def __init__(self, prefix, tool, keep_work=False):
        self.prefix = prefix
        self.tool = tool
        self.work = tempfile.mkdtemp(prefix=f"/tmp/{prefix}")
        self.keep_work = keep_work
        self.sw = f"{prefix}sw"
        self.hosts = []
        self.procs = []  # (name, Popen, stop signal, log)
        self.built = False
        self.starts = 0

    # -- commands -----------------------------------------------------------
    def ns(self, host):
        return f"{self.prefix}{host}"

    def sh(self, argv, check=True, timeout=20):
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise LabError(f"{' '.join(argv)}: exit {r.returncode}: {r.stderr.strip()}")
        return r

    def ip(self, host, *args, check=True):
        return self.sh(["ip", "-n", self.ns(host)] + list(args), check=check)

    def nsexec(self, host, argv):
        return ["ip", "netns", "exec", self.ns(host)] + list(argv)

    def run_in(self, host, argv, check=False, timeout=20):
        return self.sh(self.nsexec(host, argv), check=check, timeout=timeout)

    # -- topology -------------------------------------------------------------
    def build(self, hosts):
        """hosts: {name: [addr/prefix, ...]}; each gets eth0 on the bridge."""
        self.cleanup_namespaces()
        self.built = True
        self.sh(["ip", "netns", "add", self.sw])
        self.ip("sw", "link", "set", "lo", "up")
        self.ip("sw", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0",
                "forward_delay", "0")
        self.ip("sw", "link", "set", "br0", "up")
        for name, addrs in hosts.items():
            self.add_host(name, addrs)

    def add_host(self, name, addrs):
        ns = self.ns(name)
        self.sh(["ip", "netns", "add", ns])
        self.hosts.append(name)
        self.ip(name, "link", "set", "lo", "up")
        self.sh(["ip", "link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", f"v-{name}",
                 "netns", self.sw])
        self.ip("sw", "link", "set", f"v-{name}", "master", "br0", "up")
        # IPv6: no DAD delay, so addresses are usable at once
        self.run_in(name, ["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0",
                           "net.ipv6.conf.default.accept_dad=0"])
        for a in addrs:
            extra = ["nodad"] if ":" in a else []
            self.ip(name, "addr", "add", a, "dev", "eth0", *extra)
        self.ip(name, "link", "set", "eth0", "up")

    def link(self, host, up):
        """Switch-side veth of host up or down (down: the host is cut off)."""
        self.ip("sw", "link", "set", f"v-{host}", "up" if up else "down")

    def addrs(self, host, dev=None):
        args = ["-j", "addr", "show"] + (["dev", dev] if dev else [])
        r = self.ip(host, *args, check=False)
        out = set()
        try:
            for link in json.loads(r.stdout or "[]"):
                for a in link.get("addr_info", []):
                    out.add((link["ifname"], a["local"]))
        except (ValueError, KeyError):
            pass
        return out

    def has_addr(self, host, addr, dev="eth0"):
        return any(d == dev and a == addr for d, a in self.addrs(host))

    def neigh(self, host, addr):
        """lladdr of addr in host's neighbour table, or None."""
        r = self.ip(host, "-j", "neigh", "show", addr, check=False)
        try:
            for n in json.loads(r.stdout or "[]"):
                if n.get("dst") == addr and "lladdr" in n:
                    return n["lladdr"]
        except ValueError:
            pass
        return None

    def mac(self, host, dev="eth0"):
        r = self.ip(host, "-j", "link", "show", dev, check=False)
        try:
            return json.loads(r.stdout)[0]["address"]
        except (ValueError, IndexError, KeyError):
            return None

    # -- processes -------------------------------------------------------------
    def spawn(self, name, host, argv, stop_sig=signal.SIGTERM, env=None):
        logpath = os.path.join(self.work, f"{name}.log")
        full = self.nsexec(host, argv) if host else list(argv)
        with open(logpath, "ab") as f:
            p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                                 start_new_session=True, env=env)
        self.procs.append((name, p, stop_sig, logpath))
        return p

    def logtail(self, name, n=15):
        path = os.path.join(self.work, f"{name}.log")
        try:
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join("    " + line for line in lines[-n:]) or "    (empty)"
        except OSError as e:
            return f"    (no log: {e})"

    def stop(self, p, sig=signal.SIGTERM, timeout=5.0):
        """Signal one process we started, wait for it; SIGKILL its group after timeout."""
        if p.poll() is None:
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                p.wait(timeout=5)
        self.procs = [t for t in self.procs if t[1] is not p]
        return p.returncode

    def stop_all(self):
        for _, p, sig, _ in reversed(self.procs):
            if p.poll() is None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for _, p, _, _ in reversed(self.procs):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = []

    def cleanup_namespaces(self):
        for h in self.hosts:
            subprocess.run(["ip", "netns", "del", self.ns(h)], stderr=subprocess.DEVNULL)
        if self.built:
            subprocess.run(["ip", "netns", "del", self.sw], stderr=subprocess.DEVNULL)
        self.hosts = []
        self.built = False

    def teardown(self):
        """Processes, then namespaces; the work dir stays for the next build."""
        self.stop_all()
        self.cleanup_namespaces()

    def close(self):
        self.teardown()
        if not self.keep_work:
            shutil.rmtree(self.work, ignore_errors=True)

    # -- directors ---------------------------------------------------------------
    def keepalived(self, host, priority=100, advert=1.0, version=3, insts=None, groups=()):
        """Start keepalived (VRRP only) in host.  Its notify FIFO (ordered,
        unlike notify scripts, which run concurrently) is read by a small
        process that keeps each instance's state in <work>/<host>.kstate/<name>."""
        conf = os.path.join(self.work, f"{host}-keepalived.conf")
        fifo = os.path.join(self.work, f"{host}-notify.fifo")
        state = os.path.join(self.work, f"{host}.kstate")
        shutil.rmtree(state, ignore_errors=True)
        os.makedirs(state)
        if not os.path.exists(fifo):
            os.mkfifo(fifo)
        self.spawn(f"{host}-fiforeader", None, [sys.executable, os.path.join(HERE, "vrrplab.py"), "fiforeader",
                                                fifo, state])
        insts = insts or [Inst(priority=priority, advert=advert, version=version)]
        with open(conf, "w") as f:
            f.write(keepalived_text(insts, groups, fifo=fifo))
        # fresh pid files each start: a stale one naming a reused pid makes
        # keepalived say "already running" and exit
        self.starts += 1
        p = self.spawn(f"{host}-keepalived", host,
                       ["keepalived", "-n", "-l", "-D", "-P", "-f", conf,
                        "-p", os.path.join(self.work, f"{host}-{self.starts}-k.pid"),
                        "-r", os.path.join(self.work, f"{host}-{self.starts}-kv.pid")])
        return Director(self, host, "keepalived", p, state_file=state)

    def halb_insts(self, halb_bin, host, insts, groups=(), extra="", env=None):
        conf = os.path.join(self.work, f"{host}-halb.toml")
        sock = os.path.join(self.work, f"{host}.sock")
        with open(conf, "w") as f:
            f.write(halb_text(insts, sock, groups, extra))
        return self.halb(halb_bin, host, conf, sock, env=env)

    def halb(self, halb_bin, host, conf_path, socket_path, env=None):
        p = self.spawn(f"{host}-halb", host, [halb_bin, "run", "--config", conf_path, "--socket", socket_path],
                       env=env)
        return Director(self, host, "halb", p, socket=socket_path, halb_bin=halb_bin)


class Director:
    def __init__(self, lab, host, kind, proc, state_file=None, socket=None, halb_bin=None):
        self.lab, self.host, self.kind, self.proc = lab, host, kind, proc
        self.state_file, self.socket, self.halb_bin = state_file, socket, halb_bin

    @property
    def logname(self):
        return f"{self.host}-{self.kind}"

    def alive(self):
        return self.proc.poll() is None

    def kill9(self):
        """SIGKILL to the director's process group (keepalived forks a VRRP
        child that would otherwise release the VIP cleanly)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def halb_json(self):
        r = self.lab.run_in(self.host, [self.halb_bin, "list", "--json", "--socket", self.socket], timeout=5)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)
        except ValueError:
            return None

    def ctl(self, *args):
        """halb: `halb ARGS --socket SOCKET` in the director's namespace."""
        return self.lab.run_in(self.host, [self.halb_bin, *args, "--socket", self.socket], timeout=10)

    def instances(self):
        """halb: the `vrrp` array of `halb list --json` (list of dicts)."""
        j = self.halb_json()
        if not isinstance(j, dict):
            return []
        v = j.get("vrrp")
        return v if isinstance(v, list) else []

    def state(self, instance="VI_1"):
        """'MASTER', 'BACKUP', 'FAULT', 'INIT', 'STOP' or None (unknown)."""
        if not self.alive():
            return None
        if self.kind == "keepalived":
            try:
                with open(os.path.join(self.state_file, instance)) as f:
                    return f.read().strip().upper() or None
            except OSError:
                return None
        for inst in self.instances():
            if inst.get("name") == instance:
                s = str(inst.get("state", "")).upper()
                return {"INITIALIZE": "INIT"}.get(s, s) or None
        return None

    def counters(self, instance="VI_1"):
        for inst in self.instances():
            if inst.get("name") == instance:
                return inst
        return {}


def wait_for(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return v
        time.sleep(step)


# ------------------------------------------------------------------------------
# probe mode (runs inside the client namespace)
# ------------------------------------------------------------------------------


def mark_ready(out):
    if not os.path.exists(out + ".ready"):
        open(out + ".ready", "w").close()


def probe_main(host, port, out, period=0.01, abandon=0.5, limit=60.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    sel = selectors.DefaultSelector()
    ok, attempts = [], 0
    t0 = time.monotonic()
    nxt = t0
    pending = {}
    while not stop[0] and time.monotonic() - t0 < limit:
        now = time.monotonic()
        if now >= nxt:
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            err = s.connect_ex((host, port))
            attempts += 1
            start = time.time()
            if err == 0:
                ok.append(start)
                s.close()
                mark_ready(out)
            else:
                pending[s] = start
                sel.register(s, selectors.EVENT_WRITE)
            nxt += period
            if nxt < now:
                nxt = now + period
        for key, _ in sel.select(timeout=max(0.0, min(nxt - time.monotonic(), period))):
            s = key.fileobj
            start = pending.pop(s)
            sel.unregister(s)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                ok.append(start)
                mark_ready(out)
            s.close()
        wall = time.time()
        for s, start in list(pending.items()):
            if wall - start > abandon:
                sel.unregister(s)
                pending.pop(s)
                s.close()
    with open(out, "w") as f:
        json.dump({"ok": sorted(ok), "attempts": attempts}, f)


def max_gap(times, lo=None, hi=None):
    """Largest interval between consecutive times (restricted to [lo, hi])."""
    ts = sorted(t for t in times if (lo is None or t >= lo) and (hi is None or t <= hi))
    if len(ts) < 2:
        return None
    return max(b - a for a, b in zip(ts, ts[1:]))


PING_TS = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from")


def ping_times(text):
    return [float(m.group(1)) for m in map(PING_TS.match, text.splitlines()) if m]


class Outage:
    """A TCP probe and `ping -i 0.01` from the client to addr, started
    together, stopped together."""

    def __init__(self, lab, client, addr, port):
        self.lab = lab
        self.out = os.path.join(lab.work, f"probe-{time.monotonic_ns()}.json")
        self.ping_log = f"ping-{time.monotonic_ns()}"
        self.probe = lab.spawn("probe", client, [sys.executable, os.path.join(HERE, "vrrplab.py"), "probe",
                                                 addr, str(port), self.out])
        self.ping = lab.spawn(self.ping_log, client, ["ping", "-n", "-D", "-i", "0.01", "-W", "1", addr],
                              stop_sig=signal.SIGINT)

    def wait_ready(self, timeout=10):
        """True once the probe has had a connect and ping a reply."""
        plog = os.path.join(self.lab.work, f"{self.ping_log}.log")

        def ready():
            try:
                with open(plog, errors="replace") as f:
                    pinged = bool(ping_times(f.read()))
            except OSError:
                pinged = False
            return pinged and os.path.exists(self.out + ".ready")
        return wait_for(ready, timeout)

    def finish(self, t_event=None):
        """Returns (tcp_gap, ping_gap, detail) in seconds (None if no data):
        the longest gap from the last answer before t_event (wall clock) on."""
        self.lab.stop(self.probe)
        self.lab.stop(self.ping, signal.SIGINT)
        try:
            with open(self.out) as f:
                ok = json.load(f)["ok"]
        except (OSError, ValueError, KeyError):
            ok = []
        with open(os.path.join(self.lab.work, f"{self.ping_log}.log"), errors="replace") as f:
            pings = ping_times(f.read())
        detail = f"{len(ok)} connects, {len(pings)} ping replies"
        if t_event is not None:
            before = [max_gap(ok, hi=t_event), max_gap(pings, hi=t_event)]
            if any(g is not None and g > 0.1 for g in before):
                detail += f", gaps before the event {before}"
            lo_t = max([t for t in ok if t <= t_event], default=None)
            lo_p = max([t for t in pings if t <= t_event], default=None)
            if lo_t is None or lo_p is None:
                return None, None, detail + ", no answer before the event"
            return max_gap(ok, lo=lo_t), max_gap(pings, lo=lo_p), detail
        return max_gap(ok), max_gap(pings), detail


def fiforeader_main(fifo, statedir):
    """Lines like `INSTANCE "VI_1" MASTER 150` -> statedir/VI_1 = MASTER."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        with open(fifo) as f:
            for line in f:
                parts = line.split()
                # also events like MASTER_RX_LOWER_PRI: not states
                if len(parts) >= 3 and parts[0] == "INSTANCE" and parts[2] in ("MASTER", "BACKUP", "FAULT",
                                                                                "STOP"):
                    name = parts[1].strip('"')
                    tmp = os.path.join(statedir, f".{name}.tmp")
                    with open(tmp, "w") as o:
                        o.write(parts[2] + "\n")
                    os.replace(tmp, os.path.join(statedir, name))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "fiforeader":
        fiforeader_main(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "probe":
        probe_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        print(__doc__)
        sys.exit(2)
