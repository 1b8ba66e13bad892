"""tunelab: local fine-tuning with OpenAI's fine-tuning workflow and API.

The Python API for notebooks (see tunelab.jobs.api and the README's "Python API (notebooks)"):
`build_dataset`, `prepare_data`, `create_job`, `get_job`, `list_jobs` and `Job` (`wait()`, `events()`, `results()`, `cancel()`),
`evaluate`, `compare` and `complete`. They are imported on first use, so `import tunelab` stays
cheap (no torch, no pandas) for the CLI and the server.
"""

__version__ = "0.1.0"

_API = ("Job", "build_dataset", "prepare_data", "create_job", "get_job", "list_jobs", "evaluate", "compare",
        "complete")
__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        from tunelab.jobs import api

        return getattr(api, name)
    raise AttributeError(f"module 'tunelab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
