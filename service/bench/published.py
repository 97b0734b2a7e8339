"""Published rank correlations of each proxy on NB201 and NB101, copied by hand from ``/work/shared/papers``.

Every entry names its table and its space (NB101 figures are CIFAR-10 only). ``target`` says which accuracy the
paper correlated against (from ``/work/shared/notes``); ``PAPER_C10_COLUMN`` maps it to the closest ``nb201.csv``
column so the report can also show our tau against the paper's own target. ``None`` means the paper does not give
the number.
"""

from __future__ import annotations

from dataclasses import dataclass

Triple = tuple[float | None, float | None, float | None]  # CIFAR-10, CIFAR-100, ImageNet16-120


@dataclass(frozen=True)
class Published:
    """One paper's figures for one proxy on one space (``nb201`` unless named)."""

    proxy: str
    source: str
    kendall: Triple
    spearman: Triple
    target: str
    ms_per_arch: float | None = None
    note: str = ""
    space: str = "nb201"


_NATS = "NATS-tss cifar10 ori-test / C100, IN16 x-test (mean over seeds)"
_EPS = "NB201-v1.1 cifar10 ori-test / C100, IN16 x-test (mean over seeds), NaN archs omitted"
_UNSTATED = "not stated (text: 'final validation accuracy')"
_GSNR = "NB201-v1.0 C10 ori-test / C100, IN16 x-test (repo logs)"
_AZ1 = "AZ-NAS paper, Table 1"
_IT1 = "InTrain paper, Table 1"
_ZC = "zero-cost-nas notebook (Abdelfattah et al.)"
_ZCT = "NB201-v1.0 cifar10-valid ori-test (model trained on the 25k split)"
_N101_TEST = "NB101 CIFAR-10 test accuracy, 108 epochs, whole space (423k cells)"
_N101 = "NB101 CIFAR-10 accuracy (split not stated), whole space (423k cells)"
_N101_EPS = "NB101 CIFAR-10 test accuracy, 108 epochs, whole space, NaN archs omitted"

