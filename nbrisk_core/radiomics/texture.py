"""IBSI texture matrices and their features: GLCM (``cm_*``), GLRLM (``rlm_*``), GLSZM (``szm_*``),
GLDZM (``dzm_*``), NGTDM (``ngt_*``) and NGLDM (``ngl_*``; PyRadiomics calls it GLDM).

Input is a volume of discretised grey levels ``(z, y, x)``, 0 outside the intensity mask. Distances
are Chebyshev 1 (8 neighbours in-plane, 26 in 3-D); GLCMs are symmetric; NGLDM coarseness alpha = 0.
Aggregation (IBSI "feature aggregation"):

==================  ===============================================================================
``2D_avg``          per slice and per direction, features averaged (GLCM, GLRLM); per slice for others
``2D_smrg``         per slice, directions merged, features averaged over slices
``2.5D_dmrg``       per direction, slices merged, features averaged over directions
``2.5D_mrg``        one matrix merged over slices and directions
``3D_avg``          per 3-D direction (13), features averaged
``3D_mrg``          one 3-D matrix merged over the 13 directions
==================  ===============================================================================

For the direction-free matrices (GLSZM, GLDZM, NGTDM, NGLDM) ``2D_*`` means per slice and averaged,
``2.5D_*`` merged over slices and ``3D_*`` computed in 3-D.
"""

from __future__ import annotations

import numpy as np

from nbrisk_core.errors import InputError

AGGREGATIONS = ("2D_avg", "2D_smrg", "2.5D_dmrg", "2.5D_mrg", "3D_avg", "3D_mrg")
DIRS_2D = ((0, 0, 1), (0, 1, 1), (0, 1, 0), (0, 1, -1))
DIRS_3D = DIRS_2D + ((1, 0, 0), (1, 0, 1), (1, 0, -1), (1, 1, 0), (1, -1, 0), (1, 1, 1), (1, 1, -1),
                     (1, -1, 1), (1, -1, -1))

IBSI_CODES: dict[str, str] = {
    "cm_joint_max": "GYBY", "cm_joint_avg": "60VM", "cm_joint_var": "UR99", "cm_joint_entr": "TU9B",
    "cm_diff_avg": "TF7R", "cm_diff_var": "D3YU", "cm_diff_entr": "NTRS", "cm_sum_avg": "ZGXS",
    "cm_sum_var": "OEEB", "cm_sum_entr": "P6QZ", "cm_energy": "8ZQL", "cm_contrast": "ACUI",
    "cm_dissimilarity": "8S9J", "cm_inv_diff": "IB1Z", "cm_inv_diff_norm": "NDRX", "cm_inv_diff_mom": "WF0Z",
    "cm_inv_diff_mom_norm": "1QCO", "cm_inv_var": "E8JP", "cm_corr": "NI2N", "cm_auto_corr": "QWB0",
    "cm_clust_tend": "DG8W", "cm_clust_shade": "7NFM", "cm_clust_prom": "AE86", "cm_info_corr1": "R8DG",
    "cm_info_corr2": "JN9H",
    "ngt_coarseness": "QCDE", "ngt_contrast": "65HE", "ngt_busyness": "NQ30", "ngt_complexity": "HDEZ",
    "ngt_strength": "1X9X",
}
_ZONE_CODES = {  # generic zone-matrix feature -> IBSI code per family
    "rlm": ("22OV W4KF V3SW G3QZ HTZT GD3A IVPO 3KUM R5YN OVBL W92Y IC23 9ZK5 8CE5 SXLW HJ9O"),
    "szm": ("9SAK 48P8 XMSY 5GN9 5RAI HW1V YH51 J17V JNSA Y1RO 4JP3 VB3A P30P BYLV 3NSA GU8N"),
    "dzm": ("0GBI MB4I S1RA K26C RUVG DKNJ A7WM KLTH VFT7 7HP3 V294 IATH VIWW QK93 7WT1 GBDU"),
    "ngl": ("SODN IMOQ TL9H OAE7 EQ3F JA6D NBZI 9QMG FP8K 5SPA Z87G OKJI 6XV8 1PFV DNX2 FCBV"),
}
_ZONE_FEATURES = {  # per family, in the order of _ZONE_CODES (IBSI / MIRP short names)
    "rlm": "sre lre lgre hgre srlge srhge lrlge lrhge glnu glnu_norm rlnu rlnu_norm r_perc gl_var rl_var "
           "rl_entr",
    "szm": "sze lze lgze hgze szlge szhge lzlge lzhge glnu glnu_norm zsnu zsnu_norm z_perc gl_var zs_var "
           "zs_entr",
    "dzm": "sde lde lgze hgze sdlge sdhge ldlge ldhge glnu glnu_norm zdnu zdnu_norm z_perc gl_var zd_var "
           "zd_entr",
    "ngl": "lde hde lgce hgce ldlge ldhge hdlge hdhge glnu glnu_norm dcnu dcnu_norm dc_perc gl_var dc_var "
           "dc_entr",
}
for _fam, _codes in _ZONE_CODES.items():
    IBSI_CODES.update({f"{_fam}_{f}": c for f, c in zip(_ZONE_FEATURES[_fam].split(), _codes.split())})
