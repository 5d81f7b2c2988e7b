"""Anti-tamper guard: restore what the tests rely on before every cell, and report who changed it.

The threat: a submission's own cells run in the same interpreter as the test cells that grade it,
so they can replace what those tests call: ``np.allclose = lambda *a, **k: True``,
``grading.check_lstm_cell_forward = lambda f: None``, ``core.compare.__code__ = ...``,
``builtins.isinstance = ...``, ``core._TOLERANCES[...] = (1e9, 1e9)``, ``grading = FakeModule()``,
``sys.setprofile(None)`` (to blind the monitor that forbids the reference) ...

The guard (installed by the sandbox kernel, :mod:`gated_lib.sandbox.kernel`) works in two steps:

1. :meth:`Guard.capture`, **before the kernel accepts any code**, imports numpy, numpy.testing,
   numpy.linalg and every module of gated_lib.grading (with the gated_lib modules they import), and
   records the pristine state: every binding of those modules whose value is a module, a class or a
   function (identity), every such function's ``__code__``, ``__defaults__`` and ``__kwdefaults__``,
   the attribute dicts of gated_lib's classes, the data globals of gated_lib.grading (tolerance
   tables: identity and a deep copy), ``builtins``, the ``sys.modules`` entries of those modules,
   and ``sys.setprofile``/``sys.settrace`` with their getters. torch (seconds to import) is not
   imported then: an import hook at the front of ``sys.meta_path`` records the whole torch package,
   with ``torch.Tensor``'s and ``torch.nn``'s classes, the moment ``import torch`` completes, before
   the importing cell can change anything (and the hook being removed counts as tampering).
2. :meth:`Guard.before_cell` (IPython's ``pre_run_cell`` event) compares and **restores** all of it
   before every cell, and also restores the notebook names that were first bound to one of those
   modules or to a gated_lib.grading object (``np``, ``grading``, ``check_choice``): a learner who
   writes ``def sigmoid`` is not affected, one who writes ``grading = ...`` is. Whatever it had to
   restore is *tampering*: from then on, every cell starts by printing one line to stderr that names
   what was changed. nbgrader scores a test cell that writes to stderr 0, so a tampering notebook
   gets no further automatic points, and the instructor sees why in the autograded notebook.

Adding attributes is not tampering (numpy caches lazily imported submodules); legitimate learner code
never assigns to numpy's, builtins' or gated_lib's attributes.

What it does not stop (docs/sandbox.md): code that subverts the interpreter's own machinery (removing
the guard's event callback, replacing IPython's ``run_cell``, ctypes writes into memory) runs in the
same process as the guard and can defeat any in-process check; the sandbox still bounds what such
code can *reach* (no network, a read-only filesystem without the solutions or the gradebook).
"""

from __future__ import annotations

import builtins
import copy
import importlib
import pkgutil
import sys
import types
import warnings

_PROTECTED_PREFIXES = ("numpy", "gated_lib", "torch")
_LATE_PREFIXES = ("torch", "gated_lib", "numpy")
HIDDEN_MARKER = "### BEGIN HIDDEN TESTS"
_DATA_PREFIXES = ("gated_lib.grading",)
_SYS_HOOKS = ("setprofile", "getprofile", "settrace", "gettrace")
# builtins the kernel itself rebinds: ipykernel swaps `input` in and out around every execution,
# IPython keeps the last results in _, __, ___
_VOLATILE_BUILTINS = frozenset({"input", "_", "__", "___", "exit", "quit"})


def _tracked(value) -> bool:
    # functions, classes, builtins, ufuncs (np.abs) and numpy's dispatchers (np.allclose)
    return isinstance(value, types.ModuleType) or callable(value)


