"""The peers' process: reads JSON requests on stdin, answers one JSON line each on stdout.

Started by :class:`benchmarks.common.PeerWorker` with ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` removed from its environment. Requests:

* ``{"op": "setup", "name": ..., "factory": ..., "kwargs": {...}}``: ``fn =
  benchmarks.peers.<factory>(**kwargs)``, kept under ``name``;
* ``{"op": "run", "name": ...}``: calls ``fn()`` once and answers ``{"seconds": ...}`` (and
  ``"metrics"``: what ``fn`` returned, called first if it is a function, outside the timing);
* ``{"op": "drop", "name": ...}``, ``{"op": "info"}``, ``{"op": "quit"}``.

Errors are answered as ``{"error": "..."}``; the process keeps serving.
"""

import gc
import json
import sys
import time


def main() -> None:
  # Anything a peer prints goes to stderr; stdout carries only the answers.
  out = sys.stdout
  sys.stdout = sys.stderr
  from benchmarks import peers
  jobs = {}
  for line in sys.stdin:
    msg = json.loads(line)
    op = msg.get("op")
    try:
      if op == "quit":
        out.write("{}\n")
        out.flush()
        return
      if op == "info":
        reply = peers.info()
      elif op == "setup":
        jobs.pop(msg["name"], None)
        gc.collect()
        jobs[msg["name"]] = getattr(peers, msg["factory"])(**msg["kwargs"])
        reply = {}
      elif op == "drop":
        jobs.pop(msg["name"], None)
        gc.collect()
        reply = {}
      elif op == "run":
        fn = jobs[msg["name"]]
        c = time.process_time()
        t = time.perf_counter()
        after = fn()
        seconds = time.perf_counter() - t
        cpu = time.process_time() - c
        metrics = after() if callable(after) else after
        reply = {"seconds": seconds, "cpu": cpu, "metrics": metrics}
      else:
        reply = {"error": f"unknown op {op!r}"}
    except Exception as e:  # pylint: disable=broad-except
      reply = {"error": f"{type(e).__name__}: {e}"}
    out.write(json.dumps(reply) + "\n")
    out.flush()


if __name__ == "__main__":
  main()