IBSI_CODES["ngl_dc_energy"] = "CAS9"


def _shifted(a: np.ndarray, d) -> tuple[np.ndarray, np.ndarray]:
    """(a[p], a[p + d]) for every p with both inside the array."""
    src, dst = [], []
    for n, k in zip(a.shape, d):
        src.append(slice(max(0, -k), n - max(0, k)))
        dst.append(slice(max(0, k), n - max(0, -k) if k < 0 else n))
    return a[tuple(src)], a[tuple(dst)]


def glcm(levels: np.ndarray, d, ng: int) -> np.ndarray:
    """Symmetric co-occurrence counts ``(ng, ng)`` for offset ``d``."""
    a, b = _shifted(levels, d)
    keep = (a > 0) & (b > 0)
    m = np.zeros((ng, ng))
    np.add.at(m, (a[keep] - 1, b[keep] - 1), 1.0)
    return m + m.T


def glrlm(levels: np.ndarray, d, ng: int) -> np.ndarray:
    """Run-length counts ``(ng, longest run)`` along direction ``d``."""
    d = np.asarray(d)
    shape = np.asarray(levels.shape)
    prev_v = np.zeros_like(levels)
    a, b = _shifted(levels, d)  # a = v[p], b = v[p + d]
    # prev_v[p] = v[p - d]; a run starts where v[p] > 0 and v[p - d] != v[p]
    prev_v[tuple(slice(max(0, k), n - max(0, -k) if k < 0 else n) for n, k in zip(shape, d))] = a
    starts = np.argwhere((levels > 0) & (prev_v != levels))
    grey = levels[tuple(starts.T)]
    length = np.ones(len(starts), dtype=np.int64)
    current = starts.copy()
    alive = np.ones(len(starts), dtype=bool)
    while alive.any():
        nxt = current + d
        inside = alive & np.all((nxt >= 0) & (nxt < shape), axis=1)
        idx = np.flatnonzero(inside)
        same = levels[tuple(nxt[idx].T)] == grey[idx]
        cont = idx[same]
        alive[:] = False
        alive[cont] = True
        length[cont] += 1
        current[cont] = nxt[cont]
    m = np.zeros((ng, max(1, int(length.max()) if length.size else 1)))
    np.add.at(m, (grey - 1, length - 1), 1.0)
    return m


def _structure(ndim3: bool) -> np.ndarray:
    s = np.ones((3, 3, 3), dtype=bool)
    if not ndim3:
        s[0] = s[2] = False
    return s


def glszm(levels: np.ndarray, ng: int, three_d: bool) -> np.ndarray:
    """Zone-size counts ``(ng, largest zone)``; zones connected in 8 (2-D) or 26 (3-D) neighbourhoods."""
    from scipy import ndimage

    sizes, greys = [], []
    for g in range(1, ng + 1):
        lab, n = ndimage.label(levels == g, structure=_structure(three_d))
        if n:
            sizes.append(np.bincount(lab.ravel())[1:])
            greys.append(np.full(n, g))
    sizes, greys = np.concatenate(sizes), np.concatenate(greys)
    m = np.zeros((ng, int(sizes.max())))
    np.add.at(m, (greys - 1, sizes - 1), 1.0)
    return m


