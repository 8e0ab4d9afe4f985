"""Pytree codec of checkpoints: a pytree <-> a JSON structure, leaf records and host arrays.

:func:`encode_tree` walks a pytree in JAX's flattening order and returns its structure as JSON
(dicts, lists, tuples, NamedTuples, ``flax.struct`` dataclasses with their static fields written
by name and value: a unit family is ``{"type": "Softmax", "group_size": 10}``), the list of its
leaves, and one record per leaf (path such as ``['state'].params.W``, shape, dtype, kind).
:func:`host_array` and :func:`leaf_value` turn a leaf into the NumPy array stored for it and
back (typed PRNG keys as their ``key_data``, bfloat16 as raw unsigned ints). :func:`decode`
rebuilds a tree from the structure alone; :func:`compare` checks a saved structure against a
template's, naming the first leaf path that differs.

Nothing is unpickled: classes are rebuilt only from a registry (jdbn's own types, anything given
to :func:`register_node` / :func:`register_units`) or, for NamedTuple and ``flax.struct``
classes, from the ``jdbn``, ``optax`` and ``flax`` packages. :mod:`jdbn.checkpoint` writes and
reads the files; this module knows nothing about them.
"""

from __future__ import annotations

import dataclasses
import importlib
import json

import jax
import jax.numpy as jnp
import numpy as np

from jdbn import gibbs
from jdbn.models import rbm as R
from jdbn import units as U

__all__ = ["compare", "decode", "encode_tree", "host_array", "leaf_value", "register_node",
           "register_units"]

#: Top-level packages whose NamedTuple / flax.struct classes a header may name.
_TRUSTED_PACKAGES = ("jdbn", "optax", "flax")


#: Unit families a checkpoint may name, by class ``__name__`` (see :func:`register_units`).
_UNITS: dict[str, type] = {}
#: NamedTuple / ``flax.struct`` classes rebuilt without import, by ``module.qualname``.
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
  """Lets :func:`jdbn.checkpoint.load` rebuild a NamedTuple or ``flax.struct`` class without a template."""
  if not (_is_namedtuple_class(cls) or _is_struct_class(cls)):
    raise TypeError(f"register_node needs a NamedTuple or flax.struct dataclass, got {cls!r}")
  _NODES[_class_name(cls)] = cls
  return cls


def _class_name(cls: type) -> str:
  return f"{cls.__module__}.{cls.__qualname__}"


def _is_namedtuple_class(cls) -> bool:
  return isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")


def _is_struct_class(cls) -> bool:
  return isinstance(cls, type) and dataclasses.is_dataclass(cls) and getattr(
      cls, "_flax_dataclass", False)



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


def encode_tree(tree) -> tuple[dict, list, list]:
  """Encodes a pytree for writing.

  Args:
    tree: arrays, PRNG keys and Python numbers in dicts (str or int keys), lists, tuples,
      NamedTuples, ``flax.struct`` dataclasses and other registered pytree nodes.

  Returns:
    ``(structure, leaves, records)``: the JSON structure, the ``n`` leaves in JAX's flattening
    order, and ``n`` JSON records (path, shape, dtype, kind) describing them.

  Raises:
    TypeError: a leaf, dict key or static field that cannot be written.
  """
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


def decode(node: dict, path: str, leaves: list):
  """Rebuilds the pytree of a JSON structure ``node`` (at ``path``, ``""`` for the root) from
  its leaves.

  Raises:
    ValueError: a class that is neither registered nor importable from a trusted package, a
      custom pytree node (needs a template), or an unknown unit family.
  """
  t = node["t"]
  if t == "none":
    return None
  if t == "leaf":
    return leaves[node["i"]]
  if t == "dict":
    pairs = zip(node["keys"], node["items"], strict=True)
    return {k: decode(v, path + _key_str(k), leaves) for k, v in pairs}
  if t in ("list", "tuple"):
    items = [decode(v, f"{path}[{i}]", leaves) for i, v in enumerate(node["items"])]
    return items if t == "list" else tuple(items)
  if t == "namedtuple":
    cls = _resolve_class(node["cls"], path or "<root>")
    pairs = zip(node["fields"], node["items"], strict=True)
    items = [decode(v, f"{path}.{f}", leaves) for f, v in pairs]
    return cls(*items)
  if t == "struct":
    cls = _resolve_class(node["cls"], path or "<root>")
    kwargs = {f: decode(v, f"{path}.{f}", leaves) for f, v in node["fields"].items()}
    kwargs.update({f: _decode_static(v, f"{path}.{f}") for f, v in node["static"].items()})
    return cls(**kwargs)
  raise ValueError(f"{path or '<root>'}: cannot rebuild custom pytree node {node.get('cls')} "
                   f"without a template; pass like= to load")


def host_array(x, record: dict) -> np.ndarray:
  """The NumPy array stored for leaf ``x``; notes in ``record`` how it was stored."""
  if record["kind"] == "key":
    return np.asarray(jax.random.key_data(x))
  a = np.asarray(x)
  if a.dtype.kind == "V" or type(a.dtype).__module__ != "numpy":
    # bfloat16 and other ml_dtypes: stored as raw unsigned ints of the same width.
    record["stored_as"] = f"uint{8 * a.dtype.itemsize}"
    a = a.view(record["stored_as"])
  return a


def leaf_value(raw: np.ndarray, record: dict, like=None):
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


def _same_class(saved, want) -> bool:
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


def compare(saved: dict, want: dict, path: str, saved_records: list, want_records: list,
            file: str) -> None:
  """Checks a saved structure against a template's (node types, static fields, leaf shapes and
  dtypes), walking both from ``path``.

  Raises:
    ValueError: the first difference, naming ``file`` and the leaf path.
  """
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
      compare(s, w, path + _key_str(k), saved_records, want_records, file)
    return
  if t in ("list", "tuple", "namedtuple", "node"):
    if len(saved["items"]) != len(want["items"]):
      fail(f"expected {len(want['items'])} children, found {len(saved['items'])}")
    names = want.get("fields") or [f"[{i}]" for i in range(len(want["items"]))]
    for name, s, w in zip(names, saved["items"], want["items"], strict=True):
      sub = f"{path}.{name}" if t == "namedtuple" else f"{path}{name}"
      compare(s, w, sub, saved_records, want_records, file)
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
      compare(saved["fields"][name], want["fields"][name], f"{path}.{name}", saved_records,
              want_records, file)


for _cls in (U.Bernoulli, U.Gaussian, U.Softmax, U.ReLU, U.Joint, U.PoolingSoftmax):
  register_units(_cls)
for _cls in (R.RBM, gibbs.ChainState):
  register_node(_cls)
