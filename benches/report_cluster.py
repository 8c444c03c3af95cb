#!/usr/bin/env python3
"""Section 6 of docs/BENCHMARKS.md: cluster replication over DMQ (scripts/bench step 6).

    report_cluster.py RESULTS_DIR OUT.md   replace (or insert) section 8 of OUT.md
                                           (scripts/bench --only-cluster)

benches/report.py calls section(res) for a full document. Inputs in RESULTS_DIR:
cluster.env (clk_tck, rate, secs), cluster.txt (one line per variant), cluster-dmq.pcap (the
loopback capture of the DMQ ports during the replicated run).
"""
import os
import re
import statistics
import struct
import sys

TITLE = "## 8. Cluster replication over DMQ"


def kv(line):
    return {m.group(1): m.group(2) for m in re.finditer(r"(\w+)=(\S+)", line)}


def udp_datagrams(path):
    """(time s, src port, dst port, payload) of every UDP/IPv4 datagram of a pcap file."""
    data = open(path, "rb").read()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    le = magic in (0xA1B2C3D4, 0xA1B23C4D)
    nano = magic in (0xA1B23C4D, 0x4D3CB2A1)
    e = "<" if le else ">"
    link = struct.unpack(e + "I", data[20:24])[0]
    l2 = {1: 14, 113: 16, 276: 20, 101: 0}.get(link)
    if l2 is None:
        raise SystemExit(f"report_cluster: link type {link} not handled")
    out, at = [], 24
    while at + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[at:at + 16])
        pkt = data[at + 16:at + 16 + incl]
        at += 16 + incl
        ip = pkt[l2:]
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 15) * 4
        sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
        t = sec + frac / (1e9 if nano else 1e6)
        out.append((t, sport, dport, ip[ihl + 8:]))
    return out


def header(payload, name):
    for line in payload.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip()
    return None


def delays(pcap, dmq_a, dmq_b):
    """Milliseconds from each sipsd replication message p1a sent to p1b's 200 answer (sent
    once p1b has applied it)."""
    sent, out = {}, []
    for t, sport, dport, p in udp_datagrams(pcap):
        cid = header(p, b"Call-ID")
        if cid is None:
            continue
        if sport == dmq_a and dport == dmq_b and p.startswith(b"KDMQ sip:sipsd@"):
            sent.setdefault(cid, t)
        elif sport == dmq_b and dport == dmq_a and p.startswith(b"SIP/2.0 200") and cid in sent:
            out.append((t - sent.pop(cid)) * 1000.0)
    return out


def pct(v, p):
    s = sorted(v)
    return s[min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))]


