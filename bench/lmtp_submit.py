#!/usr/bin/env python3
"""Helper for bench/lmtp.sh (standard library only): generates N distinct mailing-list
messages and submits them over SMTP.

  lmtp_submit.py --count N --port PORT --to ADDR [--sessions S] [--seed SEED]
                 [--host 127.0.0.1] [--sample FILE] [--lmtp]

Messages: 2-4 KB of plain text each, a unique Message-ID, a subject, sender and Date;
about a third start a thread, the rest reply to a recent message (In-Reply-To,
References, "Re:" subject, quoted lines), as on a discussion list. All of them are built
in memory (fixed seed) before the clock starts.

Submission: S processes, one SMTP connection each (EHLO, then MAIL/RCPT/DATA pipelined
per message, RFC 2920), messages dealt round-robin. --sample writes message 0 as a file.
--lmtp speaks LMTP instead (LHLO; one recipient, so one reply after DATA), to send the
same messages straight to concord's listener without an MTA in between.

Prints `name value unit` lines: gen_messages, gen_bytes_avg, gen_seconds, submit_start
and submit_end (epoch seconds: just before the first connection, after the last reply),
submit_sent, submit_failed. Exits 1 when a message was refused or a session failed.
"""
import argparse
import multiprocessing
import random
import socket
import sys
import time

WORDS = """
access agenda aggregation alignment annex architecture assessment bandwidth baseline
broadband candidate capability certification channel charter clause coexistence comment
compliance consensus contribution convergence coordination correspondence deadline
deployment draft editor energy evaluation framework frequency gap grid harmonization
home identifier implementation interface interoperability joint liaison management
meeting metering migration milestone mobility network operator optical output plenary
power profile protocol question rapporteur recommendation reference requirement review
roadmap security sensor service session smart specification standard study submission
survey terminology testbed timeline topology traffic transport update use-case vendor
version vote workshop working-group
""".split()
TOPICS = [
    "home network", "smart grid", "energy management", "IPv6 transition", "sensor networks",
    "cloud interop", "broadband access", "accessibility", "numbering plan", "QoS metrics",
    "optical transport", "in-vehicle networking", "identity management", "e-health",
]
FIRST = "Alice Bruno Chen Dmitri Elena Farid Grace Hiroshi Ines Jamal Kofi Lena Marco Nadia Omar Priya Quentin Rosa Sven Tomoko".split()
LAST = "Anders Baker Costa Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kim Lopez Moreau Novak Okafor Petrov Rossi Suzuki Tanaka Weber".split()
ORGS = "itu.example etsi.example ieee.example ietf.example iso.example nist.example vendor-a.example operator-b.example".split()
DAYS = "Mon Tue Wed Thu Fri Sat Sun".split()
MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def rfc2822(ts):
    t = time.gmtime(ts)
    return "%s, %02d %s %d %02d:%02d:%02d +0000" % (
        DAYS[t.tm_wday], t.tm_mday, MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


def paragraph(rng, words):
    out, line = [], []
    for _ in range(words):
        w = rng.choice(WORDS)
        if sum(len(x) + 1 for x in line) + len(w) > 72:
            out.append(" ".join(line))
            line = []
        line.append(w)
    out.append(" ".join(line) + ".")
    out[0] = out[0][:1].upper() + out[0][1:]
    return out


def generate(count, seed, to_addr):
    """Returns [(envelope sender, dot-stuffed DATA bytes ending in CRLF.CRLF)]."""
    rng = random.Random(seed)
    people = []
    for i in range(60):
        f, l = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        people.append((f + " " + l, "%s.%s@%s" % (f.lower(), l.lower(), ORGS[i % len(ORGS)])))
    start = 1704067200  # 2024-01-01
    msgs, recent = [], []
    for i in range(count):
        name, addr = rng.choice(people)
        mid = "<%d.%d.%08x@%s>" % (seed, i, rng.getrandbits(32), addr.split("@")[1])
        date = rfc2822(start + i * 97 + rng.randrange(60))
        headers = [
            "From: %s <%s>" % (name, addr),
            "To: %s" % to_addr,
            "Date: %s" % date,
            "Message-ID: %s" % mid,
        ]
        body = []
        if recent and rng.random() < 0.67:
            parent = rng.choice(recent[-200:])
            refs = (parent["refs"] + [parent["mid"]])[-10:]
            subject = "Re: " + parent["base"]
            headers += ["Subject: " + subject, "In-Reply-To: " + parent["mid"],
                        "References: " + " ".join(refs)]
            body += ["On %s, %s wrote:" % (parent["date"], parent["name"])]
            body += ["> " + l for l in parent["quote"]]
            body.append("")
            base = parent["base"]
        else:
            refs = []
            base = "[bench] %s: %s %s (item %d)" % (
                rng.choice(TOPICS), rng.choice(WORDS), rng.choice(WORDS), i)
            headers.append("Subject: " + base)
        headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=us-ascii",
                    "Content-Transfer-Encoding: 7bit"]
        target = rng.randrange(2300, 3700)
        own = []
        size = sum(len(h) + 2 for h in headers) + sum(len(l) + 2 for l in body) + 120
        while size < target - 250:
            p = paragraph(rng, rng.randrange(25, 70))
            own += p + [""]
            size += sum(len(l) + 2 for l in p) + 2
        body += own
        body += ["-- ", "%s, %s" % (name, addr.split("@")[1]),
                 ".%d is a line that starts with a dot" % i]
        text = "\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(body) + "\r\n"
        data = text.replace("\r\n.", "\r\n..").encode("ascii") + b".\r\n"
        msgs.append((addr, data))
        recent.append({"mid": mid, "refs": refs, "base": base, "date": date, "name": name,
                       "quote": [l for l in own if l][:4]})
    return msgs


