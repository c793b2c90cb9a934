"""Several instances on PostgreSQL (issue 9): ingest and send throughput of real `escalate run`
daemons with 1 and 3 instances on one PostgreSQL database, and 1 instance on SQLite beside them,
from one run.

    .venv/bin/python bench/multi_bench.py                  # 2,000 mails in, 2,000 notifications out
    .venv/bin/python bench/multi_bench.py --mails 500 --notifications 500
    .venv/bin/python bench/multi_bench.py --rules test     # the suite's rules instead of the shipped rules.yaml

Ingest: the mail (bench/ingest_bench.py's generator: threads, charsets, attachments) is delivered
into three folders of one Dovecot mailbox before the daemons start. One instance polls all three
folders; three instances poll one folder each. (Instances configured alike are safe — the folder
locks give each folder to one of them — but the locks do not balance: whichever instance polls
first may hold every folder. To scale ingest out, give instances different folders or accounts.)
Measured from the first daemon's READY=1 until the
database holds every message.

Send: 2,000 urgent tickets past their first-response target are evaluated in this process (one
escalation each, queued in the outbox) before the daemons start; measured from the first READY=1
until an aiosmtpd sink in its own process has accepted them all. Three instances share the outbox
through leased claims (outbox.claim).

Each figure includes the daemons' polling interval of the measured stage (0.2 s; the other stages
run every 5 s) but not their start before READY=1. The machine is shared: the load average is
printed beside every figure.
"""

from __future__ import annotations

import argparse
import os
import pwd
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "bench"))

from escalate.outbound.templates import Renderer  # noqa: E402
from escalate.rules.loader import load_ruleset  # noqa: E402
from escalate.store import db  # noqa: E402
from escalate.store.models import Message, Outbox, Quarantine  # noqa: E402
from escalate.testing.loopback import Dovecot, Postgres  # noqa: E402
from ingest_bench import START, deliver, generate  # noqa: E402
from outbox_bench import RULE_SETS, T0, RemoteSink, open_escalated_tickets  # noqa: E402

# the rule sets of outbox_bench.py: what is measured is throughput, so the tier groups' hourly ceiling is lifted
FOLDERS = ("INBOX", "Billing", "Sales")
# The measured stage runs every 0.2 s, the others every 5 s: each stage run opens its own database
# connection (service.Stage closes it after the run), which on PostgreSQL costs a backend start and
# a SCRAM login — at 0.2 s for every stage of three instances that overhead would be the figure.
INGEST_FAST = {"ESCALATE_POLL_SECONDS": "0.2", "ESCALATE_TICK_SECONDS": "5", "ESCALATE_SEND_SECONDS": "5"}
SEND_FAST = {"ESCALATE_POLL_SECONDS": "5", "ESCALATE_TICK_SECONDS": "5", "ESCALATE_SEND_SECONDS": "0.2"}
TIMEOUT = 300.0


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Daemons:
    """`count` `escalate run` processes, each with its own environment; knows when the first is READY."""

    def __init__(self, envs: list[dict[str, str]], workdir: Path, label: str, fast: dict[str, str]):
        self.sockets, self.processes = [], []
        for n, env in enumerate(envs):
            path = tempfile.mktemp(prefix="esc-bench-notify-")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind(path)
            self.sockets.append(sock)
            with open(workdir / f"{label}-{n}.log", "ab") as log:
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "escalate", "run"], env={**os.environ, **env, **fast, "NOTIFY_SOCKET": path},
                    stdout=subprocess.DEVNULL, stderr=log))

    def first_ready(self) -> float:
        """perf_counter() when the first daemon said READY=1."""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for sock in self.sockets:
                sock.settimeout(0.01)
                try:
                    if b"READY=1" in sock.recv(4096):
                        return time.perf_counter()
                except socket.timeout:
                    continue
            if any(p.poll() is not None for p in self.processes):
                raise SystemExit("a daemon exited at start; see its log in the work directory")
        raise SystemExit("no daemon became ready within 120 s")

    def stop(self) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for sock in self.sockets:
            path = sock.getsockname()
            sock.close()
            os.unlink(path)


def wait_until(done, what: str) -> float:
    deadline = time.monotonic() + TIMEOUT
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not finish within {TIMEOUT:.0f} s")
        time.sleep(0.1)
    return time.perf_counter()


def stored(url: str) -> int:
    db.connect(url)
    try:
        return Message.select().count() + Quarantine.select().count()
    finally:
        db.close()


