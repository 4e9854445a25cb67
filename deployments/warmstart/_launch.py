"""The flow-run command of the work pool: start this flow run in a warm process, or the usual way.

Run by the Prefect worker in place of `python -m prefect.engine` (`tiktok-pipeline setup` writes it
into the pool's base job template), as `python -S .../_launch.py`. Standard library only, and no
`site`: it starts in milliseconds, where a fresh engine process spends 1.5-2.5 s of CPU importing
Prefect and the pipeline before the run begins.

When the worker was started by `tiktok-pipeline worker` its environment names the socket of a
preloaded process (deployments.warmstart._server). This process hands it its environment, working
directory and standard streams, the preloaded process forks a child that runs the flow run (the
same engine, `prefect.engine` as `__main__`), and this process stays as the child's stand-in for
the worker: signals sent to it are passed on to the child's process group, and it ends as the child
ended (the same exit code, or killed by the same signal). If it is killed outright (SIGKILL, a lost
worker), the preloaded process sees its connection close and kills the child's group, as if the
worker had killed the child itself.

Without the variable, without an answer, or when the preloaded code is out of date, it becomes
`python -m prefect.engine` (exec: same pid, same streams), which is what the worker runs by default.
"""

import array
import json
import os
import signal
import socket
import sys

#: Set by `tiktok-pipeline worker` for the worker it starts (an internal variable, hence `__`).
SOCKET_VARIABLE = "TIKTOK_PIPELINE__WARM_START_SOCKET"
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def _cold(reason):
    if reason:
        print(f"warm start unavailable ({reason}); starting the flow run process the usual way",
              file=sys.stderr, flush=True)
    python = sys.executable
    os.execv(python, [python, "-m", "prefect.engine", *sys.argv[1:]])


def _read_line(connection, pending):
    while b"\n" not in pending:
        chunk = connection.recv(4096)
        if not chunk:
            return None, pending
        pending += chunk
    line, _, rest = pending.partition(b"\n")
    return line.decode(), rest


def main():
    path = os.environ.get(SOCKET_VARIABLE, "")
    if not path:
        _cold("")
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(path)
        request = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:]}).encode() + b"\n"
        # The standard streams travel as file descriptors: the child writes straight to the worker's pipes.
        connection.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
        answer, pending = _read_line(connection, b"")
    except OSError as error:
        connection.close()
        _cold(f"{type(error).__name__}: {error}")
    if answer is None or not answer.startswith("started "):
        connection.close()
        _cold(answer.removeprefix("cold ") if answer else "the preloaded process hung up")

    child = int(answer.split()[1])

    def forward(signum, _frame):
        try:
            connection.sendall(f"signal {signum}\n".encode())
        except OSError:
            pass

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    while True:
        try:
            line, pending = _read_line(connection, pending)
        except InterruptedError:
            continue
        if line is None or not line.startswith("exit "):
            # The preloaded process died. Its child dies with it (PR_SET_PDEATHSIG), but what the child
            # started would live on: end the child's whole group, as a killed worker ends its runs.
            try:
                os.killpg(child, signal.SIGKILL)
            except OSError:
                pass
            print("warm start: the preloaded process went away before the flow run ended", file=sys.stderr, flush=True)
            sys.exit(1)
        code = int(line.split()[1])
        if code < 0:  # killed by a signal: end the same way, so the worker reports what it would have
            signal.signal(-code, signal.SIG_DFL)
            os.kill(os.getpid(), -code)
        sys.exit(code)


if __name__ == "__main__":
    main()