def gldzm(levels: np.ndarray, morph_mask: np.ndarray, ng: int, three_d: bool) -> np.ndarray:
    """Zone-distance counts ``(ng, largest distance)``: a zone's distance is the smallest taxicab
    distance to the edge of the morphological mask among its voxels (1 at the border)."""
    from scipy import ndimage

    if three_d:
        dist = ndimage.distance_transform_cdt(np.pad(morph_mask, 1), metric="taxicab")[1:-1, 1:-1, 1:-1]
    else:
        dist = np.stack([ndimage.distance_transform_cdt(np.pad(s, 1), metric="taxicab")[1:-1, 1:-1]
                         for s in morph_mask])
    dists, greys = [], []
    for g in range(1, ng + 1):
        lab, n = ndimage.label(levels == g, structure=_structure(three_d))
        if n:
            dists.append(ndimage.minimum(dist, lab, index=np.arange(1, n + 1)).astype(np.int64))
            greys.append(np.full(n, g))
    dists, greys = np.concatenate(dists), np.concatenate(greys)
    m = np.zeros((ng, int(dists.max())))
    np.add.at(m, (greys - 1, dists - 1), 1.0)
    return m


def _neighbour_kernel(three_d: bool) -> np.ndarray:
    k = _structure(three_d).astype(np.float64)
    k[1, 1, 1] = 0.0
    return k