def bench_ingest(url: str, instances: int, dovecot: Dovecot, count: int, base: dict[str, str], workdir: Path,
                 label: str) -> float:
    db.connect(url)  # the schema, before the daemons start on it
    db.close()
    if instances == 1:
        urls = [dovecot.url().rsplit("/", 1)[0] + "/" + ",".join(FOLDERS)]  # the comma unquoted: a list
    else:
        urls = [dovecot.url(folder=FOLDERS[n % len(FOLDERS)]) for n in range(instances)]
    sink = RemoteSink()  # nothing is due while ingesting (ESCALATE_NOW is before the mail), but a sender needs one
    env = {**base, "ESCALATE_DB_URL": url, "ESCALATE_NOW": START.isoformat(), "ESCALATE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}",
           "ESCALATE_ATTACHMENTS_DIR": str(workdir / f"attachments-{label}")}
    daemons = Daemons([{**env, "ESCALATE_IMAP_URL": u} for u in urls], workdir, f"ingest-{label}", INGEST_FAST)
    try:
        started = daemons.first_ready()
        finished = wait_until(lambda: stored(url) >= count, "ingest")
    finally:
        daemons.stop()
        sink.stop()
    return count / (finished - started)


def queue_notifications(url: str, count: int, rules: Path) -> None:
    """`count` urgent tickets past their first-response target, each with its escalation queued."""
    db.connect(url)
    renderer = Renderer()
    ruleset = load_ruleset(rules, template_names=renderer.names())
    open_escalated_tickets(count, ruleset, renderer, T0 + timedelta(minutes=16), batch=500)
    assert Outbox.select().count() == count
    db.close()


def bench_send(url: str, instances: int, dovecot: Dovecot, count: int, base: dict[str, str], workdir: Path,
               label: str) -> float:
    queue_notifications(url, count, Path(base["ESCALATE_RULES"]))
    sink = RemoteSink()
    env = {**base, "ESCALATE_DB_URL": url, "ESCALATE_NOW": (T0 + timedelta(minutes=16)).isoformat(),
           "ESCALATE_IMAP_URL": dovecot.url(folder="Empty"), "ESCALATE_SMTP_URL": f"smtp://127.0.0.1:{sink.port}"}
    daemons = Daemons([env] * instances, workdir, f"send-{label}", SEND_FAST)
    try:
        started = daemons.first_ready()
        finished = wait_until(lambda: sink.stats()[0] >= count, "sending")
        received = sink.stats()[0]
    finally:
        daemons.stop()
        sink.stop()
    if received != count:
        print(f"  note: the sink received {received} mails for {count} notifications")
    return count / (finished - started)


def mailbox(workdir: Path, count: int) -> Dovecot:
    dovecot = Dovecot(workdir / "dovecot")
    dovecot.start()
    home = dovecot.mail_dir / "support"
    home.mkdir(parents=True, exist_ok=True)
    maildir = home / "Maildir"
    mails = list(generate(count))
    for n, folder in enumerate(FOLDERS + ("Empty",)):
        # Maildir++: INBOX is the Maildir itself, other folders are .Name inside it
        path = maildir if folder == "INBOX" else maildir / f".{folder}"
        deliver(path, mails[n::len(FOLDERS)] if folder != "Empty" else [])
    if os.geteuid() == 0:
        mail_user = pwd.getpwnam("mail")
        for path in [home, *home.rglob("*")]:
            os.chown(path, mail_user.pw_uid, mail_user.pw_gid)
    return dovecot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--rules", choices=sorted(RULE_SETS), default="shipped",
                        help="the shipped rules.yaml (default) or the suite's test rules")
    args = parser.parse_args()
    postgres = Postgres()
    postgres.start()
    with tempfile.TemporaryDirectory(prefix="escalate-multi-bench-") as directory:
        workdir = Path(directory)
        os.chmod(workdir, 0o755)
        rules = workdir / "rules.yaml"
        rules.write_text(RULE_SETS[args.rules], encoding="utf-8")
        base = {"ESCALATE_RULES": str(rules), "ESCALATE_SECRET": secrets.token_hex(32)}
        dovecot = mailbox(workdir, args.mails)
        try:
            configurations = [("sqlite", 1), ("postgresql", 1), ("postgresql", 3)]
            print(f"{args.mails} mails in ({len(FOLDERS)} folders), {args.notifications} notifications out; "
                  f"load average before: {load()}", flush=True)
            for kind, instances in configurations:
                label = f"{kind}-{instances}"
                url_in = f"sqlite:///{workdir / (label + '-in.db')}" if kind == "sqlite" else postgres.create_database()
                url_out = f"sqlite:///{workdir / (label + '-out.db')}" if kind == "sqlite" else postgres.create_database()
                ingest_rate = bench_ingest(url_in, instances, dovecot, args.mails, base, workdir, label)
                ingest_load = load()
                send_rate = bench_send(url_out, instances, dovecot, args.notifications, base, workdir, label)
                print(f"{kind:>10} × {instances}: ingest {ingest_rate:6.0f} msgs/s (load {ingest_load}); "
                      f"send {send_rate:6.0f} msgs/s (load {load()})", flush=True)
        finally:
            dovecot.stop()
            postgres.drop_databases()


if __name__ == "__main__":
    main()
