"""The student's options, each declared once: what turns it on, what it needs of the rest of the config, and
which backends implement it.

A backend is one way to run a student:

    torch        HDRNet.forward (students/hdrnet.py), the definition every other backend is checked against
    fused        FastStudent (students/fused.py): C++ low-res copy and full-res pass around the torch network
    torchscript  distill.deploy.export.export_torchscript (ExportableStudent, scripted)
    onnx         distill.deploy.export.export_onnx (ExportableStudent, traced with a dynamic image size)

Each option below is one small class; ``OPTIONS`` lists them. ``HDRNetConfig`` runs every option's ``check``;
``unsupported(config, backend)`` names the options a config turns on that a backend lacks, and
``require(config, backend)`` raises ``UnsupportedOption`` for them, naming the backends that have them. The
fused path and the exporters ask these two and nothing else; tests/students/test_backends.py runs every
option on every backend this file claims, and checks that every other pair is refused before anything is
written. To add an option: a field in ``HDRNetConfig``, a class here (with ``example``, the smallest config
that turns it on), the torch code, and each backend you claim.

Options that were removed (``REMOVED``) are dropped from old configs at their default and refused otherwise
(``drop_removed``), so that an old checkpoint either loads as it was trained or says why it cannot.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

BACKENDS = ("torch", "fused", "torchscript", "onnx")
ALL = frozenset(BACKENDS)


class UnsupportedOption(ValueError):
    """A student option that the requested backend does not implement."""


class RemovedOption(ValueError):
    """A config (an old checkpoint's) that turns on an option this version no longer has."""


class Option:
    """One student option. ``fields``: the ``HDRNetConfig`` fields it reads (the first is its name);
    ``backends``: where it is implemented; ``missing``: backend -> why it is not (for the message);
    ``example``: the smallest config that turns it on (with what it needs)."""

    fields: ClassVar[tuple[str, ...]] = ()
    backends: ClassVar[frozenset[str]] = ALL
    missing: ClassVar[dict[str, str]] = {}
    example: ClassVar[dict[str, Any]] = {}

    @classmethod
    def name(cls) -> str:
        return cls.fields[0]

    @staticmethod
    def active(cfg) -> bool:
        """Whether ``cfg`` turns this option on."""
        raise NotImplementedError

    @staticmethod
    def check(cfg) -> None:
        """Raise ValueError if the option's value, or what it needs of the rest of ``cfg``, is wrong."""


def _needs_log(cfg, name: str) -> None:
    if getattr(cfg, name) and cfg.input_encoding != "log":
        raise ValueError(f"{name} needs input_encoding 'log' (it decodes the log window)")


class InputEncoding(Option):
    """``log``: the student works on log2 radiance over a fixed window (``hdrnet.encode_input``)."""
    fields = ("input_encoding",)
    example = {"input_encoding": "log"}

    @staticmethod
    def active(cfg) -> bool:
        return cfg.input_encoding != "none"

    @staticmethod
    def check(cfg) -> None:
        if cfg.input_encoding not in ("none", "log"):
            raise ValueError(f"input_encoding must be 'none' or 'log', got '{cfg.input_encoding}'")


class StatsBins(Option):
    """Luminance histograms (per grid cell and per image) as extra network inputs (``hdrnet.with_histograms``)."""
    fields = ("stats_bins",)
    example = {"stats_bins": 4}

    @staticmethod
    def active(cfg) -> bool:
        return cfg.stats_bins > 0

    @staticmethod
    def check(cfg) -> None:
        if cfg.stats_bins < 0:
            raise ValueError(f"stats_bins must be >= 0, got {cfg.stats_bins}")


class StatsLuma(Option):
    """The histograms count log luminance (``hdrnet.luma_guide_input``), not the mean of the log channels."""
    fields = ("stats_luma",)
    example = {"input_encoding": "log", "stats_bins": 4, "stats_luma": True}

    @staticmethod
    def active(cfg) -> bool:
        return bool(cfg.stats_luma)

    @staticmethod
    def check(cfg) -> None:
        _needs_log(cfg, "stats_luma")


class DetailInput(Option):
    """The full-res fine-detail energy as a 4th low-res channel (``hdrnet.detail_energy``)."""
    fields = ("detail_input",)
    example = {"detail_input": True}

    @staticmethod
    def active(cfg) -> bool:
        return bool(cfg.detail_input)


class WhitePercentile(Option):
    """The output divided by a percentile of its own luma, clamped (``hdrnet.normalise_white``)."""
    fields = ("white_percentile",)
    example = {"white_percentile": 99.5}

    @staticmethod
    def active(cfg) -> bool:
        return cfg.white_percentile is not None

    @staticmethod
    def check(cfg) -> None:
        if cfg.white_percentile is not None and not 0.0 < cfg.white_percentile <= 100.0:
            raise ValueError(f"white_percentile must be in (0, 100] or null, got {cfg.white_percentile}")


class OutputEncoding(Option):
    """``srgb_log``: the grid's output is log radiance, decoded to display sRGB (``hdrnet.decode_output``)."""
    fields = ("output_encoding",)
    example = {"input_encoding": "log", "output_encoding": "srgb_log"}

    @staticmethod
    def active(cfg) -> bool:
        return cfg.output_encoding != "none"

    @staticmethod
    def check(cfg) -> None:
        if cfg.output_encoding not in ("none", "srgb_log"):
            raise ValueError(f"output_encoding must be 'none' or 'srgb_log', got '{cfg.output_encoding}'")
        if cfg.output_encoding == "srgb_log" and cfg.input_encoding != "log":
            raise ValueError("output_encoding 'srgb_log' needs input_encoding 'log' (it inverts that encoding)")


class GuideLuma(Option):
    """The guide reads the encoded log luminance in place of the channels' mean (``hdrnet.luma_guide_input``)."""
    fields = ("guide_luma",)
    example = {"input_encoding": "log", "guide_luma": True}

    @staticmethod
    def active(cfg) -> bool:
        return bool(cfg.guide_luma)

    @staticmethod
    def check(cfg) -> None:
        _needs_log(cfg, "guide_luma")


class GuideBilateral(Option):
    """The guide reads the image with its log luminance replaced by its bilateral base
    (``students.grid.bilateral_base``)."""
    fields = ("guide_bilateral", "guide_bilateral_stops")
    # onnx: the bilateral grid's size is a shape computation on the input's (distill/deploy/onnx_slice.py)
    example = {"input_encoding": "log", "guide_bilateral": 0.05}

    @staticmethod
    def active(cfg) -> bool:
        return cfg.guide_bilateral > 0

    @staticmethod
    def check(cfg) -> None:
        if not 0.0 <= cfg.guide_bilateral <= 0.1 or cfg.guide_bilateral_stops <= 0:
            raise ValueError(f"guide_bilateral must be in [0, 0.1] (a fraction of the longer side) and "
                             f"guide_bilateral_stops > 0, got {cfg.guide_bilateral} and {cfg.guide_bilateral_stops}")
        _needs_log(cfg, "guide_bilateral")


class WhiteBasePercentile(Option):
    """The exposure that puts the base layer's percentile at white, folded into the grid's biases
    (``HDRNet.expose``)."""
    fields = ("white_base_percentile",)
    # onnx: the pixels picked by TopK with the percentile's index as shape arithmetic (distill/deploy/onnx_slice.py)
    example = {"input_encoding": "log", "output_encoding": "srgb_log", "guide_bilateral": 0.05,
               "white_base_percentile": 99.0}

    @staticmethod
    def active(cfg) -> bool:
        return cfg.white_base_percentile is not None

    @staticmethod
    def check(cfg) -> None:
        if cfg.white_base_percentile is None:
            return
        if not 0.0 < cfg.white_base_percentile <= 100.0:
            raise ValueError(f"white_base_percentile must be in (0, 100] or null, got {cfg.white_base_percentile}")
        if not cfg.guide_bilateral or cfg.output_encoding != "srgb_log" or cfg.white_percentile is not None:
            raise ValueError("white_base_percentile needs guide_bilateral > 0 and output_encoding 'srgb_log', "
                             "and replaces white_percentile (set that to null)")


OPTIONS: tuple[type[Option], ...] = (InputEncoding, StatsBins, StatsLuma, DetailInput, WhitePercentile,
                                     OutputEncoding, GuideLuma, GuideBilateral, WhiteBasePercentile)


def check_config(cfg) -> None:
    """Every option's ``check`` (``HDRNetConfig.__post_init__``)."""
    for opt in OPTIONS:
        opt.check(cfg)


def unsupported(cfg, backend: str) -> list[str]:
    """Names of the options ``cfg`` turns on that ``backend`` does not implement (empty: it runs them all)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend '{backend}' (expected one of {', '.join(BACKENDS)})")
    return [opt.name() for opt in OPTIONS if opt.active(cfg) and backend not in opt.backends]


def require(cfg, backend: str, who: str = "") -> None:
    """Raise ``UnsupportedOption`` if ``cfg`` turns on an option ``backend`` lacks, naming each such option,
    why, and the backends that do have it. Call it before writing anything."""
    names = unsupported(cfg, backend)
    if not names:
        return
    by_name = {opt.name(): opt for opt in OPTIONS}
    parts = []
    for n in names:
        opt = by_name[n]
        why = opt.missing.get(backend)
        have = ", ".join(b for b in BACKENDS if b in opt.backends)
        parts.append(f"{n}={getattr(cfg, n)!r} ({why}; runs on: {have})" if why else
                     f"{n}={getattr(cfg, n)!r} (runs on: {have})")
    prefix = f"{who}: " if who else ""
    raise UnsupportedOption(f"{prefix}the '{backend}' backend does not implement student option"
                            f"{'s' if len(parts) > 1 else ''} " + "; ".join(parts))


# -- removed options ------------------------------------------------------------------------------------
# name -> (its default, why it went, the last commit that had it)
REMOVED: dict[str, tuple[Any, str, str]] = {
    "guide_blur": (0.0, "no recipe used it and it measured worse than guide_bilateral (the blurred guide lost "
                        "2-3.5 dB at strong edges; Durand-Dorsey 6000 steps: 32.38 vs 32.70-32.83 dB)", "0.1.0, commit d0409b9"),
    "guide_texture_stops": (0.0, "it worked only with guide_blur, which was removed, and measured worse "
                                 "(30.10 vs 30.64 dB at 2000 steps)", "0.1.0, commit d0409b9"),
}


def drop_removed(student_cfg: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """``student_cfg`` without the ``REMOVED`` keys that sit at their default (an old config: it means the same
    here). Raises ``RemovedOption`` for one that is set, naming the option and the commit that still has it."""
    out = dict(student_cfg)
    for name, (default, why, commit) in REMOVED.items():
        if name not in out:
            continue
        value = out.pop(name)
        if value != default:
            at = f"{where}: " if where else ""
            raise RemovedOption(
                f"{at}student option {name}={value!r} was removed ({why}). It was last in hdr-distill "
                f"{commit}: load this student there (git checkout {commit.split()[-1]}), or retrain it without {name}.")
    return out
