# Copyright 2025 The LLaMo reimplementation authors. Apache-2.0.
"""Optional user-supplied SMPL / SMPL-H / SMPL-X body models, read safely.

The motion processor needs exactly one thing from a body model: the rest-pose positions of the 22
body joints for the clip's body shape, ``J_regressor @ (v_template + shapedirs @ betas)``, which
turn SMPL rotations into joint positions by forward kinematics (docs/SPEC.md section 2). Without a
body model it falls back to the template skeleton of :mod:`.skeleton`.

Body-model files are licensed for non-commercial use and may not be redistributed, so nothing here
ships or downloads one (docs/STACK.md, "Body models and licences"); users point to their own copy.

Safety. Model files are read without executing code from them:

- ``.npz``: ``np.load(..., allow_pickle=False)``; object entries (SMPL-X's ``joint2num`` dicts)
  are skipped, nothing needed lives there. ``smplx`` itself opens ``.npz`` with
  ``allow_pickle=True`` and ``.pkl`` with a plain ``pickle.load``, so it never gets the user's
  file: :func:`create_smplx_model` reads it here and hands the plain arrays over.
- ``.pkl`` (official SMPL releases; chumpy does not import on Python >= 3.11):
  :class:`RestrictedUnpickler` resolves only numpy array reconstruction, chumpy arrays (read as
  numpy), scipy sparse matrices (read as dense numpy; scipy not needed), plain ``set`` /
  ``frozenset`` / ``object`` (found in chumpy objects' state), ``copyreg``'s object
  reconstructor and ``_codecs.encode`` (how Python 3 writes bytes at protocol 2). Any other
  global raises a ``ValueError`` naming it and the file.
- An already built ``smplx`` model object (``smplx.create(...)``) is accepted as is.
"""

from __future__ import annotations

import codecs
import copyreg
import io
import logging
import os
import pickle
import tempfile
from dataclasses import dataclass

import numpy as np

from .skeleton import NUM_JOINTS, SMPL_PARENTS

__all__ = ["BodyModel", "RestrictedUnpickler", "create_smplx_model", "load_body_model", "read_body_model_file"]

logger = logging.getLogger(__name__)

# Number of joints in the full kinematic tree of each model family.
_MODEL_TYPE_BY_JOINTS = {24: "smpl", 52: "smplh", 55: "smplx"}
# SMPL-X stores shape and expression blend shapes in one ``shapedirs``: 300 + 100 in v1.1 files,
# 10 + 10 in v1.0 files. Only the shape part is driven by ``betas``.
_SMPLX_FULL_SHAPE_DIRS = 400
_SMPLX_FULL_SHAPE_DIM = 300
_SMPLX_SMALL_SHAPE_DIM = 10
_REQUIRED_KEYS = ("v_template", "shapedirs", "J_regressor")


# ----------------------------------------------------------------------------------------------
# Restricted unpickling of official .pkl files
# ----------------------------------------------------------------------------------------------


class _ChumpyArray:
    """Stand-in for ``chumpy.ch.Ch`` (and its subclasses) during unpickling.

    A pickled terminal chumpy array stores its value in the state key ``x``; expression nodes
    (sums, selections, ...) have no ``x`` and are left unreadable, which only matters if the
    processor needs that key.
    """

    def __setstate__(self, state):
        if isinstance(state, tuple):  # (dict state, slot state)
            state = state[0]
        self.value = np.asarray(state["x"]) if isinstance(state, dict) and "x" in state else None


class _SparseMatrix:
    """Stand-in for ``scipy.sparse`` CSC/CSR matrices: rebuilt dense from the pickled state."""

    compressed_axis = 1  # CSC: ``indptr`` runs over columns

    def __setstate__(self, state):
        shape = tuple(int(n) for n in state.get("_shape", state.get("shape")))
        data, indices, indptr = (np.asarray(state[key]) for key in ("data", "indices", "indptr"))
        dense = np.zeros(shape, dtype=data.dtype)
        outer = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
        if self.compressed_axis == 1:
            dense[indices, outer] = data
        else:
            dense[outer, indices] = data
        self.value = dense


