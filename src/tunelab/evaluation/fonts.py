"""Plot text in any script. matplotlib draws text only with the families it is given (DejaVu Sans
by default, which has no Chinese, Japanese or Korean glyphs), so a label such as 家具 came out as
empty boxes, with one warning per character. Every plot runs under `readable_text`: its text falls
back to an installed CJK font, found on first need (matplotlib's font cache predates fonts
installed later); where none is installed, one warning says what to install."""

from __future__ import annotations

import functools
import threading
import warnings

# Families that draw CJK text, by preference; each is a common system package.
CJK_FAMILIES = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
                "Source Han Sans", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback",
                "IPAexGothic", "IPAGothic", "TakaoGothic", "Unifont")
FONT_HINT = ("install a font that draws them (Debian/Ubuntu: `apt-get install fonts-noto-cjk` or "
             "fonts-wqy-microhei; macOS and Windows have one)")


class MissingGlyphsWarning(UserWarning):
    """Some characters of a plot's text had no installed font: they show as boxes."""


_scanned = False
# rc_context and catch_warnings change process-wide state: one plot at a time (server threads plot
# too). The system font scan happens under this lock as well.
_plotting = threading.RLock()


def cjk_families() -> list[str]:
    """The CJK families matplotlib knows now, in CJK_FAMILIES order."""
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist}
    return [name for name in CJK_FAMILIES if name in known]


def system_cjk_fonts() -> dict[str, str]:
    """The font files of this machine that draw CJK text: path -> family (one of CJK_FAMILIES)."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    found = {}
    for path in font_manager.findSystemFonts():
        try:
            name = FT2Font(path).family_name
        except (OSError, RuntimeError, ValueError):
            continue
        if name in CJK_FAMILIES:
            found[path] = name
    return found


def _register_system_cjk_fonts() -> bool:
    """Add the system's CJK fonts that matplotlib's cached font list lacks; once a process.
    True when any was added."""
    global _scanned
    if _scanned:
        return False
    _scanned = True
    from matplotlib import font_manager

    before = set(cjk_families())
    for path, name in system_cjk_fonts().items():
        if name not in before:
            font_manager.fontManager.addfont(path)
    return bool(set(cjk_families()) - before)


def _missing(caught) -> bool:
    return any("missing from font" in str(w.message) for w in caught)


def _draw(plot, args, kwargs):
    """`plot` run with the CJK families as fallbacks; its result and the warnings it raised."""
    from matplotlib import rc_context, rcParams

    families = [*rcParams["font.family"], *cjk_families()]
    with rc_context({"font.family": families}), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = plot(*args, **kwargs)
    return result, caught


def readable_text(plot):
    """Decorator for a function that draws and saves one figure (see the module docstring)."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with _plotting:
            result, caught = _draw(plot, args, kwargs)
            if _missing(caught) and _register_system_cjk_fonts():
                result, caught = _draw(plot, args, kwargs)  # again, with the fonts found on this machine
        for w in caught:
            if "missing from font" not in str(w.message):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if _missing(caught):
            warnings.warn(MissingGlyphsWarning(
                f"{result}: some characters of its labels have no installed font and show as boxes; "
                + FONT_HINT + "."), stacklevel=2)
        return result

    return wrapper