class Session:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=300)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def reply(self):
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("the server closed the connection")
            lines.append(line)
            if line[3:4] != b"-":
                return int(line[:3]), b"".join(lines).decode("ascii", "replace").strip()

    def expect(self, code, what):
        got, text = self.reply()
        if got != code:
            raise RuntimeError("%s: expected %d, got %s" % (what, code, text))
        return text


def worker(k, msgs, host, port, to_addr, lmtp, results):
    sent = 0
    err = ""
    try:
        s = Session(host, port)
        s.expect(220, "greeting")
        s.sock.sendall(b"LHLO bench.example\r\n" if lmtp else b"EHLO bench.example\r\n")
        caps = s.expect(250, "LHLO" if lmtp else "EHLO")
        pipelining = "PIPELINING" in caps.upper()
        rcpt = ("RCPT TO:<%s>\r\n" % to_addr).encode()
        for frm, data in msgs:
            mail = ("MAIL FROM:<%s>\r\n" % frm).encode()
            if pipelining:
                s.sock.sendall(mail + rcpt + b"DATA\r\n")
                replies = [s.reply(), s.reply(), s.reply()]
            else:
                replies = []
                for cmd in (mail, rcpt, b"DATA\r\n"):
                    s.sock.sendall(cmd)
                    replies.append(s.reply())
            if [r[0] for r in replies] != [250, 250, 354]:
                raise RuntimeError("envelope refused: %s" % " | ".join(r[1] for r in replies))
            s.sock.sendall(data)
            s.expect(250, "end of DATA")
            sent += 1
        s.sock.sendall(b"QUIT\r\n")
        try:
            s.reply()
        except (EOFError, OSError):
            pass
    except Exception as e:  # reported; the shell script fails on a short count
        err = "session %d after %d messages: %s" % (k, sent, e)
    results.put((k, sent, err))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--to", required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--sample")
    ap.add_argument("--lmtp", action="store_true")
    a = ap.parse_args()

    g0 = time.time()
    msgs = generate(a.count, a.seed, a.to)
    g1 = time.time()
    if a.sample:
        with open(a.sample, "wb") as f:
            f.write(msgs[0][1])
    print("gen_messages %d count" % len(msgs))
    print("gen_bytes_avg %.0f bytes" % (sum(len(d) for _, d in msgs) / max(1, len(msgs))))
    print("gen_seconds %.2f s" % (g1 - g0))
    sys.stdout.flush()

    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    n = max(1, min(a.sessions, len(msgs)))
    t0 = time.time()
    procs = [ctx.Process(target=worker,
                         args=(k, msgs[k::n], a.host, a.port, a.to, a.lmtp, results))
             for k in range(n)]
    for p in procs:
        p.start()
    got = [results.get() for _ in procs]
    t1 = time.time()
    for p in procs:
        p.join()
    sent = sum(g[1] for g in got)
    errors = [g[2] for g in got if g[2]]
    print("submit_start %.3f s" % t0)
    print("submit_end %.3f s" % t1)
    print("submit_sent %d count" % sent)
    print("submit_failed %d count" % (len(msgs) - sent))
    for e in errors:
        print("lmtp_submit: " + e, file=sys.stderr)
    sys.exit(1 if errors or sent != len(msgs) else 0)


if __name__ == "__main__":
    main()