class _CsrMatrix(_SparseMatrix):
    compressed_axis = 0


def _numpy_global(submodule: str, name: str):
    """``numpy._core.<submodule>.<name>`` (numpy 2) or ``numpy.core.<submodule>.<name>`` (numpy 1)."""
    import importlib

    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
        except (ImportError, AttributeError):
            continue
    return None


# The numpy globals an array pickle uses, by (submodule, name); both numpy 1 and 2 spellings accepted.
_NUMPY_GLOBALS = {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}


_BUILTINS = {"object": object, "set": set, "frozenset": frozenset}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for SMPL-family ``.pkl`` files that refuses every global but array constructors.

    ``pickle.load`` on an untrusted file can run arbitrary code, and official body-model pickles
    need chumpy, which no longer imports. This unpickler maps the handful of globals such files use
    to safe stand-ins and raises ``ValueError`` on anything else.
    """

    def __init__(self, file, source: str = "<bytes>"):
        # Official files are Python 2 pickles: latin1 keeps numpy's byte buffers intact.
        super().__init__(file, encoding="latin1")
        self.source = source

    @staticmethod
    def _allowed(module: str, name: str):
        if module.startswith("chumpy"):
            return _ChumpyArray
        if module.startswith("scipy.sparse") and name in ("csc_matrix", "csr_matrix"):
            return _SparseMatrix if name == "csc_matrix" else _CsrMatrix
        if (module, name) in {("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor")}:
            return copyreg._reconstructor
        if module in ("builtins", "__builtin__") and name in _BUILTINS:
            return _BUILTINS[name]  # plain containers inside chumpy objects' state
        if (module, name) == ("_codecs", "encode"):  # how Python 3 writes bytes at protocol 2
            return codecs.encode
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        package, _, submodule = module.rpartition(".")
        if package in ("numpy.core", "numpy._core") and (submodule, name) in _NUMPY_GLOBALS:
            return _numpy_global(submodule, name)
        return None

    def find_class(self, module, name):
        found = self._allowed(module, name)
        if found is None:
            raise ValueError(
                f"{self.source}: refusing to unpickle global '{module}.{name}'. Body-model pickles may "
                "only contain numpy arrays, chumpy arrays and scipy sparse matrices; convert the file "
                "to .npz (numpy arrays only) if it is a genuine model file."
            )
        return found


def _plain(value):
    """Replace unpickling stand-ins by their numpy values."""
    if isinstance(value, (_ChumpyArray, _SparseMatrix)):
        return value.value
    return value


def _read_pickle(path: str) -> dict:
    with open(path, "rb") as handle:
        try:
            data = RestrictedUnpickler(io.BytesIO(handle.read()), source=path).load()
        except ValueError:
            raise  # our own refusal, already naming the file and the global
        except Exception as error:  # corrupt file, truncated pickle, ...
            raise ValueError(f"{path}: not a readable body-model pickle ({type(error).__name__}: {error}).") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a pickled dict of model arrays, got {type(data).__name__}.")
    return {key: _plain(value) for key, value in data.items()}


def _read_npz(path: str, keys) -> dict:
    arrays = {}
    with np.load(path, allow_pickle=False) as archive:
        for key in archive.files if keys is None else [k for k in keys if k in archive.files]:
            try:
                arrays[key] = archive[key]
            except ValueError:
                # Object arrays (e.g. SMPL-X's ``joint2num`` dicts) need pickle: skipped, unused.
                logger.debug("%s: skipping pickled entry %r", path, key)
    return arrays


def read_body_model_file(path: str | os.PathLike, keys=None) -> dict:
    """Plain arrays of a body-model ``.npz`` or ``.pkl`` file, read without running its code.

    ``keys`` limits what is read from an ``.npz`` (a pickle is always read whole).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Body-model file not found: {path}")
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npz":
        return _read_npz(path, keys)
    if extension == ".pkl":
        return _read_pickle(path)
    raise ValueError(f"{path}: body-model files must be .npz or .pkl, got '{extension}'.")


