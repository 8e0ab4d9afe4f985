"""Where the experiments put their latest figures: ``experiments/results/<name>.json`` and ``.md``.

Each file is overwritten by the experiment's next full run (``--quick`` runs write nothing here);
the dated history of the project's figures is kept elsewhere (``benchmarks/``). An experiment
that runs one row per command (``likelihood_mnist --rows cd25``, a ``dbn_mnist`` run folder)
merges its row into the JSON with :func:`merge`, so the file holds the latest figure of every
row; the markdown is rendered from the whole JSON.
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable, Optional

from jdbn.checkpoint import write_json

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def write(name: str, result: dict, markdown: str,
          folder: Optional[pathlib.Path] = None) -> tuple[pathlib.Path, pathlib.Path]:
  """Writes ``folder/<name>.json`` (``result``) and ``folder/<name>.md`` (``markdown``);
  ``folder`` defaults to :data:`RESULTS`."""
  folder = pathlib.Path(folder or RESULTS)
  folder.mkdir(parents=True, exist_ok=True)
  json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
  write_json(json_path, result)
  md_path.write_text(markdown.rstrip("\n") + "\n")
  print(f"results: {json_path}, {md_path}")
  return json_path, md_path


def merge(name: str, rows: dict, render: Callable[[dict], str],
          folder: Optional[pathlib.Path] = None) -> dict:
  """Updates ``rows`` (``{row name: figures}``) in ``folder/<name>.json``, keeping the other
  rows, and rewrites the markdown from all of them with ``render``; returns them all."""
  path = pathlib.Path(folder or RESULTS) / f"{name}.json"
  every = json.loads(path.read_text()) if path.is_file() else {}
  every.update(rows)
  write(name, every, render(every), folder)
  return every