def section(res):
    L = []
    w = L.append
    env_p = os.path.join(res, "cluster.env")
    txt_p = os.path.join(res, "cluster.txt")
    w(TITLE)
    w("")
    if not (os.path.exists(env_p) and os.path.exists(txt_p)):
        w("Not run (the end-to-end steps were skipped).")
        w("")
        return L
    env = kv(open(env_p).read())
    tck = float(env.get("clk_tck", "100"))
    runs = {}
    for line in open(txt_p):
        d = kv(line)
        runs[line.split()[0].replace("cluster-", "")] = d
    w("Two P1 nodes, `cfg-examples/trusted-proxy.cfg` on loopback, each with 4 workers; calls"
      f" (the encrypted bodies of section 5) at a fixed {env.get('rate')} calls/s for"
      f" {env.get('secs')} s through **p1a** → P2 → SIPp callee; **p1b** beside it takes no call."
      " **replicated**: both with `-A WITH_CLUSTER` (dmq module, `enable_dmq`, a cluster key):"
      " p1a sends p1b each key it stores (the INVITE) and each dialog end (the BYE's 200), sealed"
      " (AES-256-GCM, key wrapped under the cluster key), and p1b applies them. **single**: the"
      " same two nodes without `WITH_CLUSTER`. CPU is utime + stime of every process of each"
      " node over the run (from /proc, clock ticks of"
      f" {1000 / tck:.0f} ms), per call placed.")
    w("")
    w("| variant | calls | ok | failed | p1a CPU per call | p1b CPU per call | keys stored on p1b (with the 40 warm-up calls) |")
    w("| --- | --- | --- | --- | --- | --- | --- |")
    per = {}
    for v in ("replicated", "single"):
        d = runs.get(v)
        if not d:
            continue
        calls = max(1, int(d.get("calls", "1")))
        a = int(d.get("p1a_ticks", "0")) * 1000.0 / tck / calls
        b = int(d.get("p1b_ticks", "0")) * 1000.0 / tck / calls
        per[v] = (a, b)
        w(f"| {v} | {d.get('calls')} | {d.get('ok')} | {d.get('failed')} | {a:.3f} ms | {b:.3f} ms"
          f" | {d.get('p1b_applied', '0')} |")
    w("")
    if "replicated" in per and "single" in per:
        (ra, rb), (sa, sb) = per["replicated"], per["single"]
        w(f"Added by replication, per call: **p1a {ra - sa:+.3f} ms** (sealing and sending two"
          f" messages), **p1b {rb - sb:+.3f} ms** (receiving, opening and applying them); both"
          f" nodes together {ra + rb - sa - sb:+.3f} ms on top of {sa + sb:.3f} ms.")
        w("")
    pcap = os.path.join(res, "cluster-dmq.pcap")
    d = runs.get("replicated", {})
    if os.path.exists(pcap) and d.get("dmq_a"):
        ms = delays(pcap, int(d["dmq_a"]), int(d["dmq_b"]))
        if ms:
            w("Replication delay: from the KDMQ request p1a sends (right after the library"
              " stored the key or ended the dialog, in the same worker) to p1b's 200 answer,"
              " which p1b's DMQ worker sends after applying the message to its cache — the"
              " time until the key is available on p1b. From the loopback capture"
              " (`tcpdump -i lo`, µs timestamps) of the replicated run:")
            w("")
            w("| messages | median | p90 | p99 | max |")
            w("| --- | --- | --- | --- | --- |")
            w(f"| {len(ms)} | {statistics.median(ms):.3f} ms | {pct(ms, 90):.3f} ms |"
              f" {pct(ms, 99):.3f} ms | {max(ms):.3f} ms |")
            w("")
    m = {}
    mp = os.path.join(res, "machine.env")
    if os.path.exists(mp):
        for line in open(mp):
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                m[k] = v
    if m:
        w(f"Measured {m.get('date', '?')}, commit {m.get('commit', '?')}, {m.get('cpus', '?')} CPUs"
          f" ({m.get('cpu', '?')}); load average {m.get('load_start', '?')} at the start of the"
          f" `{m.get('command', 'scripts/bench')}` run, {m.get('load_end', '?')} at its end.")
        try:
            busy = float(m.get("load_start", "0").split()[0]) > float(m.get("cpus", "1"))
        except ValueError:
            busy = False
        if busy:
            w("The machine was shared and busy (a load average above its CPU count): other"
              " processes took CPU time from both nodes, which stretches the tail of the delay"
              " (p99, max) far more than its median; rerun on an idle machine for figures to"
              " compare against targets.")
        w("")
    w("Reproduce this section alone: `scripts/bench --only-cluster` (it replaces this section"
      " and leaves the others as they are).")
    w("")
    return L


def replace(out, lines):
    """Puts the section into OUT: over the old one, else before `## Targets`."""
    doc = open(out).read() if os.path.exists(out) else ""
    block = "\n".join(lines) + "\n"
    start = doc.find(TITLE)
    if start >= 0:
        nxt = doc.find("\n## ", start + len(TITLE))
        doc = doc[:start] + block + (doc[nxt + 1:] if nxt >= 0 else "")
    else:
        at = doc.find("## Targets")
        doc = doc[:at] + block + doc[at:] if at >= 0 else doc + "\n" + block
    open(out, "w").write(doc)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    replace(sys.argv[2], section(sys.argv[1]))