# ----------------------------------------------------------------------------------------------
# The extracted joint model
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyModel:
    """The part of an SMPL-family model the motion processor uses: shape-dependent rest joints.

    Attributes:
        model_type: ``"smpl"``, ``"smplh"`` or ``"smplx"``.
        joint_template: (22, 3) rest joints of the mean shape, ``J_regressor @ v_template``.
        joint_shapedirs: (22, 3, B) how each beta moves the rest joints, ``J_regressor @ shapedirs``.
        source: where it came from, for messages.
    """

    model_type: str
    joint_template: np.ndarray
    joint_shapedirs: np.ndarray
    source: str = "<body model>"

    @property
    def num_betas(self) -> int:
        return self.joint_shapedirs.shape[-1]

    def rest_joints(self, betas=None) -> np.ndarray:
        """Rest-pose joints (22, 3) for shape ``betas`` (None: mean shape).

        Extra betas beyond the model's are dropped with a warning (AMASS SMPL-H motions carry 16;
        ``smplx`` silently keeps 10 by default, here every beta the model has is used).
        """
        if betas is None:
            return self.joint_template.copy()
        betas = np.asarray(betas, dtype=np.float64).reshape(-1)
        if len(betas) > self.num_betas:
            logger.warning(
                "%s: %d betas given, the model has %d; using the first %d.",
                self.source, len(betas), self.num_betas, self.num_betas,
            )  # fmt: skip
            betas = betas[: self.num_betas]
        return self.joint_template + self.joint_shapedirs[..., : len(betas)] @ betas

    def offsets(self, betas=None) -> np.ndarray:
        """Rest offsets (22, 3) of each joint from its parent (row 0: zero), for FK."""
        rest = self.rest_joints(betas)
        offsets = rest - rest[SMPL_PARENTS]
        offsets[0] = 0.0
        return offsets


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # torch tensor, without importing torch
        value = value.detach().cpu().numpy()
    if hasattr(value, "toarray"):  # a real scipy sparse matrix
        value = value.toarray()
    return np.asarray(value, dtype=np.float64)


def _shape_dims(model_type: str, num_dirs: int) -> int:
    if model_type == "smplx" and num_dirs >= _SMPLX_FULL_SHAPE_DIRS:
        return _SMPLX_FULL_SHAPE_DIM
    if model_type == "smplx":
        return min(num_dirs, _SMPLX_SMALL_SHAPE_DIM)
    return num_dirs


def _body_model_from_arrays(arrays, source: str, model_type: str | None, shape_dims_known: bool) -> BodyModel:
    missing = [key for key in _REQUIRED_KEYS if _get(arrays, key) is None]
    if missing:
        raise ValueError(
            f"{source}: not an SMPL-family body model, missing {missing} (need v_template, shapedirs, J_regressor)."
        )
    v_template = _to_numpy(_get(arrays, "v_template"))
    shapedirs = _to_numpy(_get(arrays, "shapedirs"))
    regressor = _to_numpy(_get(arrays, "J_regressor"))
    if shapedirs.ndim == 2:
        shapedirs = shapedirs[..., None]
    num_vertices = v_template.shape[0]
    if (
        v_template.shape != (num_vertices, 3)
        or shapedirs.shape[:2] != (num_vertices, 3)
        or regressor.shape[-1] != num_vertices
    ):
        raise ValueError(
            f"{source}: inconsistent body-model arrays: v_template {v_template.shape}, shapedirs {shapedirs.shape}, "
            f"J_regressor {regressor.shape}."
        )
    num_joints = regressor.shape[0]
    model_type = model_type or _MODEL_TYPE_BY_JOINTS.get(num_joints)
    if model_type is None or num_joints < NUM_JOINTS:
        raise ValueError(
            f"{source}: J_regressor has {num_joints} joints; expected 24 (SMPL), 52 (SMPL-H) or 55 (SMPL-X)."
        )
    _check_parents(arrays, source)
    if not shape_dims_known:
        shapedirs = shapedirs[..., : _shape_dims(model_type, shapedirs.shape[-1])]
    body_regressor = regressor[:NUM_JOINTS]
    return BodyModel(
        model_type=model_type,
        joint_template=body_regressor @ v_template,
        joint_shapedirs=np.einsum("jv,vcb->jcb", body_regressor, shapedirs),
        source=source,
    )


