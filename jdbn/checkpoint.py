"""Checkpoints: any pytree of params, optimizer state, chains, keys and step in one atomic file.

A checkpoint is one ``.npz`` file (NumPy's zip of ``.npy`` arrays, readable by any NumPy with
``allow_pickle=False``) holding

* ``leaf_0``, ``leaf_1``, ...: the pytree's array leaves, bit for bit (typed PRNG keys as their
  ``jax.random.key_data``, rebuilt with ``jax.random.wrap_key_data``);
* ``__header__``: UTF-8 JSON with the format version, one record per leaf (its path such as
  ``['state'].params.W``, shape, dtype, kind), the tree's structure (dicts, lists, tuples,
  NamedTuples, ``flax.struct`` dataclasses such as :class:`jdbn.rbm.RBM`) with the static fields
  written by name and value (a unit family is ``{"type": "Softmax", "group_size": 10}``), and the
  caller's JSON ``metadata`` (epoch, history, ...).

Nothing is pickled, so loading a checkpoint never runs code from the file: classes are rebuilt
only from a registry (jdbn's own types, anything given to :func:`register_node` /
:func:`register_units`) or, for NamedTuple and ``flax.struct`` classes, from the ``jdbn``,
``optax`` and ``flax`` packages.

Writes are atomic: the file is written under a temporary name in the destination folder,
flushed and ``fsync``-ed, then renamed over the destination with ``os.replace``, so a crash
leaves either the previous checkpoint or the new one, never half of one. Example::

    checkpoint.save("run/ckpt.npz", {"state": state, "key": key}, metadata={"epoch": 3})
    tree = checkpoint.load("run/ckpt.npz", like={"state": state, "key": key})  # checked
    tree, meta = checkpoint.restore("run/ckpt.npz")        # rebuilt from the header alone
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import os
import pathlib
import tempfile
from typing import Any, BinaryIO, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from jdbn import gibbs
from jdbn.models import rbm as R
from jdbn import units as U

__all__ = [
    "CheckpointError",
    "FORMAT",
    "VERSION",
    "atomic_write",
    "load",
    "load_params",
    "read_metadata",
    "register_node",
    "register_units",
    "restore",
    "save",
    "save_params",
    "write_json",
]

PathLike = Union[str, os.PathLike]

FORMAT = "jdbn-checkpoint"
VERSION = 1
_HEADER = "__header__"
#: Top-level packages whose NamedTuple / flax.struct classes a header may name.
_TRUSTED_PACKAGES = ("jdbn", "optax", "flax")



class CheckpointError(ValueError):
  """A file that is not a readable jdbn checkpoint: damaged (truncated, altered bytes), another
  kind of file, or written by a newer jdbn. The message names the file and what to do."""


def _damaged(path, err: BaseException) -> CheckpointError:
  detail = str(err).splitlines()[0] if str(err) else type(err).__name__
  return CheckpointError(
      f"{str(path)!r} is damaged or not a jdbn checkpoint ({type(err).__name__}: {detail}); "
      f"restore it from a copy, or move it aside to start again")


_UNITS: dict[str, type] = {}
_NODES: dict[str, type] = {}


def register_units(cls: type) -> type:
  """Lets checkpoints save and rebuild a unit family (a frozen dataclass subclass of ``Units``).

  The family is written as ``{"type": cls.__name__, field: value, ...}``; usable as a decorator.
  """
  if not (isinstance(cls, type) and issubclass(cls, U.Units) and dataclasses.is_dataclass(cls)):
    raise TypeError(f"register_units needs a dataclass subclass of jdbn.units.Units, got {cls!r}")
  _UNITS[cls.__name__] = cls
  return cls


def register_node(cls: type) -> type:
  """Lets :func:`load` rebuild a NamedTuple or ``flax.struct`` class without a template."""
  if not (_is_namedtuple_class(cls) or _is_struct_class(cls)):
    raise TypeError(f"register_node needs a NamedTuple or flax.struct dataclass, got {cls!r}")
  _NODES[_class_name(cls)] = cls
  return cls


# --------------------------------------------------------------------------- atomic files


def atomic_write(path: PathLike, write: Callable[[BinaryIO], None]) -> pathlib.Path:
  """Writes a file atomically: ``write(f)`` into a temp file beside ``path``, fsync, rename.

  Parent folders are created. If ``write`` raises (or the process is interrupted), the temp file
  is removed and whatever was at ``path`` before stays as it was.

  Args:
    path: destination.
    write: called with the temp file opened for binary writing.

  Returns:
    ``path`` as a ``pathlib.Path``.
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.unlink(tmp)
    raise
  _fsync_dir(path.parent)
  return path