class Guard:
    def __init__(self):
        self.modules: dict[str, types.ModuleType] = {}
        self.bindings: dict[str, dict[str, object]] = {}      # module -> {name: value}
        self.data: dict[str, dict[str, tuple[object, object]]] = {}
        self.functions: dict[types.FunctionType, tuple] = {}
        self.classes: dict[type, dict[str, object]] = {}
        self.builtins: dict[str, object] = {}
        self.sys_hooks: dict[str, object] = {}
        self.names: dict[str, object] = {}                   # notebook names bound to protected objects
        self.tampered: list[str] = []
        self.shell = None

    # -- capture -------------------------------------------------------------------------------

    @classmethod
    def capture(cls) -> Guard:
        import numpy
        import numpy.linalg
        import numpy.testing  # noqa: F401

        from gated_lib import grading
        for info in pkgutil.iter_modules(grading.__path__, grading.__name__ + "."):
            importlib.import_module(info.name)
        self = cls()
        for name, mod in list(sys.modules.items()):
            if mod is not None and name.startswith(_PROTECTED_PREFIXES) and not name.startswith("gated_lib.sandbox"):
                self.add_module(name, mod)
        _LateImports.install(self)
        self.builtins = {k: v for k, v in vars(builtins).items() if k not in _VOLATILE_BUILTINS}
        self.sys_hooks = {k: getattr(sys, k) for k in _SYS_HOOKS}
        return self

    def add_module(self, name: str, mod: types.ModuleType) -> None:
        """Record `mod` as pristine: its bindings, its functions' code, its own classes' attributes."""
        if name in self.modules:
            return
        with warnings.catch_warnings():          # deprecated attributes warn when touched: never on stderr
            warnings.simplefilter("ignore")
            self._add_module(name, mod)

    def _add_module(self, name: str, mod: types.ModuleType) -> None:
        self.modules[name] = mod
        d = dict(vars(mod))
        self.bindings[name] = {k: v for k, v in d.items() if _tracked(v)}
        if name.startswith(_DATA_PREFIXES):
            self.data[name] = {k: (v, copy.deepcopy(v)) for k, v in d.items()
                               if isinstance(v, (dict, list, set, tuple, int, float, str, bool))
                               and not k.startswith("__")}
        for v in d.values():
            if isinstance(v, types.FunctionType):
                self.functions.setdefault(v, (v.__code__, v.__defaults__, v.__kwdefaults__))
            elif isinstance(v, type) and _class_protected(name) and getattr(v, "__module__", "") in (name, "torch"):
                self.classes.setdefault(v, dict(vars(v)))
                for m in vars(v).values():
                    f = getattr(m, "__func__", m)
                    if isinstance(f, types.FunctionType):
                        self.functions.setdefault(f, (f.__code__, f.__defaults__, f.__kwdefaults__))

    def uninstall(self) -> None:
        """Remove the late-import hook (tests that capture in their own process)."""
        finder = getattr(self, "finder", None)
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)
        self.finder = None

    def _is_protected_object(self, value) -> bool:
        if isinstance(value, types.ModuleType):
            return value in self.modules.values()
        mod = getattr(value, "__module__", None) or ""
        return mod.startswith("gated_lib.grading") and (isinstance(value, (types.FunctionType, type)))

    # -- restore -------------------------------------------------------------------------------

    def restore(self) -> list[str]:
        """Put back every recorded binding; return labels of what had been changed."""
        changed: list[str] = []
        b = vars(builtins)
        for k, v in self.builtins.items():
            if b.get(k, _MISSING) is not v:
                b[k] = v
                changed.append(f"builtins.{k}")
        for k, v in self.sys_hooks.items():
            if getattr(sys, k) is not v:
                setattr(sys, k, v)
                changed.append(f"sys.{k}")
        finder = getattr(self, "finder", None)
        if finder is not None and (not sys.meta_path or sys.meta_path[0] is not finder):
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)
            sys.meta_path.insert(0, finder)
            changed.append("sys.meta_path")
        for name, mod in list(self.modules.items()):
            if sys.modules.get(name) is not mod:
                sys.modules[name] = mod
                changed.append(f"sys.modules[{name!r}]")
            d = vars(mod)
            for k, v in self.bindings[name].items():
                if d.get(k, _MISSING) is not v:
                    d[k] = v
                    changed.append(f"{name}.{k}")
            for k, (obj, pristine) in self.data.get(name, {}).items():
                if d.get(k, _MISSING) is not obj:
                    d[k] = obj
                    changed.append(f"{name}.{k}")
                if isinstance(obj, (dict, list, set)) and not _same(obj, pristine):
                    _reset(obj, pristine)
                    changed.append(f"{name}.{k} (content)")
        for fn, (code, defaults, kwdefaults) in self.functions.items():
            if fn.__code__ is not code or fn.__defaults__ is not defaults or fn.__kwdefaults__ is not kwdefaults:
                fn.__code__, fn.__defaults__, fn.__kwdefaults__ = code, defaults, kwdefaults
                changed.append(f"{fn.__module__}.{fn.__qualname__} (code)")
        for cls, attrs in self.classes.items():
            current = vars(cls)
            for k, v in attrs.items():
                if current.get(k, _MISSING) is not v:
                    try:
                        setattr(cls, k, v)
                    except (AttributeError, TypeError):
                        continue
                    changed.append(f"{cls.__module__}.{cls.__qualname__}.{k}")
            for k in [k for k in current if k not in attrs]:
                try:
                    delattr(cls, k)           # an added method that overrides a base class's
                except (AttributeError, TypeError):
                    continue
                changed.append(f"{cls.__module__}.{cls.__qualname__}.{k}")
        if self.shell is not None:
            ns = self.shell.user_ns
            for k, v in self.names.items():
                if ns.get(k, _MISSING) is not v:
                    ns[k] = v
                    changed.append(f"the notebook's name {k!r}")
        return changed

    # -- IPython hooks -------------------------------------------------------------------------

    def scrub(self, raw: str) -> None:
        """Forget a cell that holds hidden tests: a later cell must not print its source
        (In, _ih, _i*, linecache) or the constants of its failing frame (sys.last_traceback)."""
        ns = self.shell.user_ns
        for hist in (ns.get("In"), ns.get("_ih"), getattr(self.shell.history_manager, "input_hist_parsed", None),
                     getattr(self.shell.history_manager, "input_hist_raw", None)):
            if isinstance(hist, list):
                for i, text in enumerate(hist):
                    if isinstance(text, str) and HIDDEN_MARKER in text:
                        hist[i] = ""
        for k in [k for k, v in ns.items() if k.startswith("_i") and isinstance(v, str) and HIDDEN_MARKER in v]:
            ns[k] = ""
        import linecache
        for k in [k for k, v in linecache.cache.items()
                  if isinstance(v, tuple) and len(v) > 2 and HIDDEN_MARKER in "".join(v[2] or [])]:
            del linecache.cache[k]
        for k in ("last_traceback", "last_value", "last_type", "last_exc"):
            if hasattr(sys, k):
                setattr(sys, k, None)
        if hasattr(self.shell, "_last_traceback"):
            self.shell._last_traceback = None

    def restore_events(self) -> None:
        for event, callbacks in self.shell.events.callbacks.items():
            pristine = self.events.get(event, [])
            if callbacks != pristine:      # removed silently: extensions may register some too
                callbacks[:] = pristine

    def note(self, changed: list[str]) -> None:
        for label in changed:
            if label not in self.tampered:
                self.tampered.append(label)

    def attach(self, shell) -> None:
        self.shell = shell
        # ipykernel replaced the streams after capture(): a cell that swaps them to hide the guard's
        # message (or a failure) is put back like any other change
        self.sys_hooks["stdout"], self.sys_hooks["stderr"] = sys.stdout, sys.stderr
        shell.events.register("pre_run_cell", self.before_cell)
        shell.events.register("post_run_cell", self.after_cell)
        self.events = {k: list(v) for k, v in shell.events.callbacks.items()}
        self.xmode = getattr(shell.InteractiveTB, "mode", "Context")

    def before_cell(self, info=None) -> None:
        # a failing hidden test must not show its own lines (the answer key of a multiple-choice
        # question is one) as traceback context: only the checker's message
        raw = getattr(info, "raw_cell", "") or ""
        try:
            self.shell.InteractiveTB.set_mode(mode="Minimal" if HIDDEN_MARKER in raw else self.xmode)
        except Exception:  # noqa: BLE001 - an IPython without this API: tracebacks stay as they are
            pass
        self.note(self.restore())
        if self.tampered:
            shown = ", ".join(self.tampered[:8]) + (" ..." if len(self.tampered) > 8 else "")
            print(f"gated-sandbox: tampering with the grading environment detected and undone "
                  f"(changed by an earlier cell: {shown}); no automatic points from here on.",
                  file=sys.stderr, flush=True)

    def after_cell(self, result=None) -> None:
        if self.shell is None:
            return
        raw = getattr(getattr(result, "info", None), "raw_cell", "") or ""
        if HIDDEN_MARKER in raw:
            self.scrub(raw)
        # a cell's own hooks (event callbacks, a trace function) must not see the cells that follow
        self.restore_events()
        if sys.gettrace() is not None:
            sys.settrace(None)
        if sys.getprofile() is not None:
            sys.setprofile(None)
        for k, v in list(self.shell.user_ns.items()):
            if k not in self.names and not k.startswith("_") and self._is_protected_object(v):
                self.names[k] = v


