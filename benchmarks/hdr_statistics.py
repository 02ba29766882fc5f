"""Synthetic vs real HDR: the luminance statistics of the synthetic training scenes beside real HDR views.

    python -m benchmarks.hdr_statistics --real .cache/hdr --synthetic synthetic_hdr_photos
        [--real-split all] [--synthetic-split train] [--max-images 0] [--per-panorama] [--json stats.json]

``--real`` is the folder ``python -m distill.data.real_hdr`` wrote (views cut from real HDR panoramas);
``--synthetic`` a data option (conf/data/<option>.yaml) whose ``data.train`` (or ``data.val``) source is what
a tone-mapping student trains on, e.g. ``synthetic_hdr`` (embedded photos only) or ``synthetic_hdr_photos``
(needs ``make photos``). Every image is measured whole, on its Rec. 709 luminance L, relative to its own median
(so a scene's exposure does not matter):

  log2(L/med) p1 .. p99.9   percentiles of the log luminance relative to the median (p50 is 0 by definition;
                            L floored at 2^-30 of the median, so exact zeros read as -30)
  > 4 / 8 / 12 stops        fraction of pixels more than k stops above the median (light sources, sky, sun)
  near black                fraction below 2^-10 of the peak (dark rooms, night: where a noise floor shows)
  below 2^-20 peak          fraction more than 20 stops below the peak (under a 20-stop log window at the peak)
  exact zeros               fraction of pixels with L = 0
  at peak                   fraction within 2 % of the peak luminance (a clipped plateau, not one hot pixel)
  peak / median             stops from the median to the peak
  dynamic range             log2(peak / p1 of the non-zero L), as distill.data.hdr_synth.dynamic_range_stops
  colour cast               stops between the brightest and the dimmest channel mean (grey world)

The table gives, per statistic, the median over images and the 10th-90th percentile range over images for each
set, and how many real images fall outside the synthetic set's whole range (min..max over its images): a
statistic where many do is one the synthetic scenes do not cover.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from benchmarks._cli import parser
from distill.core.color import luminance

FLOOR_STOPS = 30.0  # log2(L / median) is floored at -30
PERCENTILES = (1.0, 10.0, 90.0, 99.0, 99.9)
ABOVE = (4, 8, 12)

# (key, label, format): the rows of the table, in order
ROWS: list[tuple[str, str, str]] = (
    [(f"log_p{p:g}", f"log2(L/med) p{p:g}", "{:+.2f}") for p in PERCENTILES]
    + [(f"above_{k}", f"> {k} stops above median", "{:.2%}") for k in ABOVE]
    + [("near_black", "near black (< 2^-10 peak)", "{:.2%}"),
       ("below_20", "below 2^-20 peak", "{:.2%}"),
       ("zeros", "exact zeros", "{:.3%}"),
       ("at_peak", "at peak (>= 0.98 peak)", "{:.3%}"),
       ("peak_over_median", "peak / median (stops)", "{:.1f}"),
       ("dynamic_range", "dynamic range (stops)", "{:.1f}"),
       ("cast", "colour cast (stops)", "{:.2f}")]
)


def image_statistics(linear: np.ndarray) -> dict[str, float]:
    """The statistics above for one linear RGB image [H,W,3] (values >= 0)."""
    rgb = np.asarray(linear, np.float32)
    lum = luminance(rgb).ravel().astype(np.float64)
    peak = float(lum.max())
    if peak <= 0:
        raise ValueError("image_statistics: the image is black")
    med = float(np.median(lum))
    if med <= 0:  # more than half the pixels exactly black: measure against the median of the rest
        med = float(np.median(lum[lum > 0]))
    rel = np.log2(np.maximum(lum / med, 2.0 ** -FLOOR_STOPS))
    out = {f"log_p{p:g}": float(v) for p, v in zip(PERCENTILES, np.percentile(rel, PERCENTILES))}
    out.update({f"above_{k}": float(np.mean(rel > k)) for k in ABOVE})
    pos = lum[lum > 0]
    means = rgb.reshape(-1, 3).mean(axis=0).astype(np.float64)
    out.update(
        near_black=float(np.mean(lum < peak * 2.0 ** -10)),
        below_20=float(np.mean(lum < peak * 2.0 ** -20)),
        zeros=float(np.mean(lum == 0)),
        at_peak=float(np.mean(lum >= 0.98 * peak)),
        peak_over_median=float(np.log2(peak / med)),
        dynamic_range=float(np.log2(peak / np.percentile(pos, 1.0))),
        cast=float(np.log2(means.max() / means.min())) if means.min() > 0 else FLOOR_STOPS,
    )
    return out


def measure(source, max_images: int = 0) -> list[dict]:
    """``image_statistics`` of each item of a source (the first ``max_images`` when > 0), with its name."""
    n = len(source) if max_images <= 0 else min(len(source), max_images)
    rows = []
    for i in range(n):
        item = source[i]
        rows.append({"name": item.name, **image_statistics(item.linear),
                     **({"panorama": item.meta["view"]["panorama"]} if "view" in item.meta else {})})
    return rows


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Per statistic: median, p10, p90, min and max over the images."""
    out = {}
    for key, _, _ in ROWS:
        v = np.array([r[key] for r in rows], np.float64)
        out[key] = {"median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
                    "p90": float(np.percentile(v, 90)), "min": float(v.min()), "max": float(v.max())}
    return out


