"""A user's own Python function as a teacher: NumPy/OpenCV on HxWx3 arrays, or torch on [B,3,H,W] batches.

Three ways to plug an operator in, none of which edits this package:

1. A plain function, named on the command line::

       hdr-distill train teacher=python teacher.fn=my_pkg.ops:my_filter
       hdr-distill train teacher=python teacher.fn=path/to/my_ops.py:my_filter   # a file, no package needed

   ``my_filter(img)`` takes one ``HxWx3`` float32 array in [0, 1] and returns one like it. Keyword
   arguments come from ``teacher.params`` (``+teacher.params.amount=0.5`` on the command line).

2. The same function, decorated to declare what it expects, so the command line stays short::

       from teachers.python import teacher

       @teacher(input_space="linear", output_space="srgb", value_range=(0, 255))
       def my_filter(img_uint8, amount=0.5): ...

3. A class: any object with ``name``, ``input_space``, ``output_space``, ``params()`` and
   ``__call__(images[B,3,H,W]) -> [B,3,H,W]`` already *is* a teacher (see ``distill.core.protocols.Teacher``);
   it needs no adapter, only a YAML with ``_target_: my_pkg.ops.MyTeacher`` and its arguments.
   (A NumPy class can subclass ``distill.core.protocols.NumpyTeacher`` and write one ``apply_np`` method.)

The adapter converts the batch to what the function wants (layout, dtype, value range), checks what comes
back (3 channels, same size), converts it to float32 [0, 1]-scaled torch, and records an identity that
changes when the function's source changes, so a student is never silently paired with an edited operator.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import signal
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from distill.core.protocols import COLOR_SPACES, Teacher, check_images

LAYOUTS = ("hwc", "bchw")
_FILE_MODULE_PREFIX = "hdr_distill_user_"  # sys.modules name of a file loaded by path
# Integer dtypes the function may ask for; the input is rounded to the full scale of the type.
_INT_DTYPES = {"uint8": 255, "uint16": 65535}

_DEFAULTS = {
    "input_space": "srgb",
    "output_space": "srgb",
    "layout": "hwc",
    "batched": False,
    "value_range": (0.0, 1.0),
}


def teacher(fn: Callable | None = None, *, name: str | None = None, input_space: str | None = None,
            output_space: str | None = None, layout: str | None = None, batched: bool | None = None,
            value_range: tuple[float, float] | None = None, dtype: str | None = None,
            params: dict[str, Any] | None = None):
    """Declare a function's teacher settings on the function itself; it stays a plain, callable function.

    ``PythonTeacher(fn)`` reads these as defaults; arguments given to ``PythonTeacher`` (or on the command
    line) override them. Works with and without parentheses.

    Example:
        >>> @teacher(input_space="linear", params={"gain": 2.0})
        ... def brighten(img, gain=1.0):
        ...     return np.clip(img * gain, 0, 1)
        >>> PythonTeacher(brighten).input_space
        'linear'
    """
    decl = {k: v for k, v in dict(name=name, input_space=input_space, output_space=output_space,
                                    layout=layout, batched=batched, value_range=value_range, dtype=dtype,
                                    params=params).items() if v is not None}

    def mark(f: Callable) -> Callable:
        f.__teacher__ = decl
        return f

    return mark(fn) if fn is not None else mark


def resolve_callable(spec: str) -> Callable:
    """Turn ``"pkg.mod:fn"``, ``"pkg.mod.fn"``, ``"pkg.mod:Class.method"`` or ``"dir/file.py:fn"`` into the object.

    Raises:
        ImportError: naming ``spec`` and what part of it did not resolve. An ImportError raised *inside* the
            user's module (a missing dependency of theirs) propagates unchanged, so it is not mistaken for
            a typo in the string.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ImportError(f"teacher fn: expected an import string like 'my_pkg.ops:my_filter', got {spec!r}")
    spec = spec.strip()
    if ":" in spec:
        mod_name, _, attr = spec.rpartition(":")
        if mod_name.endswith(".py") or os.sep in mod_name or "/" in mod_name:
            module = _load_file(mod_name, spec)
        else:
            module = _import(mod_name, spec)
        return _getattr_path(module, attr, spec)
    # "pkg.mod.fn": the longest importable prefix is the module, the rest are attributes.
    parts = spec.split(".")
    for i in range(len(parts) - 1, 0, -1):
        mod_name = ".".join(parts[:i])
        try:
            module = importlib.import_module(mod_name)
        except ModuleNotFoundError as e:
            if e.name is not None and mod_name.startswith(e.name):
                continue  # this prefix is not a module; try a shorter one
            raise
        return _getattr_path(module, ".".join(parts[i:]), spec)
    raise ImportError(
        f"teacher fn '{spec}': no importable module in it; use 'module:function' with the module on "
        f"PYTHONPATH, or 'path/to/file.py:function'"
    )


