"""sshd of our own for the tests and benchmarks that run ansible-playbook over
real SSH (bench/run's fleet section, scripts/ssh-tier): one sshd per 16
addresses 127.0.0.2..N+1 (one inventory host per address), a host key and a
client key made for the run, its own config and port, no PAM.

Every session runs through scripts/sshlab-command, which appends one line per
session to a log: when it ran, for which address and user, and the start of
its command. Counting those lines per task gives the SSH sessions of a task.

Use as a context manager: the sshds, the ControlPersist masters that
ansible-playbook left and every session end with it."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COMMAND = os.path.join(HERE, "sshlab-command")
SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PACKAGES = ("openssh-server", "openssh-sftp-server")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(p) for p in f.read().split()]
    except OSError:
        return []
    return children + [d for c in children for d in descendants(c)]


class Session:
    """One line of the session log."""

    def __init__(self, line):
        t0, t1, self.addr, self.user, *rest = line.rstrip("\n").replace(",", ".").split(" ", 4)
        self.start, self.seconds = float(t0), float(t1) - float(t0)
        self.command = rest[0] if rest else ""


class SshLab:
    """sshds on `n` loopback addresses; `self.addrs`, `self.port`, `self.key`
    (the client's private key, authorised for every user) and `self.log`."""

    def __init__(self, folder, n, on_command=None):
        for tool in (SSHD, SFTP_SERVER):
            if not os.path.exists(tool):
                sys.exit(f"sshlab: {tool} is missing (apt-get install {' '.join(PACKAGES)})")
        self.dir, self.n, self.port = folder, n, free_port()
        self.addrs = [f"127.0.0.{i + 2}" for i in range(n)]
        self.log = os.path.join(folder, "ssh-sessions.log")
        self.key = os.path.join(folder, "id")
        self.sshds = []
        self.on_command = on_command or (lambda argv: None)
        os.makedirs(folder, exist_ok=True)
        # Other users of the lab read the authorized keys and append to the log.
        os.chmod(folder, 0o755)
        for key in ("hostkey", "id"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "xenpci-sshlab",
                            "-f", f"{folder}/{key}"], check=True)
        shutil.copyfile(f"{folder}/id.pub", f"{folder}/authorized_keys")
        os.chmod(f"{folder}/authorized_keys", 0o644)
        open(self.log, "w").close()
        os.chmod(self.log, 0o666)
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation folder

    def ssh_args(self):
        """The ansible_ssh_common_args a client of the lab needs."""
        return ("-o ControlMaster=auto -o ControlPersist=120s -o UserKnownHostsFile=/dev/null "
                "-o StrictHostKeyChecking=no")

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def start(self):
        d = self.dir
        for k in range(0, self.n, 16):  # sshd listens on at most 16 addresses
            conf = f"{d}/sshd_config.{k // 16}"
            with open(conf, "w") as f:
                f.write(f"Port {self.port}\n")
                f.writelines(f"ListenAddress {a}\n" for a in self.addrs[k:k + 16])
                f.write(f"HostKey {d}/hostkey\nPidFile none\nAuthorizedKeysFile {d}/authorized_keys\n"
                        "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
                        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                        "StrictModes no\nUseDNS no\nPrintMotd no\nPrintLastLog no\n"
                        f"Subsystem sftp {SFTP_SERVER}\n"
                        f"ForceCommand {COMMAND} {self.log}\n"
                        "MaxStartups 200:30:400\nMaxSessions 200\nLogLevel ERROR\n")
            subprocess.run([SSHD, "-t", "-f", conf], check=True)
            self.on_command([SSHD, "-D", "-f", conf])
            self.sshds.append(subprocess.Popen([SSHD, "-D", "-f", conf, "-E", f"{d}/sshd.log"],
                                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.time() + 10
        for a in self.addrs:
            while True:
                try:
                    socket.create_connection((a, self.port), timeout=0.5).close()
                    break
                except OSError:
                    if time.time() > deadline or any(s.poll() is not None for s in self.sshds):
                        sys.exit(f"sshlab: sshd does not answer on {a}:{self.port} (see {d}/sshd.log)")
                    time.sleep(0.1)

    def sessions(self, since=0.0):
        """The sessions logged so far (started at or after `since`)."""
        with open(self.log) as f:
            return [s for s in map(Session, f) if s.start >= since]

    def close_masters(self, control_path_dir):
        """Ends the ControlPersist masters whose sockets are in that folder."""
        for sock in glob.glob(f"{control_path_dir}/*"):
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "xenpci-sshlab"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)

    def __exit__(self, *exc):
        """Ends the sshds and what is left of their sessions."""
        self.close_masters(f"{self.dir}/cp")
        pids = [p for s in self.sshds for p in [s.pid] + descendants(s.pid)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for s in self.sshds:
            try:
                s.wait(timeout=10)
            except subprocess.TimeoutExpired:
                s.kill()
                s.wait()
        deadline = time.time() + 10
        for pid in pids:  # the sessions, reaped by init once their sshd is gone
            while os.path.exists(f"/proc/{pid}") and time.time() < deadline:
                time.sleep(0.05)
        self.sshds = []