def _fsync_dir(folder: pathlib.Path) -> None:
  """Makes a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def _json_default(x):
  if isinstance(x, (np.generic, jax.Array)) and np.ndim(x) == 0:
    return np.asarray(x).item()
  if isinstance(x, (np.ndarray, jax.Array)):
    return np.asarray(x).tolist()
  if isinstance(x, (pathlib.PurePath,)):
    return str(x)
  raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def _dumps(obj, **kw) -> str:
  try:
    return json.dumps(obj, default=_json_default, **kw)
  except (TypeError, ValueError) as err:
    raise TypeError(f"checkpoint metadata must be JSON serialisable: {err}") from err


def write_json(path: PathLike, obj: Any) -> pathlib.Path:
  """Writes ``obj`` as indented JSON, atomically (see :func:`atomic_write`)."""
  text = _dumps(obj, indent=2) + "\n"
  return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# --------------------------------------------------------------------------- tree encoding


def _class_name(cls: type) -> str:
  return f"{cls.__module__}.{cls.__qualname__}"


def _is_namedtuple_class(cls) -> bool:
  return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def _is_struct_class(cls) -> bool:
  return isinstance(cls, type) and dataclasses.is_dataclass(cls) and getattr(
      cls, "_flax_dataclass", False)


for _cls in (U.Bernoulli, U.Gaussian, U.Softmax, U.ReLU, U.Joint):
  register_units(_cls)
for _cls in (R.RBM, gibbs.ChainState):
  register_node(_cls)

def _is_key(x) -> bool:
  dtype = getattr(x, "dtype", None)
  return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _is_leaf(x) -> bool:
  return isinstance(x, (jax.Array, np.ndarray, np.generic, bool, int, float, complex,
                        jax.ShapeDtypeStruct))


def _leaf_record(x, path: str) -> dict:
  """Shape/dtype/kind of a leaf, as written to the header (no data)."""
  if _is_key(x):
    impl = str(jax.random.key_impl(x)) if isinstance(x, jax.Array) else str(x.dtype)
    return {"path": path, "kind": "key", "shape": list(x.shape), "dtype": str(x.dtype),
            "impl": impl}
  if isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic):
    return {"path": path, "kind": "python", "shape": [], "dtype": type(x).__name__,
            "pytype": type(x).__name__}
  record = {"path": path, "kind": "array", "shape": list(np.shape(x)),
            "dtype": str(jnp.dtype(x.dtype))}
  if isinstance(x, (np.ndarray, np.generic)):
    record["numpy"] = "scalar" if isinstance(x, np.generic) else "array"
  return record


def _encode_static(v, where: str):
  if v is None or isinstance(v, (bool, int, float, str)):
    return v
  if isinstance(v, U.Units):
    name = type(v).__name__
    if _UNITS.get(name) is not type(v):
      raise TypeError(f"cannot save {where}: unit family {_class_name(type(v))} is not "
                      f"registered; call jdbn.checkpoint.register_units on it")
    out = {"type": name}
    for f in dataclasses.fields(v):
      out[f.name] = _encode_static(getattr(v, f.name), f"{where}.{f.name}")
    return out
  if isinstance(v, (tuple, list)):
    return [_encode_static(e, f"{where}[{i}]") for i, e in enumerate(v)]
  raise TypeError(f"cannot save the static field {where} of type {type(v).__name__}; only "
                  f"unit families, None, bool, int, float, str and tuples of them are supported")


def _decode_static(v, where: str):
  if isinstance(v, list):
    return tuple(_decode_static(e, f"{where}[{i}]") for i, e in enumerate(v))
  if isinstance(v, dict):
    name = v.get("type")
    cls = _UNITS.get(name)
    if cls is None:
      raise ValueError(f"{where}: unknown unit family {name!r} in the checkpoint (known: "
                       f"{', '.join(sorted(_UNITS))}); register it with "
                       f"jdbn.checkpoint.register_units")
    kwargs = {k: _decode_static(x, f"{where}.{k}") for k, x in v.items() if k != "type"}
    try:
      return cls(**kwargs)
    except (TypeError, ValueError) as err:
      raise ValueError(f"{where}: cannot rebuild {name} units from {v}: {err}") from err
  return v


def _key_str(k) -> str:
  return f"[{k!r}]"


def _encode(x, path: str, leaves: list, records: list) -> dict:
  """Walks a pytree in JAX's flattening order; returns its JSON structure, collecting leaves."""
  if x is None:
    return {"t": "none"}
  if _is_leaf(x):
    leaves.append(x)
    records.append(_leaf_record(x, path or "<root>"))
    return {"t": "leaf", "i": len(leaves) - 1}
  if isinstance(x, dict):
    keys = sorted(x)  # JAX flattens dicts in sorted key order
    for k in keys:
      if not isinstance(k, (str, int)) or isinstance(k, bool):
        raise TypeError(f"cannot save dict key {k!r} at {path or '<root>'}: only str and int "
                        f"keys are supported")
    return {"t": "dict", "keys": keys,
            "items": [_encode(x[k], path + _key_str(k), leaves, records) for k in keys]}
  if _is_namedtuple_class(type(x)):
    items = [_encode(v, f"{path}.{f}", leaves, records) for f, v in zip(x._fields, x, strict=True)]
    return {"t": "namedtuple", "cls": _class_name(type(x)), "fields": list(x._fields),
            "items": items}
  if type(x) in (tuple, list):
    return {"t": type(x).__name__,
            "items": [_encode(v, f"{path}[{i}]", leaves, records) for i, v in enumerate(x)]}
  if _is_struct_class(type(x)):
    fields, static = {}, {}
    for f in dataclasses.fields(x):
      if not f.init:
        continue
      value = getattr(x, f.name)
      if f.metadata.get("pytree_node", True):
        fields[f.name] = _encode(value, f"{path}.{f.name}", leaves, records)
      else:
        static[f.name] = _encode_static(value, f"{path}.{f.name}")
    return {"t": "struct", "cls": _class_name(type(x)), "fields": fields, "static": static}
  if isinstance(x, str):
    raise TypeError(f"cannot save the string at {path or '<root>'} as a leaf; put strings in "
                    f"metadata=")
  children, treedef = jax.tree_util.tree_flatten(x, is_leaf=lambda n: n is not x)
  if treedef.num_nodes == 1:
    raise TypeError(f"cannot save the leaf at {path or '<root>'} of type {type(x).__name__}; "
                    f"leaves must be arrays, PRNG keys or Python numbers")
  return {"t": "node", "cls": _class_name(type(x)),
          "items": [_encode(v, f"{path}[{i}]", leaves, records) for i, v in enumerate(children)]}