PUBLISHED: tuple[Published, ...] = (
    Published(
        "az_nas", "AZ-NAS paper, Table 1", (0.741, 0.723, 0.710), (0.913, 0.900, 0.886), _NATS, 42.7, "GPU runtime"
    ),
    Published(
        "az_nas", "AZ-NAS notebook tss_general.ipynb (all 15,625)", (0.7409, None, None), (0.9127, None, None), _NATS
    ),
    Published("az_nas", "InTrain paper, Table 1", (0.712, 0.696, 0.673), (0.892, 0.880, 0.859), _UNSTATED),
    Published("az_expressivity", "AZ-NAS paper, Table 4 (1)", (0.569, 0.563, 0.506), (None,) * 3, _NATS),
    Published("az_progressivity", "AZ-NAS paper, Table 4 (2)", (0.521, 0.508, 0.489), (None,) * 3, _NATS),
    Published("az_trainability", "AZ-NAS paper, Table 4 (3)", (0.349, 0.353, 0.407), (None,) * 3, _NATS),
    Published("az_complexity", "AZ-NAS paper, Table 4 (4)", (0.578, 0.551, 0.517), (None,) * 3, _NATS),
    Published(
        "zico",
        "AZ-NAS paper, Table 1 (official code re-run)",
        (0.589, 0.590, 0.584),
        (0.784, 0.785, 0.778),
        _NATS,
        372.8,
        "GPU runtime",
    ),
    Published("zico", "xi-GSNR paper, Table 1", (0.610, 0.610, 0.600), (0.800, 0.810, 0.790), _GSNR),
    Published("zico", "InTrain paper, Table 1", (0.607, 0.614, 0.587), (0.802, 0.809, 0.779), _UNSTATED),
    Published("zico", "epsinas paper, Table 2", (0.61, 0.61, 0.60), (0.80, 0.81, 0.79), _EPS),
    Published(
        "xi_gsnr",
        "xi-GSNR paper, Table 1",
        (0.661, 0.658, 0.608),
        (0.845, 0.840, 0.793),
        _GSNR,
        None,
        "repo logs: tau 0.6609/0.6580/0.6081; about 1.3 s/arch on GPU from log timestamps",
    ),
    Published("intrain", "InTrain paper, Table 1", (0.669, 0.671, 0.675), (0.857, 0.861, 0.859), _UNSTATED),
    Published(
        "intrain_pr",
        "InTrain paper, Table 3 (PR-only)",
        (0.61, None, None),
        (0.82, None, None),
        _UNSTATED,
        None,
        "dataset not stated; CIFAR-10 assumed",
    ),
    Published(
        "intrain_grad",
        "InTrain paper, Table 3 (Grad-only)",
        (0.63, None, None),
        (0.83, None, None),
        _UNSTATED,
        None,
        "dataset not stated; CIFAR-10 assumed",
    ),
    Published(
        "intrain_add",
        "InTrain paper, Table 3 (additive)",
        (0.59, None, None),
        (0.80, None, None),
        _UNSTATED,
        None,
        "dataset not stated; CIFAR-10 assumed",
    ),
    Published("epsinas", "epsinas paper, Table 2", (0.69, 0.72, 0.67), (0.87, 0.89, 0.85), _EPS),
    Published("params", "AZ-NAS paper, Table 1", (0.578, 0.552, 0.520), (0.753, 0.728, 0.691), _NATS),
    Published("params", "xi-GSNR paper, Table 1", (0.576, 0.552, 0.519), (0.751, 0.727, 0.690), _GSNR),
    Published("flops", "AZ-NAS paper, Table 1", (0.578, 0.551, 0.517), (0.753, 0.727, 0.691), _NATS),
    Published("flops", "xi-GSNR paper, Table 1", (0.541, 0.517, 0.487), (0.733, 0.708, 0.673), _GSNR),
    Published("flops", "InTrain paper, Table 1", (0.623, 0.586, 0.545), (0.799, 0.763, 0.718), _UNSTATED),
    # baselines as re-run with the official codes in the AZ-NAS paper (Table 1; GPU runtimes)
    Published("grad_norm", _AZ1, (0.357, 0.350, 0.304), (0.484, 0.475, 0.412), _NATS, 28.8, "GPU runtime"),
    Published("grasp", _AZ1, (0.318, 0.315, 0.282), (0.460, 0.453, 0.406), _NATS, 395.9, "GPU runtime"),
    Published("snip", _AZ1, (0.454, 0.451, 0.400), (0.615, 0.609, 0.539), _NATS, 326.5, "GPU runtime"),
    Published("synflow", _AZ1, (0.571, 0.565, 0.555), (0.769, 0.761, 0.747), _NATS, 53.4, "GPU runtime"),
    Published("naswot", _AZ1, (0.557, 0.579, 0.573), (0.743, 0.769, 0.760), _NATS, 36.9, "GPU runtime"),
    Published("tenas", _AZ1, (0.536, 0.535, 0.492), (0.731, 0.728, 0.680), _NATS, 1311.8, "GPU runtime"),
    Published("zen", _AZ1, (0.296, 0.283, 0.303), (0.385, 0.361, 0.409), _NATS, 19.9, "GPU runtime"),
    # the baselines of InTrain Table 1 (its own runs; target 'final validation accuracy', not stated further)
    Published("grad_norm", _IT1, (0.328, 0.341, 0.310), (0.438, 0.451, 0.418), _UNSTATED),
    Published("snip", _IT1, (0.431, 0.440, 0.389), (0.591, 0.597, 0.521), _UNSTATED),
    Published("grasp", _IT1, (0.352, 0.349, 0.359), (0.505, 0.498, 0.502), _UNSTATED),
    Published("fisher", _IT1, (0.400, 0.410, 0.370), (0.550, 0.550, 0.500), _UNSTATED),
    Published("synflow", _IT1, (0.561, 0.553, 0.531), (0.758, 0.750, 0.719), _UNSTATED),
    Published("tenas", _IT1, (0.536, 0.537, 0.523), (0.722, 0.723, 0.709), _UNSTATED),
    Published("jacov", _IT1, (0.616, 0.639, 0.602), (0.800, 0.820, 0.779), _UNSTATED),
    Published("naswot", _IT1, (0.571, 0.607, 0.605), (0.762, 0.799, 0.794), _UNSTATED),
    Published("zen", _IT1, (0.102, 0.079, 0.091), (0.103, 0.072, 0.109), _UNSTATED),
    Published("vkdnw", _IT1, (0.618, 0.634, 0.622), (0.815, 0.829, 0.814), _UNSTATED, note="VKDNW_single"),
    # zero-cost-nas notebook nasbench201_correlations.ipynb: abs(Spearman) only (notes section 2.1)
    Published("grad_norm", _ZC, (None,) * 3, (0.594, None, None), _ZCT, None, "abs(spearmanr)"),
    Published("snip", _ZC, (None,) * 3, (0.596, None, None), _ZCT, None, "abs(spearmanr)"),
    Published("grasp", _ZC, (None,) * 3, (0.514, None, None), _ZCT, None, "abs(spearmanr)"),
    Published("fisher", _ZC, (None,) * 3, (0.36, None, None), _ZCT, None, "abs(spearmanr)"),
    Published("synflow", _ZC, (None,) * 3, (0.737, None, None), _ZCT, None, "abs(spearmanr)"),
    Published("jacov", _ZC, (None,) * 3, (0.731, None, None), _ZCT, None, "abs(spearmanr)"),
    # AZ-NAS Table 5: our proxies combined with others by the same non-linear rank aggregation
    Published("ensemble:az_nas+synflow", "AZ-NAS paper, Table 5", (0.776, 0.758, 0.747), (None,) * 3, _NATS, 96.1),
    Published("ensemble:az_nas+zico", "AZ-NAS paper, Table 5", (0.773, 0.757, 0.747), (None,) * 3, _NATS, 415.5),
    # NAS-Bench-101, CIFAR-10 (AZ-NAS reports none)
    Published(
        "intrain", "InTrain paper, Sec. 4.3 / Fig. 2", (0.56, None, None), (0.75, None, None), _N101_TEST, space="nb101"
    ),
    Published("zico", "InTrain paper, Sec. 4.3", (0.46, None, None), (None,) * 3, _N101_TEST, space="nb101"),
    Published("zico", "epsinas paper, Table 4", (0.46, None, None), (0.63, None, None), _N101_TEST, space="nb101"),
    Published("xi_gsnr", "xi-GSNR paper, Table 2", (0.434, None, None), (0.615, None, None), _N101, space="nb101"),
    Published("epsinas", "epsinas paper, Table 4", (0.44, None, None), (0.62, None, None), _N101_EPS, space="nb101"),
    Published("params", "xi-GSNR paper, Table 2", (0.298, None, None), (0.423, None, None), _N101, space="nb101"),
    Published("params", "InTrain paper, Sec. 4.3", (0.43, None, None), (None,) * 3, _N101_TEST, space="nb101"),
    Published("params", "epsinas paper, Table 4", (0.31, None, None), (0.43, None, None), _N101_TEST, space="nb101"),
    Published("flops", "xi-GSNR paper, Table 2", (0.297, None, None), (0.422, None, None), _N101, space="nb101"),
    Published("flops", "InTrain paper, Sec. 4.3", (0.44, None, None), (None,) * 3, _N101_TEST, space="nb101"),
    Published("zen", "InTrain paper, Sec. 4.3", (0.31, None, None), (None,) * 3, _N101_TEST, space="nb101"),
    Published("synflow", "epsinas paper, Table 4", (0.25, None, None), (0.37, None, None), _N101_TEST, space="nb101"),
    Published("grasp", "epsinas paper, Table 4", (0.31, None, None), (0.45, None, None), _N101_TEST, space="nb101"),
    Published(
        "grad_norm", "epsinas paper, Table 4", (-0.14, None, None), (-0.20, None, None), _N101_TEST, space="nb101"
    ),
    Published("snip", "epsinas paper, Table 4", (-0.11, None, None), (-0.16, None, None), _N101_TEST, space="nb101"),
    Published("fisher", "epsinas paper, Table 4", (-0.18, None, None), (-0.26, None, None), _N101_TEST, space="nb101"),
    Published("naswot", "xi-GSNR paper, Table 2", (0.220, None, None), (0.327, None, None), _N101, space="nb101"),
    Published("tenas", "xi-GSNR paper, Table 2", (0.056, None, None), (0.084, None, None), _N101, space="nb101"),
)