def _import(mod_name: str, spec: str):
    try:
        return importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        if e.name is not None and mod_name.startswith(e.name):
            raise ImportError(
                f"teacher fn '{spec}': module '{mod_name}' not found (is its folder on PYTHONPATH? "
                f"a file can be named directly: 'path/to/file.py:function')"
            ) from e
        raise


def _load_file(path: str, spec: str):
    p = Path(path).expanduser()
    if not p.is_absolute() and not p.exists():
        # Hydra may run the job in its output folder; the user meant the folder they launched from.
        try:
            from hydra.utils import get_original_cwd

            p = Path(get_original_cwd()) / p
        except Exception:
            pass
    if not p.is_file():
        raise ImportError(f"teacher fn '{spec}': file '{path}' does not exist")
    p = p.resolve()
    mod_name = _FILE_MODULE_PREFIX + hashlib.sha256(str(p).encode()).hexdigest()[:12]
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    loader_spec = importlib.util.spec_from_file_location(mod_name, p)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[mod_name] = module  # before exec, so dataclasses/pickle inside the file can find it
    try:
        loader_spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[mod_name]
        raise
    return module


def _getattr_path(obj, attr: str, spec: str):
    for part in attr.split("."):
        if not hasattr(obj, part):
            where = getattr(obj, "__name__", type(obj).__name__)
            raise ImportError(f"teacher fn '{spec}': '{where}' has no attribute '{part}'")
        obj = getattr(obj, part)
    return obj


def _named(fn: Callable):
    """The object that names a callable: itself when it has a name (function, builtin, ufunc), else its class."""
    return fn if hasattr(fn, "__name__") else type(fn)


def _callable_path(fn: Callable) -> str:
    """``module:qualname`` of a function (or of a callable object's class)."""
    target = _named(fn)
    mod = getattr(target, "__module__", None) or "?"
    qual = getattr(target, "__qualname__", None) or target.__name__
    if mod.startswith(_FILE_MODULE_PREFIX):  # loaded from a file: its name, not the folder it sits in
        mod = Path(getattr(sys.modules.get(mod), "__file__", None) or mod).name
    return f"{mod}:{qual}"


def _source_sha(fn: Callable) -> str | None:
    """Hash of the function's source (of the class for callable objects); None when inspect cannot see it."""
    target = fn if (inspect.isfunction(fn) or inspect.ismethod(fn)) else type(fn)
    try:
        src = inspect.getsource(target)
    except (OSError, TypeError):
        return None
    return hashlib.sha256(src.encode()).hexdigest()[:16]


def _package_version(fn: Callable) -> str | None:
    mod = sys.modules.get((getattr(fn, "__module__", None) or "").split(".")[0])
    return getattr(mod, "__version__", None) if mod is not None else None


class PythonTeacherError(RuntimeError):
    """The user's function hung past its timeout; the message names the teacher and the limit."""


class _Alarm(BaseException):
    """Raised into the function by SIGALRM; a BaseException so that the user's ``except Exception`` cannot
    swallow it."""


