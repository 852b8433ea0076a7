"""IPython startup file for the grading kernel (runs INSIDE the student's process before any cell).

Neutralises Colab-only imports: ``from google.colab import drive; drive.mount(...)`` becomes a
no-op that says so, instead of an ImportError that would stop the rest of the cell.

With ``GRADER_DATA_PATH=fast`` it also installs the fast MNIST data path: ``fastdata.py`` from the
runtime directory named by ``GRADER_RUNTIME_DIR``, loaded as the module ``_grader_fastdata`` (where
harvest.py reads its report). It patches torchvision only when the notebook imports it.

With a share of a GPU (``GRADER_GPU_MEMORY_FRACTION``) it installs that share's memory cap (``gpucap.py``).
"""

import importlib
import importlib.abc
import importlib.machinery
import sys


def _colab_call(qualified):
    def call(*args, **kwargs):
        shown = ", ".join([repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()])
        print(f"[grader] {qualified}({shown}) skipped: Colab is not available while grading")
        return {} if qualified.endswith("upload") else None

    return call


class _ColabStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``google.colab`` and its submodules as modules whose every function is a no-op."""

    def find_spec(self, name, path=None, target=None):
        if name == "google.colab" or name.startswith("google.colab."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        if name == "google" and importlib.machinery.PathFinder.find_spec("google") is None:
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        call_factory = _colab_call
        module.__path__ = []
        name = module.__name__

        def __getattr__(attribute):
            if attribute.startswith("__"):
                raise AttributeError(attribute)
            if name in ("google", "google.colab"):  # drive, files, output, ...: submodules
                return importlib.import_module(f"{name}.{attribute}")
            return call_factory(f"{name}.{attribute}")

        module.__getattr__ = __getattr__


sys.meta_path.insert(0, _ColabStub())
del _ColabStub


def _grader_install(name, variable, value=None):
    """Load ``<GRADER_RUNTIME_DIR>/<name>.py`` as ``_grader_<name>`` and call its ``install()`` when the
    environment sets ``variable`` (to ``value``, if given).

    fastdata.py (harvest.py reads its report from ``_grader_fastdata``; without it the stock path ran)
    and gpucap.py (the GPU memory cap of a student given a share of a GPU).
    """
    import importlib.util
    import os

    path = os.path.join(os.environ.get("GRADER_RUNTIME_DIR", ""), f"{name}.py")
    setting = os.environ.get(variable)
    if not setting or (value is not None and setting != value) or not os.path.isfile(path):
        return
    spec = importlib.util.spec_from_file_location(f"_grader_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[f"_grader_{name}"] = module
    try:
        spec.loader.exec_module(module)
        module.install()
    except Exception as error:
        sys.modules.pop(f"_grader_{name}", None)
        print(f"[grader] {name}.py could not be installed: {error!r}")


_grader_install("fastdata", "GRADER_DATA_PATH", "fast")
_grader_install("gpucap", "GRADER_GPU_MEMORY_FRACTION")
del _grader_install
