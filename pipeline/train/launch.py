"""Single-node ``torchrun`` with every listening socket on loopback.

``torchrun --standalone`` creates its rendezvous store (a ``TCPStore``) listening on all
interfaces, so a ``likeness train-base --nproc N`` on a workstation would open a port to the
network for the length of the run. This launcher keeps torchrun (its elastic agent, worker
restarts and environment) but hands it a store that listens on a socket bound to ``127.0.0.1``:

- a TCP socket is bound to ``127.0.0.1`` on a free port and passed to a multi-tenant
  ``TCPStore`` as ``master_listen_fd``;
- torchrun runs in this process with the static rendezvous at ``127.0.0.1:<port>``; its
  ``TCPStore`` for that address is multi-tenant too, so it reuses the store above instead of
  binding a second, wide one; the workers connect to it as clients;
- gloo's and NCCL's own connections use the loopback interface (``GLOO_SOCKET_IFNAME`` and
  ``NCCL_SOCKET_IFNAME`` = ``lo`` unless already set).

Multi-node training is configured otherwise: the farm adapters run ``torchrun`` with the
cluster's rendezvous endpoint (see :mod:`farm.adapters.slurm`).

Usage: ``python -m pipeline.train.launch --nproc N -m MODULE ARGS...`` (what ``likeness
train-base --nproc N`` runs).
"""

from __future__ import annotations

import datetime
import os
import socket
import sys

import torch.distributed as dist
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import main as torchrun

LOOPBACK = "127.0.0.1"


def loopback_store(timeout_s: float = 300.0):
    """A multi-tenant ``TCPStore`` server listening on ``127.0.0.1`` only, and its port.

    Returns:
        ``(store, port, sock)``: keep ``sock`` open as long as the store is used.
    """

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((LOOPBACK, 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    store = dist.TCPStore(
        LOOPBACK,
        port,
        None,
        True,
        datetime.timedelta(seconds=timeout_s),
        wait_for_workers=False,
        multi_tenant=True,
        master_listen_fd=sock.fileno(),
    )
    return store, port, sock


def run_local(nproc: int, target: list[str]) -> int:
    """Run ``torchrun`` on this machine with ``nproc`` workers, listening on loopback only.

    Args:
        nproc: worker processes.
        target: what each worker runs, as torchrun takes it (``["-m", "module", args...]`` or
            ``["script.py", args...]``).

    Returns:
        0 when every worker succeeded, else 1 (torchrun has printed the failures).
    """

    for var in ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME"):
        os.environ.setdefault(var, "lo")
    _store, port, sock = loopback_store()
    args = [
        "--nnodes=1",
        "--node-rank=0",
        "--rdzv-backend=static",
        f"--master-addr={LOOPBACK}",
        f"--master-port={port}",
        f"--nproc-per-node={nproc}",
    ]
    if target and target[0] == "-m":
        args += ["--module", *target[1:]]
    else:
        args += target
    try:
        torchrun(args)
    except ChildFailedError:
        return 1
    finally:
        sock.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = "usage: python -m pipeline.train.launch --nproc N (-m MODULE | SCRIPT) [ARGS...]"
    if len(argv) < 3 or argv[0] != "--nproc" or not argv[1].isdigit() or int(argv[1]) < 1:
        print(usage, file=sys.stderr)
        return 2
    return run_local(int(argv[1]), argv[2:])


if __name__ == "__main__":
    sys.exit(main())