def _encode_tree(tree):
  leaves, records = [], []
  structure = _encode(tree, "", leaves, records)
  jax_leaves = jax.tree_util.tree_leaves(tree)
  if len(jax_leaves) != len(leaves) or any(
      a is not b for a, b in zip(jax_leaves, leaves, strict=True)):
    raise TypeError("cannot save this pytree: its leaves do not match JAX's flattening order "
                    "(a custom pytree node?)")
  return structure, leaves, records


def _resolve_class(name: str, where: str) -> type:
  if name in _NODES:
    return _NODES[name]
  # Qualnames may be nested (Outer.Inner): try the longest importable module prefix.
  parts = name.split(".")
  if parts[0] in _TRUSTED_PACKAGES:
    for cut in range(len(parts) - 1, 0, -1):
      module, attrs = ".".join(parts[:cut]), parts[cut:]
      try:
        obj = importlib.import_module(module)
      except ImportError:
        continue
      for a in attrs:
        obj = getattr(obj, a, None)
      if _is_namedtuple_class(obj) or _is_struct_class(obj):
        return obj
      break
  raise ValueError(f"{where}: cannot rebuild class {name} from the checkpoint header; pass "
                   f"like= (a template pytree) to load, or jdbn.checkpoint.register_node(cls)")


def _decode(node: dict, path: str, leaves: list):
  t = node["t"]
  if t == "none":
    return None
  if t == "leaf":
    return leaves[node["i"]]
  if t == "dict":
    pairs = zip(node["keys"], node["items"], strict=True)
    return {k: _decode(v, path + _key_str(k), leaves) for k, v in pairs}
  if t in ("list", "tuple"):
    items = [_decode(v, f"{path}[{i}]", leaves) for i, v in enumerate(node["items"])]
    return items if t == "list" else tuple(items)
  if t == "namedtuple":
    cls = _resolve_class(node["cls"], path or "<root>")
    pairs = zip(node["fields"], node["items"], strict=True)
    items = [_decode(v, f"{path}.{f}", leaves) for f, v in pairs]
    return cls(*items)
  if t == "struct":
    cls = _resolve_class(node["cls"], path or "<root>")
    kwargs = {f: _decode(v, f"{path}.{f}", leaves) for f, v in node["fields"].items()}
    kwargs.update({f: _decode_static(v, f"{path}.{f}") for f, v in node["static"].items()})
    return cls(**kwargs)
  raise ValueError(f"{path or '<root>'}: cannot rebuild custom pytree node {node.get('cls')} "
                   f"without a template; pass like= to load")


