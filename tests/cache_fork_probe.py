"""python cache_fork_probe.py FORKS: forks FORKS times while another thread keeps freeing
cached outputs without the GIL; each child takes the cache's lock once and exits. Prints
how many children hung (stops at the first), so 0 means every child found the lock free.

With the cache limit at 0 every freed block is unmapped under the lock, so a fork often
lands while the worker holds it. Run by test_cpu_cache.py in a fresh process: a child of
the test process would inherit its threads and state."""
import os
import signal
import sys
import threading
import time

import torch

import maskx_kernels as mk


def main(forks: int) -> int:
    mk.set_cpu_cache_limit(0)
    feats = torch.randn(1, 256, 64, 64, requires_grad=True)  # its gradient (4 MiB) is a cached output
    rois_a = torch.tensor([[0, 0, 0, 30, 30]] * 8, dtype=torch.float32)
    rois_b = torch.tensor([[0, 2, 2, 40, 40]] * 8, dtype=torch.float32)
    stop = threading.Event()

    def backward_loop():
        while not stop.is_set():
            a = mk.roi_align(feats, rois_a, 7, 1.0, 2, True)
            b = mk.roi_align(feats, rois_b, 7, 1.0, 2, True)
            # The autograd engine sums the two gradients of feats and frees one, without the GIL.
            torch.autograd.grad(a.sum() + b.sum(), feats)

    worker = threading.Thread(target=backward_loop)
    worker.start()
    hung = 0
    try:
        for _ in range(forks):
            pid = os.fork()
            if pid == 0:
                mk.cpu_cache_bytes()  # takes the cache's lock
                os._exit(0)
            deadline = time.monotonic() + 2.0
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    hung += 1
                    break
                time.sleep(0.001)
            if hung:
                break
    finally:
        stop.set()
        worker.join()
    return hung


if __name__ == "__main__":
    print(main(int(sys.argv[1])))
