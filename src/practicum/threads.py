"""CPU threads: how OpenMP threads wait, set before PyTorch starts its thread pool.

PyTorch's CPU kernels run on an OpenMP team of one thread per core. Between two parallel
regions, libgomp's threads spin by default, waiting for the next one. When another program
holds one of the cores, the spinning thread and the descheduled one take turns, and every
small kernel waits a scheduler time slice: a 2-core laptop with one busy core ran our training
and generation 3-20x slower than one thread did (benchmarks/threads.py). With the passive wait
policy, idle threads sleep instead, and a busy neighbour costs about what it takes away.

`OMP_WAIT_POLICY` is read once, when the OpenMP runtime loads (with `import torch`), so this
runs when `practicum` is imported; a value the user set is kept. Threads per process:
`OMP_NUM_THREADS`, `train.num_threads` or `torch.set_num_threads`.
"""

from __future__ import annotations

import os

WAIT_POLICY = "PASSIVE"


def configure_threads() -> None:
    """Make OpenMP threads sleep while they wait, unless the environment says otherwise."""
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