def call_with_timeout(fn: Callable, timeout: float | None, who: str, what: str):
    """``fn()``, stopped after ``timeout`` seconds (None: no limit) with ``PythonTeacherError``.

    On the main thread of a POSIX process (the training process, and each DataLoader worker) a SIGALRM
    interrupts the function itself. Elsewhere the call runs in a daemon thread that is abandoned when the
    time is up (Python cannot stop a thread; a daemon one does not keep the process alive).
    """
    if timeout is None:
        return fn()

    def late() -> PythonTeacherError:
        return PythonTeacherError(f"teacher '{who}': the function took longer than {timeout:g} s on {what} and was "
                                  f"stopped; raise teacher.timeout if it is just slow, or teacher.timeout=null for "
                                  f"no limit")

    import threading

    if hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        def on_alarm(signum, frame):
            raise _Alarm()

        old = signal.signal(signal.SIGALRM, on_alarm)
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                return fn()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Alarm:
            raise late() from None
        finally:
            signal.signal(signal.SIGALRM, old)
    box: dict[str, Any] = {}

    def target():
        try:
            box["out"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["err"] = e

    th = threading.Thread(target=target, name=f"teacher-{who}", daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise late()
    if "err" in box:
        raise box["err"]
    return box["out"]


class PythonTeacher:
    """Adapter: a plain Python callable becomes a Teacher (``[B,3,H,W]`` float32 torch in and out).

    Args:
        fn: the operator: a callable, or an import string ``"pkg.mod:fn"`` / ``"pkg.mod.fn"`` /
            ``"path/file.py:fn"``. A class named by the string is instantiated with no arguments.
        name: the teacher's name (default: the function's qualified name).
        input_space / output_space: colour spaces ("srgb", "linear", "hdr") it expects and returns.
        layout: ``"hwc"``: NumPy arrays, channels last, ``HxWx3`` per image (or ``BxHxWx3`` with
            ``batched=True``); ``"bchw"``: the torch batch ``[B,3,H,W]`` itself, on the input's device
            (``batched`` is then irrelevant: the function always gets the whole batch).
        batched: ``layout="hwc"`` only: the function takes the whole batch ``BxHxWx3`` at once.
        value_range: ``(lo, hi)`` the function works in; [0, 1] maps to it on the way in and back on the
            way out, e.g. ``(0, 255)`` for 8-bit OpenCV code. Integer outputs (uint8/uint16) are always
            scaled by their type's full scale, so a function that returns uint8 works with any range.
        dtype: input dtype handed to the function: ``"float32"``, ``"uint8"`` or ``"uint16"``;
            default: uint8 for ``value_range=(0, 255)``, uint16 for ``(0, 65535)``, else float32.
        params: keyword arguments passed to ``fn`` on every call; they are part of the identity.
        timeout: seconds one call (one batch) may take before it is stopped with ``PythonTeacherError``
            (default 600; None: no limit). Not part of the identity: it does not change the output.

    Any of these left as None takes the value declared with ``@teacher(...)`` on the function, else the
    default (srgb, srgb, hwc, unbatched, (0, 1)).

    Example:
        >>> t = PythonTeacher(lambda img: img[..., ::-1].copy(), name="swap_rb")
        >>> t(torch.rand(2, 3, 8, 8)).shape
        torch.Size([2, 3, 8, 8])
    """

    def __init__(self, fn: Callable | str, name: str | None = None, input_space: str | None = None,
                 output_space: str | None = None, layout: str | None = None, batched: bool | None = None,
                 value_range: tuple[float, float] | None = None, params: dict[str, Any] | None = None,
                 dtype: str | None = None, timeout: float | None = 600.0):
        self.fn_spec = fn if isinstance(fn, str) else None
        self.fn = self._resolve(fn)
        decl = dict(getattr(self.fn, "__teacher__", {}) or {})
        given = dict(name=name, input_space=input_space, output_space=output_space, layout=layout,
                     batched=batched, value_range=value_range, dtype=dtype)
        cfg = {**_DEFAULTS, **{k: v for k, v in decl.items() if k != "params"},
               **{k: v for k, v in given.items() if v is not None}}

        self.name = str(cfg.get("name") or self._default_name())
        self.input_space, self.output_space = str(cfg["input_space"]), str(cfg["output_space"])
        self.layout, self.batched = str(cfg["layout"]), bool(cfg["batched"])
        self.user_params = {**dict(decl.get("params") or {}), **_plain(params or {})}
        self._check_settings(cfg)
        lo, hi = (float(v) for v in cfg["value_range"])
        self.value_range = (lo, hi)
        self.dtype = str(cfg.get("dtype") or {(0.0, 255.0): "uint8", (0.0, 65535.0): "uint16"}.get(
            self.value_range, "float32"))
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                                    or not timeout > 0):
            raise ValueError(f"teacher '{self.name}': timeout must be > 0 seconds (or null: no limit), got {timeout!r}")
        self.timeout = None if timeout is None else float(timeout)
        if self.dtype not in ("float32", *_INT_DTYPES):
            raise ValueError(f"teacher '{self.name}': dtype must be float32, uint8 or uint16, got '{self.dtype}'")
        if self.dtype in _INT_DTYPES and self.input_space == "hdr":
            raise ValueError(
                f"teacher '{self.name}': input_space 'hdr' is unbounded radiance and cannot be handed over as "
                f"{self.dtype}; use dtype float32 (value_range (0, 1)) or an LDR input space"
            )

    # ---- construction helpers -------------------------------------------------------------------------

    @staticmethod
    def _resolve(fn: Callable | str) -> Callable:
        obj = resolve_callable(fn) if isinstance(fn, str) else fn
        if inspect.isclass(obj):
            try:
                obj = obj()  # a class with __call__ on arrays: one instance serves every call
            except TypeError as e:
                raise TypeError(f"teacher fn {fn!r} names a class, which is instantiated with no arguments; "
                                f"that failed: {e}") from e
        if isinstance(obj, (PythonTeacher,)) or (isinstance(obj, Teacher) and not inspect.isfunction(obj)):
            raise TypeError(
                f"teacher fn {fn!r} is already a Teacher (it has name/input_space/output_space/params); it needs "
                f"no adapter: use it directly with a YAML '_target_: {_callable_path(obj).replace(':', '.')}'"
            )
        if not callable(obj):
            raise TypeError(f"teacher fn {fn!r} is a {type(obj).__name__}, not a callable")
        return obj

    def _default_name(self) -> str:
        fn = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        target = _named(fn)
        qual = getattr(target, "__qualname__", None) or target.__name__
        return qual.replace("<locals>.", "").replace("<lambda>", "lambda")

    def _check_settings(self, cfg: dict) -> None:
        for key in ("input_space", "output_space"):
            if cfg[key] not in COLOR_SPACES:
                raise ValueError(f"teacher '{self.name}': {key} '{cfg[key]}' is not one of {COLOR_SPACES}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"teacher '{self.name}': layout '{self.layout}' is not one of {LAYOUTS}")
        vr = cfg["value_range"]
        if len(tuple(vr)) != 2 or not float(vr[1]) > float(vr[0]):
            raise ValueError(f"teacher '{self.name}': value_range must be (lo, hi) with hi > lo, got {vr!r}")

    # ---- identity --------------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """Import path, a hash of the function's source, the adapter settings and the user's parameters."""
        fn = self.fn.func if isinstance(self.fn, functools.partial) else self.fn
        out: dict[str, Any] = {"fn": _callable_path(fn)}
        sha = _source_sha(fn)
        if sha is not None:
            out["source_sha256"] = sha
        else:  # builtins (e.g. cv2 functions): the library version is the best identity there is
            version = _package_version(fn)
            if version is not None:
                out["version"] = str(version)
        if isinstance(self.fn, functools.partial):
            out["partial"] = {"args": repr(self.fn.args), "keywords": repr(self.fn.keywords)}
        out.update(layout=self.layout, batched=self.batched, value_range=list(self.value_range),
                   dtype=self.dtype, kwargs=dict(self.user_params))
        return out

    # ---- the call --------------------------------------------------------------------------------------

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``[B,3,H,W]`` float32 in the input space -> ``[B,3,H,W]`` float32 in the output space."""
        check_images(images, f"teacher '{self.name}'")

        def call():
            with torch.no_grad():
                return self._call_torch(images) if self.layout == "bchw" else self._call_numpy(images)

        what = "a {}x{}x{} batch".format(images.shape[0], *images.shape[2:])
        return call_with_timeout(call, getattr(self, "timeout", None), self.name, what)

    def _call_torch(self, images: torch.Tensor) -> torch.Tensor:
        x = self._to_range(images.detach().to(torch.float32).clone())
        out = self.fn(x, **self.user_params)
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(out)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"teacher '{self.name}' returned {type(out).__name__}; expected a torch.Tensor "
                            f"[B,3,H,W] (layout='bchw')")
        self._check_shape(tuple(out.shape), tuple(images.shape), "[B,3,H,W]", channel_axis=1)
        return self._from_range(out).to(device=images.device, dtype=torch.float32).contiguous()

    def _call_numpy(self, images: torch.Tensor) -> torch.Tensor:
        arr = images.detach().to("cpu", torch.float32).permute(0, 2, 3, 1).numpy()  # [B,H,W,3]
        # Always a copy: the function may write into it. (ascontiguousarray is no copy when the batch is
        # channels-last in memory, as the pair stream's crops are, and an in-place edit then reached x.)
        arr = self._to_range(np.array(arr, dtype=np.float32, order="C", copy=True))
        if self.batched:
            outs = self._as_numpy(self.fn(arr, **self.user_params))
            self._check_shape(outs.shape, arr.shape, "BxHxWx3", channel_axis=3)
        else:
            outs = []
            for img in arr:
                out = self._as_numpy(self.fn(img, **self.user_params))
                self._check_shape(out.shape, img.shape, "HxWx3", channel_axis=2)
                outs.append(out)
            outs = np.stack(outs)
        res = torch.from_numpy(self._from_range(outs)).permute(0, 3, 1, 2).contiguous()  # [B,3,H,W]
        return res.to(images.device)

    def _as_numpy(self, out) -> np.ndarray:
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu().numpy()
        if not isinstance(out, np.ndarray):
            raise TypeError(f"teacher '{self.name}' returned {type(out).__name__}; expected a NumPy array "
                            f"HxWx3 (layout='hwc')")
        return out

    def _check_shape(self, got: tuple, want: tuple, what: str, channel_axis: int) -> None:
        if got == want:
            return
        msg = f"teacher '{self.name}' returned shape {got} for an input of shape {want} (expected {what})"
        if len(got) == len(want) - 1 or (len(got) == len(want) and got[channel_axis] == 1):
            msg += ("; it looks like a grey (single-channel) image: teachers must return RGB. If grey is what "
                    "you mean, stack it to 3 channels in your function (np.repeat(out[..., None], 3, -1))")
        elif len(got) == len(want) and self.layout == "hwc" and got[channel_axis - 2] == 3:
            msg += "; it looks channels-first: return channels-last HxWx3, or use layout='bchw' for torch"
        elif len(got) == len(want) and got[channel_axis] == 4:
            msg += "; it has 4 channels (RGBA?): drop the alpha channel"
        raise ValueError(msg)

    def _to_range(self, x):
        """[0, 1] floats -> the function's value range and dtype (numpy or torch)."""
        lo, hi = self.value_range
        if (lo, hi) != (0.0, 1.0):
            x = x * (hi - lo) + lo
        if self.dtype in _INT_DTYPES:
            top = _INT_DTYPES[self.dtype]
            if isinstance(x, torch.Tensor):
                x = x.round().clamp(0, top)
                return x.to(torch.uint8) if self.dtype == "uint8" else x.to(torch.int32)
            return np.clip(np.rint(x), 0, top).astype(self.dtype)
        return x

    def _from_range(self, out):
        """The function's output -> float32 scaled so that its value range maps to [0, 1]."""
        is_torch = isinstance(out, torch.Tensor)
        dt = str(out.dtype).replace("torch.", "")
        if dt == "bool":
            raise TypeError(f"teacher '{self.name}' returned a boolean image; expected numbers")
        if dt in _INT_DTYPES:  # integer images carry their own scale, whatever value_range says
            top = float(_INT_DTYPES[dt])
            return out.to(torch.float32) / top if is_torch else out.astype(np.float32) / np.float32(top)
        out = out.to(torch.float32) if is_torch else out.astype(np.float32, copy=False)
        lo, hi = self.value_range
        if (lo, hi) != (0.0, 1.0):
            out = (out - lo) / (hi - lo)
        return out

    # ---- pickling (DataLoader workers started with 'spawn') -------------------------------------------

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.fn_spec is not None:
            state["fn"] = None  # re-resolved from the string: functions loaded from a file do not pickle
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        if self.fn is None:
            self.fn = self._resolve(self.fn_spec)

    def __repr__(self) -> str:
        return (f"PythonTeacher(name={self.name!r}, fn={_callable_path(self.fn)!r}, "
                f"{self.input_space}->{self.output_space}, layout={self.layout!r})")


def _plain(params) -> dict[str, Any]:
    """Hydra hands over DictConfig; the function wants plain Python values."""
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(params, DictConfig):
            return OmegaConf.to_container(params, resolve=True)
    except ImportError:  # pragma: no cover - hydra is a dependency
        pass
    return dict(params)