# --------------------------------------------------------------------------- save / load


def _host_array(x, record: dict) -> np.ndarray:
  if record["kind"] == "key":
    return np.asarray(jax.random.key_data(x))
  a = np.asarray(x)
  if a.dtype.kind == "V" or type(a.dtype).__module__ != "numpy":
    # bfloat16 and other ml_dtypes: stored as raw unsigned ints of the same width.
    record["stored_as"] = f"uint{8 * a.dtype.itemsize}"
    a = a.view(record["stored_as"])
  return a


def save(path: PathLike, tree: Any, *, metadata: Optional[dict] = None) -> pathlib.Path:
  """Saves a pytree (params, optimizer state, chains, step, PRNG keys, ...) atomically.

  Args:
    path: destination file, conventionally ``*.npz``; parent folders are created.
    tree: a pytree of arrays, typed or raw PRNG keys and Python numbers, built from dicts (str or
      int keys), lists, tuples, NamedTuples (e.g. Optax states) and ``flax.struct`` dataclasses
      (e.g. :class:`jdbn.rbm.RBM`, whose unit families are written by name and fields).
    metadata: JSON-serialisable dict stored in the header (epoch, history, settings).

  Returns:
    ``path`` as a ``pathlib.Path``.

  Raises:
    TypeError: a leaf, static field or metadata value that cannot be written.
  """
  structure, leaves, records = _encode_tree(tree)
  arrays = {
      f"leaf_{i}": _host_array(x, r)
      for i, (x, r) in enumerate(zip(leaves, records, strict=True))
  }
  header = {"format": FORMAT, "version": VERSION, "jax_version": jax.__version__,
            "leaves": records, "tree": structure, "metadata": metadata or {}}
  arrays[_HEADER] = np.frombuffer(_dumps(header).encode("utf-8"), np.uint8)
  return atomic_write(path, lambda f: _write_npz(f, arrays))


def _write_npz(f: BinaryIO, arrays: dict) -> None:
  np.savez(f, **arrays)


def _read(path: PathLike, with_arrays: bool = True):
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"no checkpoint at {str(path)!r}" +
                            (" (it is a folder)" if path.is_dir() else ""))
  with open(path, "rb") as f:
    if f.read(4) != b"PK\x03\x04":  # every .npz is a zip archive
      raise CheckpointError(f"{str(path)!r} is not a jdbn checkpoint (not an .npz file)")
  try:
    with np.load(path, allow_pickle=False) as z:
      if _HEADER not in z.files:
        raise ValueError("no header")
      header = json.loads(z[_HEADER].tobytes().decode("utf-8"))
      arrays = {n: z[n] for n in z.files if n != _HEADER} if with_arrays else {}
    if not isinstance(header, dict) or not isinstance(header.get("metadata", {}), dict):
      raise ValueError("malformed header")
  except Exception as err:  # pylint: disable=broad-except  (zipfile, zlib, NumPy, JSON, ...)
    if "no header" in str(err):
      raise CheckpointError(f"{str(path)!r} is not a readable jdbn checkpoint: {err}") from err
    raise _damaged(path, err) from err
  if header.get("format") != FORMAT:
    raise CheckpointError(
        f"{str(path)!r} is not a jdbn checkpoint (format {header.get('format')!r})")
  if header.get("version", 0) > VERSION:
    raise CheckpointError(f"{str(path)!r} has checkpoint format version {header['version']}; this "
                     f"jdbn reads up to version {VERSION}: upgrade jdbn")
  return header, arrays


