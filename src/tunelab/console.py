"""Where progress is shown: whether a person watches stderr (a terminal or a notebook), and which
tqdm draws a bar there. The evaluation's scoring bar and the jobs' training bar both ask here, so
that a notebook gets the same kind of bar from either."""

from __future__ import annotations

import importlib.util
import sys


def in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def notebook_widgets() -> bool:
    """Whether tqdm can draw its widget bar: ipywidgets is installed (`pip install jupyterlab` does
    not bring it)."""
    return importlib.util.find_spec("ipywidgets") is not None


def interactive(stream=None) -> bool:
    """Whether a progress bar on `stream` (default stderr) is seen by a person: a terminal, or a
    Jupyter kernel (where tqdm draws a widget). Pipes, files and CI logs get no bar."""
    stream = stream if stream is not None else sys.stderr
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):  # closed or replaced streams
        pass
    return in_notebook()


def tqdm_class():
    """tqdm.auto's bar: a widget in a notebook, text elsewhere. In a notebook without ipywidgets,
    tqdm.auto prints a TqdmWarning ('IProgress not found. Please update jupyter and ipywidgets')
    into the cell and then draws the text bar anyway; there the text bar comes without the warning."""
    if in_notebook() and not notebook_widgets():
        from tqdm.std import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm


def import_tqdm_auto_quietly() -> None:
    """Import tqdm.auto, as transformers and huggingface_hub do on import, without the TqdmWarning
    it prints into a notebook lacking ipywidgets: that warning names no tunelab call and asks for a
    Jupyter extra that is optional here (the bars fall back to text and work). Once imported, tqdm.auto
    is not imported again, so their import stays quiet; nothing else is filtered."""
    if "tqdm.auto" in sys.modules or not in_notebook() or notebook_widgets():
        return
    import warnings

    from tqdm import TqdmWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TqdmWarning)
        import tqdm.auto  # noqa: F401 - imported for its side effect: the cached module