def _get(arrays, key):
    return arrays.get(key) if isinstance(arrays, dict) else getattr(arrays, key, None)


def _check_parents(arrays, source: str) -> None:
    """The first 22 joints must form SMPL's body tree, or FK would be silently wrong."""
    kintree = _get(arrays, "kintree_table")
    parents = _get(arrays, "parents")
    if kintree is not None:
        parents = _to_numpy(kintree)[0]
    if parents is None:
        return
    parents = _to_numpy(parents)[1:NUM_JOINTS].astype(np.int64)
    if not np.array_equal(parents, SMPL_PARENTS[1:]):
        raise ValueError(f"{source}: the kinematic tree of the first 22 joints is not SMPL's body tree.")


def load_body_model(model, *, model_type: str | None = None) -> BodyModel:
    """Load the 22-joint rest skeleton of an SMPL / SMPL-H / SMPL-X model.

    Args:
        model: a ``.npz`` / ``.pkl`` path, a dict of the model arrays, a built ``smplx`` model
            (anything with ``v_template``, ``shapedirs``, ``J_regressor`` attributes), or a
            :class:`BodyModel` (returned unchanged).
        model_type: force ``"smpl"``/``"smplh"``/``"smplx"``; by default inferred from the number
            of joints of ``J_regressor`` (24 / 52 / 55).
    """
    if isinstance(model, BodyModel):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        arrays = read_body_model_file(path, keys=_REQUIRED_KEYS + ("kintree_table",))
        return _body_model_from_arrays(arrays, path, model_type, shape_dims_known=False)
    if isinstance(model, dict):
        return _body_model_from_arrays(model, "<body model dict>", model_type, shape_dims_known=False)
    if hasattr(model, "v_template") and hasattr(model, "J_regressor"):
        # A built smplx module already keeps only the shape blend shapes it was created with.
        return _body_model_from_arrays(model, type(model).__name__, model_type, shape_dims_known=True)
    raise ValueError(
        "body_model must be a .npz/.pkl path, a dict of model arrays, an smplx model or a BodyModel; "
        f"got {type(model).__name__}."
    )


def create_smplx_model(path: str | os.PathLike, model_type: str | None = None, **kwargs):
    """Build an ``smplx`` model (torch module) from a file read safely here.

    ``smplx`` unpickles model files itself (``pickle.load`` / ``np.load(allow_pickle=True)``), so it
    never sees the user's file: the arrays are read with :func:`read_body_model_file` and handed
    over, as ``data_struct`` for SMPL / SMPL-H, and for SMPL-X (whose class always opens a file)
    as a temporary ``.npz`` holding only those plain arrays. Requires ``pip install smplx``
    (licensed, not a dependency of this package). ``kwargs`` go to the ``smplx`` class
    (``num_betas``, ``gender``, ``use_pca``...).
    """
    try:
        import smplx
        from smplx.utils import Struct
    except ImportError as error:
        raise ImportError("create_smplx_model needs the optional `smplx` package: pip install smplx") from error
    path = os.fspath(path)
    arrays = read_body_model_file(path)
    if model_type is None and "J_regressor" in arrays:
        model_type = _MODEL_TYPE_BY_JOINTS.get(np.shape(arrays["J_regressor"])[0])
    if model_type == "smpl":
        return smplx.SMPL(model_path=path, data_struct=Struct(**arrays), **kwargs)
    if model_type == "smplh":
        return smplx.SMPLH(model_path=path, data_struct=Struct(**arrays), ext="npz", **kwargs)
    if model_type == "smplx":
        with tempfile.TemporaryDirectory() as directory:
            clean = os.path.join(directory, "SMPLX_SAFE.npz")
            np.savez(clean, **arrays)
            return smplx.SMPLX(model_path=clean, ext="npz", **kwargs)
    raise ValueError(f"{path}: cannot tell the model type; pass model_type='smpl'|'smplh'|'smplx'.")