def ngtdm(levels: np.ndarray, ng: int, three_d: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(s_i, n_i)``: summed |i - neighbourhood mean| and voxel count per grey level, over voxels with
    at least one neighbour in the ROI."""
    from scipy import ndimage

    k = _neighbour_kernel(three_d)
    roi = (levels > 0).astype(np.float64)
    total = ndimage.convolve(levels.astype(np.float64), k, mode="constant", cval=0.0)
    count = ndimage.convolve(roi, k, mode="constant", cval=0.0)
    valid = (levels > 0) & (count > 0)
    g = levels[valid]
    diff = np.abs(g - total[valid] / count[valid])
    return np.bincount(g - 1, weights=diff, minlength=ng), np.bincount(g - 1, minlength=ng).astype(np.float64)


def ngldm(levels: np.ndarray, ng: int, three_d: bool) -> np.ndarray:
    """Dependence counts ``(ng, largest dependence)``, dependence = 1 + same-level neighbours in the ROI."""
    from scipy import ndimage

    k = _neighbour_kernel(three_d)
    dep = np.zeros(levels.shape, dtype=np.int64)
    for g in range(1, ng + 1):
        here = levels == g
        if here.any():
            same = ndimage.convolve(here.astype(np.float64), k, mode="constant", cval=0.0)
            dep[here] = np.rint(same[here]).astype(np.int64) + 1
    roi = levels > 0
    m = np.zeros((ng, int(dep[roi].max())))
    np.add.at(m, (levels[roi] - 1, dep[roi] - 1), 1.0)
    return m


def _entropy(p: np.ndarray) -> float:
    nz = p[p > 0]
    return float(-(nz * np.log2(nz)).sum())


def glcm_features(m: np.ndarray) -> dict[str, float]:
    ng = m.shape[0]
    p = m / m.sum()
    i, j = np.meshgrid(np.arange(1, ng + 1), np.arange(1, ng + 1), indexing="ij")
    px, py = p.sum(1), p.sum(0)
    g = np.arange(1, ng + 1)
    mu = (i * p).sum()
    pd = np.bincount(np.abs(i - j).ravel(), weights=p.ravel(), minlength=ng)
    ps = np.bincount((i + j).ravel(), weights=p.ravel(), minlength=2 * ng + 1)
    k_d, k_s = np.arange(pd.size), np.arange(ps.size)
    mu_d, mu_s = (k_d * pd).sum(), (k_s * ps).sum()
    mu_x = (g * px).sum()
    sd_x = np.sqrt(((g - mu_x) ** 2 * px).sum())
    hx = _entropy(px)
    hxy = _entropy(p)
    pxy = np.outer(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pxy = np.where(pxy > 0, np.log2(np.where(pxy > 0, pxy, 1.0)), 0.0)
    hxy1 = -(p * log_pxy).sum()
    hxy2 = -(pxy * log_pxy).sum()
    diff = np.abs(i - j)
    return {
        "cm_joint_max": p.max(), "cm_joint_avg": mu, "cm_joint_var": ((i - mu) ** 2 * p).sum(),
        "cm_joint_entr": hxy, "cm_diff_avg": mu_d, "cm_diff_var": ((k_d - mu_d) ** 2 * pd).sum(),
        "cm_diff_entr": _entropy(pd), "cm_sum_avg": mu_s, "cm_sum_var": ((k_s - mu_s) ** 2 * ps).sum(),
        "cm_sum_entr": _entropy(ps), "cm_energy": (p ** 2).sum(), "cm_contrast": (diff ** 2 * p).sum(),
        "cm_dissimilarity": (diff * p).sum(), "cm_inv_diff": (p / (1 + diff)).sum(),
        "cm_inv_diff_norm": (p / (1 + diff / ng)).sum(), "cm_inv_diff_mom": (p / (1 + diff ** 2)).sum(),
        "cm_inv_diff_mom_norm": (p / (1 + diff ** 2 / ng ** 2)).sum(),
        "cm_inv_var": (pd[1:] / k_d[1:] ** 2).sum(),
        "cm_corr": (((i - mu_x) * (j - mu_x) * p).sum() / sd_x ** 2) if sd_x > 0 else 0.0,
        "cm_auto_corr": (i * j * p).sum(), "cm_clust_tend": ((i + j - 2 * mu_x) ** 2 * p).sum(),
        "cm_clust_shade": ((i + j - 2 * mu_x) ** 3 * p).sum(),
        "cm_clust_prom": ((i + j - 2 * mu_x) ** 4 * p).sum(),
        "cm_info_corr1": (hxy - hxy1) / hx if hx > 0 else 0.0,
        "cm_info_corr2": float(np.sqrt(max(0.0, 1 - np.exp(-2 * (hxy2 - hxy))))),
    }


def zone_features(m: np.ndarray, family: str, n_voxels: float | None = None) -> dict[str, float]:
    """The 16 features shared by GLRLM, GLSZM, GLDZM and NGLDM (and NGLDM's energy) of count matrix
    ``m`` (grey level x run length / zone size / distance / dependence). ``n_voxels`` defaults to
    ``sum(j * m_ij)`` (the voxels, times the merged directions for run lengths)."""
    ns = m.sum()
    ng, nr = m.shape
    i = np.arange(1, ng + 1)[:, None].astype(np.float64)
    j = np.arange(1, nr + 1)[None, :].astype(np.float64)
    nv = (m * j).sum() if n_voxels is None else n_voxels
    p = m / ns
    ri, rj = m.sum(1), m.sum(0)
    mu_i, mu_j = (i * p).sum(), (j * p).sum()
    vals = [(m / j ** 2).sum() / ns, (m * j ** 2).sum() / ns, (m / i ** 2).sum() / ns,
            (m * i ** 2).sum() / ns,
            (m / (i ** 2 * j ** 2)).sum() / ns, (m * i ** 2 / j ** 2).sum() / ns,
            (m * j ** 2 / i ** 2).sum() / ns, (m * i ** 2 * j ** 2).sum() / ns,
            (ri ** 2).sum() / ns, (ri ** 2).sum() / ns ** 2, (rj ** 2).sum() / ns, (rj ** 2).sum() / ns ** 2,
            ns / nv, ((i - mu_i) ** 2 * p).sum(), ((j - mu_j) ** 2 * p).sum(), _entropy(p)]
    out = {f"{family}_{name}": float(v) for name, v in zip(_ZONE_FEATURES[family].split(), vals)}
    if family == "ngl":
        out["ngl_dc_energy"] = float((p ** 2).sum())
    return out


def ngtdm_features(s: np.ndarray, n: np.ndarray) -> dict[str, float]:
    nvc = n.sum()
    p = n / nvc
    present = p > 0
    g = np.arange(1, s.size + 1, dtype=np.float64)[present]
    pp, ss = p[present], s[present]
    ngp = pp.size
    gi, gj = np.meshgrid(g, g, indexing="ij")
    pi, pj = np.meshgrid(pp, pp, indexing="ij")
    si, sj = np.meshgrid(ss, ss, indexing="ij")
    ps = (pp * ss).sum()
    busy_den = np.abs(gi * pi - gj * pj).sum()
    return {
        "ngt_coarseness": float(1.0 / ps) if ps > 0 else 1e6,
        "ngt_contrast": float(((pi * pj * (gi - gj) ** 2).sum() / (ngp * (ngp - 1))) * ss.sum() / nvc)
        if ngp > 1 else 0.0,
        "ngt_busyness": float(ps / busy_den) if busy_den > 0 else 0.0,
        "ngt_complexity": float((np.abs(gi - gj) * (pi * si + pj * sj) / (pi + pj)).sum() / nvc),
        "ngt_strength": float(((pi + pj) * (gi - gj) ** 2).sum() / ss.sum()) if ss.sum() > 0 else 0.0,
    }


def _mean(dicts: list[dict[str, float]]) -> dict[str, float]:
    if not dicts:
        return {}
    return {k: float(np.mean([d[k] for d in dicts])) for k in dicts[0]}


def texture_features(levels: np.ndarray, morph_mask: np.ndarray, aggregation: str,
                     families=("cm", "rlm", "szm", "dzm", "ngt", "ngl")) -> dict[str, float]:
    """All texture features of the discretised volume ``levels`` under one IBSI ``aggregation``."""
    if aggregation not in AGGREGATIONS:
        raise InputError(f"aggregation: expected one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    ng = int(levels.max())
    dim, mode = aggregation.split("_")
    slices = [levels[z:z + 1] for z in range(levels.shape[0]) if (levels[z] > 0).any()]
    mslices = [morph_mask[z:z + 1] for z in range(levels.shape[0]) if (levels[z] > 0).any()]
    out: dict[str, float] = {}
    for fam in ("cm", "rlm"):
        if fam not in families:
            continue
        build, feats = (glcm, glcm_features) if fam == "cm" else (glrlm, lambda m: zone_features(m, "rlm"))
        if dim == "3D":
            mats = [[build(levels, d, ng) for d in DIRS_3D]]
        else:
            mats = [[build(s, d, ng) for d in DIRS_2D] for s in slices]  # [slice][direction]
        usable = lambda m: m.sum() > 0  # noqa: E731 - a slice may have no pair in a direction
        if mode == "avg":
            out.update(_mean([feats(m) for row in mats for m in row if usable(m)]))
        elif mode == "smrg":
            merged = [_padded_sum(row) for row in mats]
            out.update(_mean([feats(m) for m in merged if usable(m)]))
        elif mode == "dmrg":
            cols = [_padded_sum([row[d] for row in mats]) for d in range(len(mats[0]))]
            out.update(_mean([feats(m) for m in cols if usable(m)]))
        else:
            out.update(feats(_padded_sum([m for row in mats for m in row])))
    three_d = dim == "3D"
    pieces = [(levels, morph_mask)] if three_d else list(zip(slices, mslices))
    for fam in ("szm", "dzm", "ngl"):
        if fam not in families:
            continue
        if fam == "szm":
            mats = [glszm(lv, ng, three_d) for lv, _ in pieces]
        elif fam == "dzm":
            mats = [gldzm(lv, mm, ng, three_d) for lv, mm in pieces]
        else:
            mats = [ngldm(lv, ng, three_d) for lv, _ in pieces]
        if dim == "2D":
            out.update(_mean([zone_features(m, fam, float((lv > 0).sum()))
                              for m, (lv, _) in zip(mats, pieces)]))
        else:
            out.update(zone_features(_padded_sum(mats), fam, float((levels > 0).sum())))
    if "ngt" in families:
        pairs = [ngtdm(lv, ng, three_d) for lv, _ in pieces]
        if dim == "2D":
            out.update(_mean([ngtdm_features(s, n) for s, n in pairs if n.sum() > 0]))
        else:
            out.update(ngtdm_features(sum(s for s, _ in pairs), sum(n for _, n in pairs)))
    return out


def _padded_sum(mats: list[np.ndarray]) -> np.ndarray:
    width = max(m.shape[1] for m in mats)
    total = np.zeros((mats[0].shape[0], width))
    for m in mats:
        total[:, :m.shape[1]] += m
    return total