# Per space, the proxy's own paper (on NB201 for ZiCo, which has no NB201 driver, the AZ-NAS re-run of its NB201
# port; for fisher and jacov, whose own notebook gives |rho| only, and on NB101 for ZiCo and the size baselines, the
# table that gives both tau and rho). Otherwise the first entry.
PRIMARY_SOURCE: dict[str, dict[str, str]] = {
    "nb201": {
        "az_nas": "AZ-NAS paper, Table 1",
        "zico": "AZ-NAS paper, Table 1 (official code re-run)",
        "params": "AZ-NAS paper, Table 1",
        "flops": "AZ-NAS paper, Table 1",
        "fisher": _IT1,
        "jacov": _IT1,
    },
    "nb101": {"zico": "epsinas paper, Table 4"},
}

# The nb201.csv column closest to each paper's CIFAR-10 target, with how exact the match is.
PAPER_C10_COLUMN: dict[str, tuple[str, str]] = {
    "az_nas": ("cifar10_test", "exact"),
    "az_expressivity": ("cifar10_test", "exact"),
    "az_progressivity": ("cifar10_test", "exact"),
    "az_trainability": ("cifar10_test", "exact"),
    "az_complexity": ("cifar10_test", "exact"),
    "zico": ("cifar10_test", "exact (AZ-NAS re-run)"),
    "params": ("cifar10_test", "exact (AZ-NAS table)"),
    "flops": ("cifar10_test", "exact (AZ-NAS table)"),
    "epsinas": ("cifar10_test_nb201v11", "exact"),
    "xi_gsnr": ("cifar10_test_nb201v11", "nearest (v1.0 not in nb201.csv)"),
    "intrain": ("cifar10_valid", "assumed from the text"),
    "intrain_pr": ("cifar10_valid", "assumed from the text"),
    "intrain_grad": ("cifar10_valid", "assumed from the text"),
    "intrain_add": ("cifar10_valid", "assumed from the text"),
}


def published_for(space: str = "nb201") -> list[Published]:
    """Every published entry we track for ``space``."""
    return [p for p in PUBLISHED if p.space == space]


def primary(proxy: str, space: str = "nb201") -> Published | None:
    """The headline published entry of ``proxy`` on ``space`` (its own paper first), or ``None``."""
    entries = [p for p in published_for(space) if p.proxy == proxy]
    if not entries:
        return None
    wanted = PRIMARY_SOURCE.get(space, {}).get(proxy)
    return next((p for p in entries if p.source == wanted), entries[0])