def _leaf_value(raw: np.ndarray, record: dict, like=None):
  """Turns stored data back into a leaf; typed like the template leaf ``like`` if given."""
  if "stored_as" in record:
    raw = raw.view(jnp.dtype(record["dtype"]))
  kind = record["kind"]
  if kind == "python" and like is not None and (isinstance(like, np.generic) or not isinstance(
      like, (bool, int, float, complex))):
    kind = "array"  # the template wants an array here
    raw = np.asarray(raw, jnp.dtype(like.dtype))
  if kind == "key":
    return jax.random.wrap_key_data(jnp.asarray(raw), impl=record["impl"])
  if kind == "python":
    return {"bool": bool, "int": int, "float": float, "complex": complex}[record["pytype"]](
        raw.item())
  numpy = record.get("numpy") if like is None else (
      "array" if isinstance(like, np.ndarray) else
      "scalar" if isinstance(like, np.generic) else None)
  if numpy is not None:  # NumPy leaves stay NumPy (and keep float64 whatever jax_enable_x64 says)
    return raw if numpy == "array" else raw[()]
  if getattr(like, "weak_type", False) and raw.ndim == 0:
    return jnp.asarray(raw.item())  # keeps a weakly typed scalar weak (same jit cache key)
  return jnp.asarray(raw)


def _scalar_fits(pytype: str, dtype: str) -> bool:
  kind = jnp.dtype(dtype).kind
  return {"bool": "b", "int": "iu", "float": "f", "complex": "c"}[pytype].__contains__(kind)


def _describe(node: dict) -> str:
  t = node["t"]
  if t in ("namedtuple", "struct", "node"):
    return f"{t} {node['cls']}"
  if t == "leaf":
    return "an array leaf"
  return {"none": "None", "dict": "a dict", "list": "a list", "tuple": "a tuple"}[t]


def _same_class(saved: Optional[str], want: Optional[str]) -> bool:
  """Whether two class paths name one class: the same path, or an old path that still resolves to
  the class now at ``want`` (``jdbn.dbn.UntiedDBN`` after it moved to ``jdbn.models.dbn``)."""
  if saved == want:
    return True
  if saved is None or want is None:
    return False
  try:
    return _resolve_class(saved, "") is _resolve_class(want, "")
  except ValueError:
    return False


def _compare(saved: dict, want: dict, path: str, saved_records: list, want_records: list,
             file: str) -> None:
  where = path or "<root>"

  def fail(msg):
    raise ValueError(f"checkpoint {file} does not match the template at {where}: {msg}")

  if saved["t"] != want["t"] or not _same_class(saved.get("cls"), want.get("cls")):
    fail(f"expected {_describe(want)}, found {_describe(saved)}")
  t = want["t"]
  if t == "leaf":
    s, w = saved_records[saved["i"]], want_records[want["i"]]
    if s["kind"] == "python" and w["kind"] == "array" and w["shape"] == [] and _scalar_fits(
        s["pytype"], w["dtype"]):
      return  # a Python number saved, a 0-d array expected (a template from jax.eval_shape)
    if s["kind"] != w["kind"] or s["shape"] != w["shape"] or s["dtype"] != w["dtype"]:
      fail(f"expected shape {tuple(w['shape'])} dtype {w['dtype']}, found shape "
           f"{tuple(s['shape'])} dtype {s['dtype']}")
    return
  if t == "dict":
    if saved["keys"] != want["keys"]:
      missing = [k for k in want["keys"] if k not in saved["keys"]]
      extra = [k for k in saved["keys"] if k not in want["keys"]]
      fail(f"dict keys differ (missing from the checkpoint: {missing}, not in the template: "
           f"{extra})")
    for k, s, w in zip(want["keys"], saved["items"], want["items"], strict=True):
      _compare(s, w, path + _key_str(k), saved_records, want_records, file)
    return
  if t in ("list", "tuple", "namedtuple", "node"):
    if len(saved["items"]) != len(want["items"]):
      fail(f"expected {len(want['items'])} children, found {len(saved['items'])}")
    names = want.get("fields") or [f"[{i}]" for i in range(len(want["items"]))]
    for name, s, w in zip(names, saved["items"], want["items"], strict=True):
      sub = f"{path}.{name}" if t == "namedtuple" else f"{path}{name}"
      _compare(s, w, sub, saved_records, want_records, file)
    return
  if t == "struct":
    if list(saved["fields"]) != list(want["fields"]):
      fail(f"expected fields {list(want['fields'])}, found {list(saved['fields'])}")
    for name, w in want["static"].items():
      s = saved["static"].get(name)
      if s != w:
        raise ValueError(f"checkpoint {file} does not match the template at {path}.{name}: "
                         f"expected {json.dumps(w)}, found {json.dumps(s)}")
    for name in want["fields"]:
      _compare(saved["fields"][name], want["fields"][name], f"{path}.{name}", saved_records,
               want_records, file)


