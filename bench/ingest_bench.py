"""Ingest benchmark: escalate's end-to-end rate (one `run --once` cycle: ingest, evaluate, send)
and peak RSS against real Dovecot, beside the library limit on the same mail (imapclient fetch +
stdlib parse + SQLite insert, without escalate's logic), from one run.

    .venv/bin/python bench/ingest_bench.py                 # 2,000 and 20,000 mails
    .venv/bin/python bench/ingest_bench.py --sizes 2000    # just one size
    .venv/bin/python bench/ingest_bench.py --corpus storm --sizes 1000,10000 --rules shipped,no-incidents
    .venv/bin/python bench/ingest_bench.py --kills 50 --sizes 2000   # SIGKILLs while ingesting: nothing lost

Rules: each size is measured with every rule set of `--rules`, one row each: `shipped` is the
rules.yaml users start from (with `incidents:` and the multi-customer-incident rule), `test` the
suite's rules (tests/conftest.py), `no-incidents` the shipped rules without incidents (what
incidents cost). The default is `shipped,test`.

Corpus: `support` (default) is everyday mail; `storm` is an outage hour: most mails open a new
conversation, each from another customer, about one of ten outages, in short mails.

The mail is generated deterministically (seeded): support conversations, ~35% replies threaded by
In-Reply-To or the [T-n] tag, non-ASCII names, subjects and bodies in several charsets, PDF/PNG/log
attachments, sizes 1–200 KB (log-uniform). It is delivered into the Maildir that Dovecot serves
(the way an MDA delivers), so the setup does not dominate the run. Each measurement runs in its
own process, which reports its own peak RSS (ru_maxrss) and
its own CPU time (process_time: what the run costs, whatever else the machine is doing; the Dovecot
side is left out of both).

Targets, with the shipped rules: ≥ 400 msgs/s end to end on 2,000 mails on the 2-core reference
machine, ≥ 50% of the library limit, peak RSS ≤ 300 MiB at 20,000; on the storm corpus, CPU per
mail at 10,000 ≤ 1.5× that at 1,000, and ingest CPU per mail with incidents ≤ 1.3× without
(`--rules shipped,no-incidents`; `--repeat 3` keeps the run with the least CPU of three, as the
machine's other load inflates CPU time too).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import math
import os
import pwd
import random
import resource
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Iterable, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

TEST_RULES = (REPO / "tests" / "conftest.py").read_text().split('TEST_RULES = """\\\n', 1)[1].split('"""', 1)[0]
SHIPPED_RULES = (REPO / "rules.yaml").read_text(encoding="utf-8")


def without_incidents(rules: str) -> str:
    """The shipped rules with no `incidents:` section and no rule that needs one (each a block that
    ends at a blank line)."""
    kept, skipping = [], False
    for line in rules.splitlines(keepends=True):
        if line.startswith(("incidents:", "  - name: multi-customer-incident")):
            skipping = True
        elif not line.strip():
            skipping = False
        if not skipping:
            kept.append(line)
    return "".join(kept)


RULE_SETS = {"shipped": SHIPPED_RULES, "test": TEST_RULES, "no-incidents": without_incidents(SHIPPED_RULES)}

NAMES = ["José García", "Zoë Brontë", "Łukasz Wróbel", "Søren Kierkegård", "山田太郎", "Иван Петров", "Ana María",
         "Françoise Dupont", "Çağla Yılmaz", "Nguyễn Văn An", "Alice Smith", "Bob Jones"]
TOPICS = ["Checkout fails with error 502", "Rechnung fehlt für Oktober", "Impossible de télécharger la facture",
          "ログインできません", "Не работает экспорт", "Password reset never arrives", "Sync stopped after update",
          "Invoice shows wrong VAT", "API rate limit too low", "Datenbank-Timeout bei großen Berichten"]
CHARSETS = ["utf-8", "utf-8", "utf-8", "iso-8859-1", "windows-1252", "koi8-r", "iso-2022-jp"]
START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)


def _body(rng: random.Random, topic: str) -> str:
    words = ("the order page hangs after payment and the customer sees a blank screen "
             "bitte prüfen Sie das dringend, merci beaucoup, спасибо, よろしくお願いします").split()
    lines = [f"Hello support, about: {topic}."]
    lines += [" ".join(rng.choice(words) for _ in range(rng.randint(6, 14))) for _ in range(rng.randint(2, 12))]
    return "\n".join(lines) + "\n\nBest regards\n"


def generate(count: int, seed: int = 1) -> Iterator[bytes]:
    """`count` support mails, ~35% of them replies to an earlier one; sizes 1–200 KB, log-uniform.
    Yielded one at a time: the bench process must stay small (see peak_rss_mib)."""
    rng = random.Random(seed)
    threads: list[tuple[str, str, str, int]] = []  # (message-id, sender, subject, ticket number)
    for n in range(count):
        target = int(math.exp(rng.uniform(math.log(1_000), math.log(200_000))))
        name = rng.choice(NAMES)
        msg = EmailMessage()
        when = START + timedelta(seconds=n * 7)
        if threads and rng.random() < 0.35:
            parent_id, sender, subject, number = rng.choice(threads)
            style = rng.random()
            msg["Subject"] = (f"Re: [T-{number}] {subject}" if style < 0.5 else f"AW: {subject}")
            msg["In-Reply-To"] = f"<{parent_id}>"
            msg["References"] = f"<{parent_id}>"
        else:
            sender = f"customer{n}@example-{n % 97}.test"
            subject = f"{rng.choice(TOPICS)} #{n}"
            msg["Subject"] = subject
            number = len(threads) + 1
        message_id = f"bench.{seed}.{n}@client.test"
        msg["From"] = f"{name} <{sender}>"
        msg["To"] = "support@example.com"
        msg["Date"] = format_datetime(when)
        msg["Message-ID"] = f"<{message_id}>"
        body = _body(rng, subject)
        charset = rng.choice(CHARSETS)
        try:
            body.encode(charset)
        except UnicodeEncodeError:
            charset = "utf-8"
        msg.set_content(body, charset=charset)
        remaining = target - len(body)
        if remaining > 2_000:
            kind = rng.choice([("application", "pdf", "report.pdf"), ("image", "png", "screenshot.png"),
                               ("text", "plain", "server.log")])
            payload = rng.randbytes(int(remaining * 0.74)) if kind[0] != "text" else \
                ("ERROR timeout after 30s while calling /api/orders\n" * (remaining // 50)).encode()
            if kind[0] == "text":
                msg.add_attachment(payload.decode(), subtype="plain", filename=kind[2])
            else:
                msg.add_attachment(payload, maintype=kind[0], subtype=kind[1], filename=kind[2])
        yield msg.as_bytes()
        if "In-Reply-To" not in msg:
            threads.append((message_id, sender, subject, number))


OUTAGES = ["Checkout fails with error 502", "Cannot log in to the dashboard", "Password reset mail never arrives",
           "API returns 503 service unavailable", "Invoices page stays blank", "Mobile app crashes on start",
           "File upload stuck at 99 percent", "Search returns no results", "Webhooks are not delivered",
           "Report export times out"]
STORM_ADDITIONS = ["", "", "URGENT: ", "Still: ", "since this morning", "for all our users", "again today"]


def generate_storm(count: int, seed: int = 2) -> Iterator[bytes]:
    """An outage hour: ~85% of the mails open a new conversation, each from another customer, about
    one of ten outages (in their own words: a word more or less); the rest are replies. Short mails
    (1–8 KB), dated across the hour."""
    rng = random.Random(seed)
    threads: list[tuple[str, str, str]] = []  # (message-id, sender, subject)
    for n in range(count):
        msg = EmailMessage()
        if threads and rng.random() < 0.15:
            parent_id, sender, subject = rng.choice(threads)
            msg["Subject"] = f"Re: {subject}"
            msg["In-Reply-To"] = f"<{parent_id}>"
        else:
            sender = f"customer{n}@company-{n % 500}.test"
            addition = rng.choice(STORM_ADDITIONS)
            outage = rng.choice(OUTAGES)
            subject = (addition + outage) if addition.endswith(": ") else f"{outage} {addition}".strip()
            msg["Subject"] = subject
        message_id = f"storm.{seed}.{n}@client.test"
        msg["From"] = f"{rng.choice(NAMES)} <{sender}>"
        msg["To"] = "support@example.com"
        msg["Date"] = format_datetime(START + timedelta(seconds=n * 3600 / count))
        msg["Message-ID"] = f"<{message_id}>"
        body = _body(rng, subject)
        msg.set_content(body + "x" * rng.randint(0, 7_000), charset="utf-8")
        yield msg.as_bytes()
        if "In-Reply-To" not in msg:
            threads.append((message_id, sender, subject))


CORPORA = {"support": generate, "storm": generate_storm}


def deliver(maildir: Path, mails: Iterable[bytes]) -> int:
    """Write the mails into Dovecot's Maildir/new, owned like Dovecot's own files; returns bytes."""
    new = maildir / "new"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    owner = maildir.parent.stat()
    total = 0
    for n, raw in enumerate(mails):
        path = new / f"{1700000000 + n}.M{n}P1.bench"
        path.write_bytes(raw)
        os.chown(path, owner.st_uid, owner.st_gid)
        total += len(raw)
    for sub in ("", "new", "cur", "tmp"):
        os.chown(maildir / sub, owner.st_uid, owner.st_gid)
    return total


def peak_rss_mib() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss across execve, so
    a child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the two measured runs, each in its own process -------------------------------------------------

def run_escalate(env: dict[str, str]) -> dict:
    """What `escalate run --once` does after start-up (service.run_once), each stage timed."""
    os.environ.update(env)
    from escalate.config import load_settings
    from escalate.ops.service import ingest, open_app, send, tick

    app = open_app(load_settings())
    now = START + timedelta(days=1)
    stages = {}
    profile = None
    if os.environ.get("BENCH_PROFILE"):  # BENCH_PROFILE=/tmp/p: cProfile stats per stage, cumulative
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    started, cpu = time.perf_counter(), time.process_time()
    for name, stage in (("ingest", ingest), ("tick", tick), ("send", send)):
        stage_started, stage_cpu = time.perf_counter(), time.process_time()
        result = stage(app, now)
        stages[name] = (time.perf_counter() - stage_started, time.process_time() - stage_cpu)
        if name == "ingest":
            outcomes = dict(result.outcomes)
        elif name == "tick":
            outcomes["notifications"] = result.notifications
        if profile is not None:
            profile.dump_stats(f"{os.environ['BENCH_PROFILE']}.{name}")
            profile.enable()
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "cpu_seconds": time.process_time() - cpu, "stages": stages,
            "messages": sum(v for k, v in outcomes.items() if k != "notifications"), "outcomes": outcomes,
            "rss_mib": peak_rss_mib()}


def run_limit(env: dict[str, str]) -> dict:
    """imapclient FETCH in batches of 100 + stdlib parse (compat32, text part decoded) + SQLite
    insert in one transaction per batch: the floor any ingest on these libraries pays."""
    from imapclient import IMAPClient

    host, port = env["BENCH_HOST"], int(env["BENCH_PORT"])
    connection = sqlite3.connect(env["BENCH_LIMIT_DB"])
    connection.execute("PRAGMA journal_mode=wal")
    connection.execute("PRAGMA synchronous=full")
    connection.execute("CREATE TABLE IF NOT EXISTS m (uid INTEGER, message_id TEXT UNIQUE, sender TEXT, subject TEXT, body TEXT, raw BLOB)")
    started, cpu = time.perf_counter(), time.process_time()
    count = 0
    with IMAPClient(host, port, ssl=False, timeout=60) as client:
        # the same switch escalate throws (mailbox.py): imapclient sets imaplib's debug level to 5,
        # which formats every fetched mail twice; the limit is what these libraries do at their best
        client._imap.debug = 0
        client.login("support", "support-pw")
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        for start in range(0, len(uids), 100):
            data = client.fetch(uids[start:start + 100], ["BODY.PEEK[]"])
            rows = []
            for uid, item in sorted(data.items()):
                raw = item[b"BODY[]"]
                message = email.message_from_bytes(raw, policy=email.policy.compat32)
                body = ""
                for part in message.walk():
                    if part.get_content_type() == "text/plain":
                        payload = part.get_payload(decode=True) or b""
                        body = payload.decode(part.get_content_charset() or "utf-8", "replace")
                        break
                rows.append((uid, message.get("Message-ID"), message.get("From"), message.get("Subject"), body, raw))
            with connection:
                connection.executemany("INSERT OR IGNORE INTO m VALUES (?, ?, ?, ?, ?, ?)", rows)
            count += len(rows)
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "cpu_seconds": time.process_time() - cpu, "messages": count, "rss_mib": peak_rss_mib()}


def child(mode: str, env: dict[str, str]) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", mode], env={**os.environ, **env},
                            capture_output=True, text=True, check=False)
    if output.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def bench_size(count: int, workdir: Path, kills: int, rule_sets: list[str], corpus: str, repeat: int = 1) -> None:
    from escalate.testing.loopback import Dovecot, SmtpSink

    with Dovecot(workdir / f"dovecot-{count}") as dovecot, SmtpSink() as sink:  # nothing leaves loopback
        home = dovecot.mail_dir / "support"
        home.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            mail_user = pwd.getpwnam("mail")
            os.chown(home, mail_user.pw_uid, mail_user.pw_gid)
        total_bytes = deliver(home / "Maildir", CORPORA[corpus](count))
        base = {"ESCALATE_IMAP_URL": dovecot.url(), "ESCALATE_SMTP_URL": sink.url,
                "ESCALATE_SECRET": secrets.token_hex(32),
                "BENCH_HOST": dovecot.host, "BENCH_PORT": str(dovecot.port), "BENCH_LIMIT_DB": str(workdir / f"limit-{count}.db")}
        child("limit", base)  # warm Dovecot's index and the page cache once, for every run alike
        (workdir / f"limit-{count}.db").unlink()
        limit = child("limit", base)
        limit_rate = limit["messages"] / limit["seconds"]
        print(f"{count:>6} {corpus} mails, {total_bytes / 2**20:.0f} MiB; library limit {limit_rate:7.0f} msgs/s "
              f"({limit['seconds']:.1f} s, CPU {limit['cpu_seconds']:.1f} s, "
              f"{1000 * limit['cpu_seconds'] / limit['messages']:.2f} ms/mail, peak RSS {limit['rss_mib']:.0f} MiB)",
              flush=True)
        for name in rule_sets:
            rules = workdir / f"rules-{name}.yaml"
            rules.write_text(RULE_SETS[name], encoding="utf-8")

            def fresh(n: int, rules: Path = rules, name: str = name) -> dict[str, str]:  # a database and store per run
                env = {**base, "ESCALATE_RULES": str(rules),
                       "ESCALATE_DB_URL": f"sqlite:///{workdir}/escalate-{count}-{name}-{n}.db",
                       "ESCALATE_ATTACHMENTS_DIR": str(workdir / f"attachments-{count}-{name}-{n}")}
                # created as an admin creates it (`run` creates no database), outside the measured run
                subprocess.run([sys.executable, "-m", "escalate", "db", "migrate"], env={**os.environ, **env},
                               check=True, capture_output=True)
                return env
            if kills:
                print(kill_run(fresh(0), kills, count, corpus))
                continue
            # the run with the least CPU of --repeat (this machine's other load inflates CPU time too)
            ours = min((child("escalate", fresh(n)) for n in range(repeat)), key=lambda run: run["cpu_seconds"])
            rate = ours["messages"] / ours["seconds"]
            stages = ", ".join(f"{stage} {wall:.1f} s wall / {cpu:.1f} s CPU" for stage, (wall, cpu) in ours["stages"].items())
            print(f"  {name + ' rules':<20} run --once {rate:7.0f} msgs/s ({ours['seconds']:.1f} s wall, "
                  f"{ours['cpu_seconds']:.1f} s CPU = {1000 * ours['cpu_seconds'] / ours['messages']:.2f} ms/mail; "
                  f"{stages}); escalate/limit {100 * rate / limit_rate:.0f}%; peak RSS {ours['rss_mib']:.0f} MiB; "
                  f"{ours['outcomes']}", flush=True)


def kill_run(env: dict[str, str], kills: int, count: int, corpus: str) -> str:
    """Kill -9 during ingest, in full: SIGKILL `escalate run --once` at uniform random times until it has been killed
    `kills` times, then finish; check nothing was lost or stored twice."""
    rng = random.Random(11)
    done = 0
    full = {**os.environ, **env, "ESCALATE_PROCESSED": "flag"}
    # kill times uniform over 0.3–2 s of a run (≈ 1 s of it is start-up): each restart gets a
    # little further, so the kills land all through the ingest; stop once a run finishes on its own
    while done < kills:
        process = subprocess.Popen([sys.executable, "-m", "escalate", "run", "--once"], env=full,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.3, 2.0))
        if process.poll() is not None:
            break  # the backlog is drained: later kills would not land in an ingest
        process.kill()
        process.wait()
        done += 1
    kills = done
    subprocess.run([sys.executable, "-m", "escalate", "run", "--once"], env=full, check=True, capture_output=True)
    connection = sqlite3.connect(env["ESCALATE_DB_URL"].removeprefix("sqlite:///"))
    stored = connection.execute("SELECT count(*), count(DISTINCT message_id) FROM message").fetchone()
    tickets = connection.execute("SELECT count(*) FROM ticket").fetchone()[0]
    integrity = connection.execute("PRAGMA integrity_check").fetchone()[0]
    threads = sum(1 for raw in CORPORA[corpus](count) if b"\nIn-Reply-To:" not in raw.split(b"\n\n", 1)[0])
    return (f"{kills} SIGKILLs during {count} mails: stored {stored[0]} messages, {stored[1]} distinct "
            f"(expected {count}); {tickets} tickets (expected {threads}); integrity {integrity}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2000,20000")
    parser.add_argument("--kills", type=int, default=0)
    parser.add_argument("--rules", default="shipped,test", help=f"rule sets, one row each: {', '.join(RULE_SETS)}")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default="support")
    parser.add_argument("--repeat", type=int, default=1, help="runs per rule set; the one with the least CPU is shown")
    parser.add_argument("--child", choices=["escalate", "limit"])
    args = parser.parse_args()
    if args.child:
        result = run_escalate(dict(os.environ)) if args.child == "escalate" else run_limit(dict(os.environ))
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(prefix="escalate-bench-") as directory:
        workdir = Path(directory)
        os.chmod(workdir, 0o755)
        for size in (int(s) for s in args.sizes.split(",")):
            bench_size(size, workdir, args.kills, args.rules.split(","), args.corpus, args.repeat)


if __name__ == "__main__":
    main()
