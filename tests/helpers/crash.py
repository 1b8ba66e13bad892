"""A process killed part-way through writing its outputs, without killing the test process."""

from __future__ import annotations


def die_after_first_write(monkeypatch, module, name: str = "write_jsonl") -> None:
    """`module.name` writes its first file as usual, then the "process" dies (KeyboardInterrupt
    stands for the kill): what is on disk then is what a kill -9 at that point leaves."""
    real = getattr(module, name)

    def write_then_die(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(module, name, write_then_die)