def restore(path: PathLike, like: Any = None) -> tuple[Any, dict]:
  """Loads a checkpoint and its metadata.

  Args:
    path: a file written by :func:`save`.
    like: optional template pytree with the expected structure (arrays or
      ``jax.ShapeDtypeStruct`` leaves, e.g. from ``jax.eval_shape``). Every leaf's shape and
      dtype, every node type and every static field (unit families) is checked against it, and
      the result takes the template's tree structure and leaf types. Without a template the tree
      is rebuilt from the header (RBMs, chains, Optax states, dicts, lists, tuples).

  Returns:
    ``(tree, metadata)``.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: not a checkpoint, or a mismatch with ``like`` (naming the leaf path and the
      expected and found shapes, dtypes or unit types).
  """
  header, arrays = _read(path)
  try:
    records = header["leaves"]
    raw = [arrays[f"leaf_{i}"] for i in range(len(records))]
    if like is None:
      leaves = [_leaf_value(a, r) for a, r in zip(raw, records, strict=True)]
      return _decode(header["tree"], "", leaves), header["metadata"]
  except ValueError:
    raise
  except Exception as err:  # pylint: disable=broad-except  (a header that contradicts itself)
    raise _damaged(path, err) from err
  want_structure, want_leaves, want_records = _encode_tree(like)
  for r in want_records:  # a template key leaf from eval_shape names its dtype, not its impl
    r.pop("impl", None)
  saved_records = [{k: v for k, v in r.items() if k != "impl"} for r in records]
  try:
    _compare(header["tree"], want_structure, "", saved_records, want_records, repr(str(path)))
  except ValueError:
    raise
  except Exception as err:  # pylint: disable=broad-except  (a header that contradicts itself)
    raise _damaged(path, err) from err
  try:
    leaves = [_leaf_value(a, r, w) for a, r, w in zip(raw, records, want_leaves, strict=True)]
  except Exception as err:  # pylint: disable=broad-except
    raise _damaged(path, err) from err
  return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), leaves), header[
      "metadata"]


def load(path: PathLike, like: Any = None) -> Any:
  """Loads the pytree of a checkpoint; see :func:`restore` (which also returns the metadata)."""
  return restore(path, like)[0]


def read_metadata(path: PathLike) -> dict:
  """The JSON metadata stored with a checkpoint, without reading its arrays."""
  return _read(path, with_arrays=False)[0]["metadata"]


def save_params(path: PathLike, params: Any, *, metadata: Optional[dict] = None) -> pathlib.Path:
  """Saves a bare model (an :class:`~jdbn.rbm.RBM`, or a list/tuple/dict of them)."""
  return save(path, params, metadata=metadata)


def load_params(path: PathLike, like: Any = None) -> Any:
  """Loads a model's params from a bare-model file or a training checkpoint.

  A training checkpoint written by :func:`jdbn.train.fit` holds ``{"state": TrainState, "key":
  ...}``; its ``state.params`` is returned. ``like``, if given, is a template of the params.
  """
  tree = load(path)
  if isinstance(tree, dict) and "state" in tree and hasattr(tree["state"], "params"):
    tree = tree["state"].params
  elif hasattr(tree, "params") and hasattr(tree, "opt_state"):
    tree = tree.params
  if like is not None:
    got, _, got_records = _encode_tree(tree)
    want, _, want_records = _encode_tree(like)
    for r in got_records + want_records:
      r.pop("impl", None)
    _compare(got, want, "", got_records, want_records, repr(str(path)))
  return tree