def outside(real: list[dict], synthetic: dict[str, dict[str, float]]) -> dict[str, tuple[int, int]]:
    """Per statistic: how many real images lie below / above the synthetic set's min..max."""
    return {key: (sum(r[key] < synthetic[key]["min"] for r in real), sum(r[key] > synthetic[key]["max"] for r in real))
            for key, _, _ in ROWS}


def table(columns: dict[str, dict[str, dict[str, float]]], beyond: dict[str, tuple[int, int]] | None = None,
          n_real: int = 0) -> str:
    """A Markdown table: one row per statistic, per column ``median [p10, p90]``; and the real images outside
    the synthetic range (below / above) when ``beyond`` is given."""
    head = ["statistic (per image)", *[f"{name}: median [p10, p90]" for name in columns]]
    if beyond is not None:
        head.append(f"real outside synthetic min..max (below / above, of {n_real})")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, label, fmt in ROWS:
        cells = [label]
        for summary in columns.values():
            s = summary[key]
            cells.append(f"{fmt.format(s['median'])} [{fmt.format(s['p10'])}, {fmt.format(s['p90'])}]")
        if beyond is not None:
            lo, hi = beyond[key]
            cells.append(f"{lo} / {hi}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def synthetic_source(option: str, split: str, overrides: list[str]):
    """``data.<train|val>`` of the data option ``option``, instantiated."""
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from distill.cli import CONF_DIR

    if not (Path(CONF_DIR) / "data" / f"{option}.yaml").is_file():
        opts = sorted(p.stem for p in (Path(CONF_DIR) / "data").glob("*.yaml"))
        raise SystemExit(f"hdr_statistics: no data option {option!r}; options: {', '.join(opts)}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"data={option}", *overrides])
    try:
        return instantiate(cfg.data[split])
    except Exception as e:  # a missing `make photos` set, for one
        raise SystemExit(f"hdr_statistics: data={option} data.{split} cannot be built: {e}") from None


def main(argv: list[str] | None = None) -> None:
    ap = parser("benchmarks.hdr_statistics", __doc__)
    ap.add_argument("--real", default=".cache/hdr", help="folder written by python -m distill.data.real_hdr")
    ap.add_argument("--real-split", choices=("all", "train", "heldout"), default="all", help="which real views")
    ap.add_argument("--synthetic", default="synthetic_hdr_photos", help="data option of the synthetic scenes")
    ap.add_argument("--synthetic-split", choices=("train", "val"), default="train",
                    help="data.train or data.val of that option")
    ap.add_argument("--override", action="append", default=[],
                    help="a Hydra override for the synthetic data config (repeatable), e.g. data.photos=DIR")
    ap.add_argument("--max-images", type=int, default=0, help="measure at most this many images per set (0: all)")
    ap.add_argument("--per-panorama", action="store_true", help="also a table per real panorama")
    ap.add_argument("--json", default=None, help="write every image's statistics and the summaries here")
    a = ap.parse_args(argv)

    from distill.data.real_hdr import RealHDRViews

    try:
        real_src = RealHDRViews(a.real, split=a.real_split)
    except FileNotFoundError as e:
        raise SystemExit(f"hdr_statistics: {e}") from None
    synth_src = synthetic_source(a.synthetic, a.synthetic_split, a.override)
    print(f"hdr_statistics: measuring {min(len(synth_src), a.max_images or len(synth_src))} synthetic scenes "
          f"(data={a.synthetic} data.{a.synthetic_split}) and {min(len(real_src), a.max_images or len(real_src))} "
          f"real views ({a.real}, {a.real_split}: {', '.join(real_src.panoramas)}) ...", file=sys.stderr, flush=True)
    synth_rows, real_rows = measure(synth_src, a.max_images), measure(real_src, a.max_images)
    synth, real = summarise(synth_rows), summarise(real_rows)
    columns = {f"synthetic ({a.synthetic}, {len(synth_rows)})": synth,
               f"real views ({a.real_split}, {len(real_rows)})": real}
    print(table(columns, outside(real_rows, synth), len(real_rows)))
    per_pano = {}
    if a.per_panorama:
        for name in sorted({r["panorama"] for r in real_rows}):
            per_pano[name] = summarise([r for r in real_rows if r["panorama"] == name])
        print()
        print(table({f"{name} ({sum(r['panorama'] == name for r in real_rows)})": s for name, s in per_pano.items()}))
    if a.json:
        from distill.core.atomic import atomic_write_json

        atomic_write_json(a.json, {"synthetic": {"option": a.synthetic, "split": a.synthetic_split,
                                                 "summary": synth, "images": synth_rows},
                                   "real": {"folder": a.real, "split": a.real_split, "summary": real,
                                            "images": real_rows, "per_panorama": per_pano}})


if __name__ == "__main__":
    main()