def _class_protected(module: str) -> bool:
    # gated_lib's classes (the checkers' monitors, GradingFailure) and torch's tensors and modules
    # (the reference of the torch-based checks: torch.nn.GRU, Module.parameters, Tensor.numel ...)
    return module.startswith(("gated_lib", "torch.nn.modules", "torch._tensor", "torch.nn.parameter"))


class _LateImports:
    """Snapshot protected modules imported *after* capture (torch, by the notebook's own import)
    the moment their code has run, before the importing cell can change them."""

    def __init__(self, guard: Guard):
        self.guard = guard

    @classmethod
    def install(cls, guard: Guard) -> None:
        guard.finder = cls(guard)
        sys.meta_path.insert(0, guard.finder)

    def find_spec(self, name, path=None, target=None):
        if "." in name or not name.startswith(_LATE_PREFIXES):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader, self.guard)
                return spec
        return None


class _Loader:
    def __init__(self, loader, guard):
        self._loader, self._guard = loader, guard

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if "." in module.__name__:
            return
        if module.__name__ == "torch":
            # torch imports torch._dynamo lazily (creating any torch.optim optimizer does) and that
            # import rebinds torch.manual_seed & co. to wrappers: torch's own doing, not tampering.
            # Import it now (about 2 s), so that the snapshot below already holds those bindings.
            try:
                importlib.import_module("torch._dynamo")
            except Exception:  # noqa: BLE001 - never break an import
                pass
        # a package is complete once its top-level module has run (torch/__init__ imports its
        # submodules and finishes setting up their classes): snapshot the whole tree then
        try:
            prefix = module.__name__ + "."
            for name, mod in list(sys.modules.items()):
                if mod is not None and (name == module.__name__ or name.startswith(prefix)):
                    self._guard.add_module(name, mod)
        except Exception:  # noqa: BLE001 - never break an import
            pass

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _Missing:
    pass


_MISSING = _Missing()


def _same(obj, pristine) -> bool:
    try:
        return bool(obj == pristine)
    except Exception:  # noqa: BLE001 - values that do not compare (arrays): not checked
        return True


def _reset(obj, pristine) -> None:
    """Put `pristine`'s content back into the mutable `obj` (other references see it too)."""
    if isinstance(obj, dict):
        obj.clear()
        obj.update(copy.deepcopy(pristine))
    elif isinstance(obj, list):
        obj[:] = copy.deepcopy(pristine)
    elif isinstance(obj, set):
        obj.clear()
        obj.update(pristine)
