"""The optional parts of the install: which extra brings which modules, and the line that says what to install.

`pip install htsat-live` is the core (detect, tag, listen, events, bench, MQTT, metrics, ONNX Runtime and
OpenVINO); a command that needs more names its extra instead of failing on an import.
"""

from importlib.util import find_spec

EVAL_MODULES = ("pandas", "psds_eval", "sed_eval", "sed_scores_eval", "dcase_util", "sklearn", "matplotlib")
EXTRA_MODULES = {  # extra -> the top-level modules it installs that our code imports
    "gui": ("PySide6", "pyqtgraph"),
    "eval": EVAL_MODULES,
    "train": (*EVAL_MODULES, "scipy"),  # [train] includes [eval]
    "cluster": ("ray",),
    "web": ("aiohttp",),
}


def missing_extra(extra: str) -> str | None:
    """One line naming `extra` and how to install it when any of its modules is missing, else None."""
    absent = [module for module in EXTRA_MODULES[extra] if find_spec(module) is None]
    if not absent:
        return None
    return (
        f"needs the [{extra}] extra ({', '.join(absent)} not installed): pip install 'htsat-live[{extra}]', "
        f"or in a checkout: pip install -e '.[{extra}]'"
    )
