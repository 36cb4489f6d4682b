"""CIFAR-10-C generation: jaxdiv's jitted corruptions against the ``imagecorruptions`` package.

    python benchmarks/corruptions.py            # all 15 x 5 corruptions of the 10,000 test images
    python benchmarks/corruptions.py --quick    # 1,000 images, 4 reference images per cell

jaxdiv corrupts the CIFAR-10 test images (from TFDS_DATA_DIR) in batches of 1,000 on the
CPU (``JAX_PLATFORMS=cpu`` unless set), all 15 benchmark corruptions at severities 1-5; its
time includes compilation (one per corruption and severity) and is also given without it
(each cell's first batch is timed again after compiling). The reference is the
``imagecorruptions`` package, one image at a time, as the benchmark is produced: it is slow,
so it runs on the first ``--ref_images`` images of each cell and its time is extrapolated to
the full count (said in the output). The package carries ImageNet-size parameters only; its
per-image cost at those parameters on 32x32 images stands in for the CIFAR script's. Two
compatibility shims let it run on current libraries: ``np.float_`` (removed in NumPy 2,
used by ``fog``) is aliased to ``np.float64``, and skimage's ``gaussian(multichannel=True)``
(removed) is passed on as ``channel_axis=-1`` (``glass_blur``). Peak memory is the process's
peak resident set size (ru_maxrss) after each side.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import warnings

import numpy as np

os.environ.setdefault("JAX_PLATFORMS", "cpu")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxdiv.data import corruptions as C  # noqa: E402
from jaxdiv.data.corruptions.tables import BENCHMARK  # noqa: E402
from jaxdiv.data.datasets import load_split  # noqa: E402


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reference():
    try:
        import imagecorruptions
        import imagecorruptions.corruptions as icc
    except ImportError:
        return None
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # fog's plasma_fractal
    gaussian = icc.gaussian

    def compat_gaussian(image, *args, multichannel=None, **kw):
        if multichannel:
            kw["channel_axis"] = -1
        return gaussian(image, *args, **kw)

    icc.gaussian = compat_gaussian
    return imagecorruptions.corrupt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--ref_images", type=int, default=None)
    ap.add_argument("--batch_size", type=int, default=1000)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    n = args.images or (1000 if args.quick else 10000)
    ref_n = args.ref_images or (4 if args.quick else 20)
    split = load_split("cifar10", f"test[:{n}]")
    images, ids = split.images, split.ids
    print(f"load average {os.getloadavg()[0]:.1f}; {n} images, {len(BENCHMARK)} x 5 cells")

    per: dict[str, dict] = {}
    b = min(args.batch_size, n)
    for name in BENCHMARK:
        full = steady = 0.0
        for severity in C.SEVERITIES:
            t0 = time.perf_counter()
            C.corrupt(images, ids, name, severity, 0, batch_size=args.batch_size)
            full += time.perf_counter() - t0
            t1 = time.perf_counter()  # one batch again, compiled: the cost without compiling
            C.corrupt(images[:b], ids[:b], name, severity, 0, batch_size=args.batch_size)
            steady += (time.perf_counter() - t1) * (n / b)
        per[name] = {"jaxdiv_s": full, "jaxdiv_steady_s": steady}
    ours_total = sum(p["jaxdiv_s"] for p in per.values())
    ours_steady = sum(p["jaxdiv_steady_s"] for p in per.values())
    ours_rss = _peak_rss_mb()

    corrupt = _reference()
    result = {
        "images": n,
        "jaxdiv_s": ours_total,
        "jaxdiv_steady_s": ours_steady,
        "jaxdiv_peak_rss_mb": ours_rss,
        "per_corruption": per,
    }
    if corrupt is None:
        print("imagecorruptions is not installed: pip install imagecorruptions")
    else:
        warnings.simplefilter("ignore")
        ref_total = 0.0
        for name in BENCHMARK:
            t0 = time.perf_counter()
            for severity in C.SEVERITIES:
                for x in images[:ref_n]:
                    np.uint8(corrupt(x, severity=severity, corruption_name=name))
            cell = (time.perf_counter() - t0) * (n / ref_n)
            per[name]["reference_s"] = cell
            ref_total += cell
        result.update(
            reference_s=ref_total,
            reference_images_timed=ref_n,
            reference_peak_rss_mb=_peak_rss_mb(),
            ratio=ref_total / ours_total,
            ratio_steady=ref_total / ours_steady,
        )
    print(f"{'corruption':18s} {'jaxdiv s':>9s} {'no compile':>10s} {'reference s':>11s}")
    for name, p in per.items():
        print(
            f"{name:18s} {p['jaxdiv_s']:9.1f} {p['jaxdiv_steady_s']:10.1f} "
            f"{p.get('reference_s', float('nan')):11.1f}"
        )
    print(
        f"jaxdiv: {ours_total:.1f} s with compilation, {ours_steady:.1f} s without; "
        f"peak RSS {ours_rss:.0f} MB"
    )
    if "reference_s" in result:
        print(
            f"imagecorruptions: {result['reference_s']:.1f} s (timed on {ref_n} images per "
            f"cell, extrapolated to {n}); peak RSS {result['reference_peak_rss_mb']:.0f} MB"
        )
        print(
            f"ratio: {result['ratio']:.1f}x with compilation, {result['ratio_steady']:.1f}x without"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
