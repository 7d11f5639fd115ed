"""The survival-model combination grid (``../shared/spec/survival-combos.md``; R Mime1's "all" mode).

Algorithms are a table (:data:`ALGORITHMS`), combinations a list built from it
(:func:`combinations`): 117 in all. A combination is a predictor alone, or ``selector + predictor``:
the selector (fitted on every screened feature) keeps a subset, the predictor is fitted on it. A
pair whose selector keeps fewer than two features is *skipped*, with the reason.

Each selector is fitted once; each distinct ``(predictor, feature subset)`` is fitted once (several
selectors often keep the same subset, and e.g. "StepCox[forward]" keeps all features), in parallel
with joblib. Hyperparameters come from a *profile* (:data:`PROFILES`): ``full`` follows Mime1's
settings (with the GBM change documented in docs/prognosis.md), ``quick`` and ``test`` shrink trees,
folds and steps for interactive runs and the test suite.
"""

from __future__ import annotations

import time as _time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from sksurv.ensemble import RandomSurvivalForest

from nbrisk_core.errors import InputError
from nbrisk_core.prognosis import estimators as est

#: Hyperparameters per profile. ``full`` = the spec's table (GBM: see GBMCoxCV).
PROFILES: dict[str, dict] = {
    "full": dict(rsf_trees=1000, rsf_min_leaf=5, cv=10, coxnet_alphas=50, ridge_alphas=20, coxboost_steps=500,
                 gbm_trees=300, gbm_cv=5, pls_components=10, superpc_thresholds=20, superpc_components=3,
                 svm_iter=50),
    "quick": dict(rsf_trees=300, rsf_min_leaf=5, cv=5, coxnet_alphas=30, ridge_alphas=12, coxboost_steps=300,
                  gbm_trees=150, gbm_cv=3, pls_components=5, superpc_thresholds=10, superpc_components=3,
                  svm_iter=30),
    "test": dict(rsf_trees=25, rsf_min_leaf=5, cv=3, coxnet_alphas=10, ridge_alphas=5, coxboost_steps=40,
                 gbm_trees=20, gbm_cv=2, pls_components=2, superpc_thresholds=4, superpc_components=2,
                 svm_iter=20),
}

ENET_ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
STEP_DIRECTIONS = ("forward", "backward", "both")
SELECTION_RULES = ("mean", "test", "train")


@dataclass(frozen=True)
class Algorithm:
    """One algorithm of the grid: its name, whether it can select features, and its factory."""

    name: str
    factory: Callable[[dict, int], object]
    selector: bool


def _algorithms() -> dict[str, Algorithm]:
    table = [
        Algorithm("RSF", lambda p, s: est.MinimalDepthRSF(
            n_estimators=p["rsf_trees"], min_samples_leaf=p["rsf_min_leaf"], max_features="sqrt",
            random_state=s, n_jobs=1), True),
        *[Algorithm(f"StepCox[{d}]", (lambda d: lambda p, s: est.StepwiseCox(direction=d))(d), True)
          for d in STEP_DIRECTIONS],
        Algorithm("LASSO", lambda p, s: est.CoxnetCV(l1_ratio=1.0, cv=p["cv"], n_alphas=p["coxnet_alphas"],
                                                     seed=s), True),
        *[Algorithm(f"Enet[alpha={a}]", (lambda a: lambda p, s: est.CoxnetCV(
            l1_ratio=a, cv=p["cv"], n_alphas=p["coxnet_alphas"], seed=s))(a), False) for a in ENET_ALPHAS],
        Algorithm("Ridge", lambda p, s: est.RidgeCoxCV(cv=p["cv"], n_alphas=p["ridge_alphas"], seed=s), False),
        Algorithm("CoxBoost", lambda p, s: est.CoxBoostCV(max_steps=p["coxboost_steps"], cv=p["cv"], seed=s),
                  True),
        Algorithm("GBM", lambda p, s: est.GBMCoxCV(max_trees=p["gbm_trees"], cv=p["gbm_cv"], seed=s), False),
        Algorithm("plsRcox", lambda p, s: est.PLSCox(max_components=p["pls_components"], cv=p["cv"], seed=s),
                  False),
        Algorithm("SuperPC", lambda p, s: est.SuperPC(n_thresholds=p["superpc_thresholds"],
                                                      max_components=p["superpc_components"], cv=p["cv"],
                                                      seed=s), False),
        Algorithm("survival-SVM", lambda p, s: est.RankingSurvivalSVM(alpha=1.0, max_iter=p["svm_iter"],
                                                                      random_state=s), False),
    ]
    return {a.name: a for a in table}


#: name -> :class:`Algorithm`
ALGORITHMS: dict[str, Algorithm] = _algorithms()

_ENET = [f"Enet[alpha={a}]" for a in ENET_ALPHAS]
_STEP = [f"StepCox[{d}]" for d in STEP_DIRECTIONS]


def combinations() -> list[tuple[str | None, str]]:
    """The 117 ``(selector or None, predictor)`` pairs of the spec, in its order."""
    grid: list[tuple[str | None, str]] = [(None, "RSF")]
    grid += [("RSF", p) for p in ["CoxBoost", *_ENET, "GBM", "LASSO", "plsRcox", "Ridge", *_STEP, "SuperPC",
                                  "survival-SVM"]]
    grid += [(None, e) for e in _ENET]
    for step in _STEP:
        grid.append((None, step))
        grid += [(step, p) for p in ["CoxBoost", *_ENET, "GBM", "LASSO", "plsRcox", "Ridge", "RSF", "SuperPC",
                                     "survival-SVM"]]
    grid.append((None, "CoxBoost"))
    grid += [("CoxBoost", p) for p in [*_ENET, "GBM", "LASSO", "plsRcox", "Ridge", *_STEP, "SuperPC",
                                       "survival-SVM"]]
    grid.append((None, "LASSO"))
    grid += [("LASSO", p) for p in ["CoxBoost", "GBM", "plsRcox", "RSF", *_STEP, "SuperPC", "survival-SVM"]]
    grid += [(None, p) for p in ["plsRcox", "SuperPC", "GBM", "survival-SVM", "Ridge"]]
    return grid


def combination_name(selector: str | None, predictor: str) -> str:
    """Mime1-style label: ``"StepCox[backward] + RSF"`` or ``"RSF"``."""
    return predictor if selector is None else f"{selector} + {predictor}"


def parse_combination(name: str) -> tuple[str | None, str]:
    """Inverse of :func:`combination_name` (``InputError`` for an unknown combination)."""
    for selector, predictor in combinations():
        if combination_name(selector, predictor) == name:
            return selector, predictor
    raise InputError(f"combination {name!r} is not in the grid (e.g. 'StepCox[backward] + RSF', 'RSF', "
                     "'LASSO + GBM'; see docs/prognosis.md)")


def make_estimator(name: str, profile: str = "full", seed: int = 2025, *, risk_only: bool = False):
    """A fresh, unfitted estimator of one algorithm with a profile's hyperparameters.

    ``risk_only=True`` (used inside the grid, which needs only risk scores and selected features)
    builds forests with scikit-survival's ``low_memory`` option: the same risk scores and trees, but
    without each leaf's survival curve over every unique time (n_leaves x n_times per tree, which grows
    like N^2 and reaches gigabytes per forest at N = 1000).
    """
    if profile not in PROFILES:
        raise InputError(f"profile {profile!r} is not known (expected one of {', '.join(PROFILES)})")
    estimator = ALGORITHMS[name].factory(PROFILES[profile], seed)
    if risk_only and isinstance(estimator, RandomSurvivalForest):
        estimator.set_params(low_memory=True)
    return estimator


#: the selected forest keeps its leaves' survival curves (for S(t) and its band) only below this size
FOREST_CURVE_BUDGET_BYTES = 1.5e9


def forest_curve_bytes(n_trees: int, n_samples: int, n_unique_times: int, min_samples_leaf: int) -> float:
    """Rough size of a forest's stored leaf curves: trees x leaves x times x (hazard, survival) x 8 B."""
    leaves = max(1.0, 0.632 * n_samples / max(1, min_samples_leaf))  # bootstrap keeps ~63 % distinct rows
    return float(n_trees) * leaves * n_unique_times * 2 * 8


# --------------------------------------------------------------------------------------------
# the fitted combination: a scikit-learn Pipeline(select, model)
# --------------------------------------------------------------------------------------------


def make_combination(name: str, profile: str = "full", seed: int = 2025):
    """An unfitted combination: ``Pipeline([("select", SelectedFeatures | "passthrough"), ("model", ...)])``.

    ``fit(X, y)`` fits the selector on every column of ``X`` and the predictor on the columns it keeps;
    ``predict``, ``predict_survival_function`` (scikit-survival's pipeline methods) and ``score`` take
    the full design. A selector keeping fewer than 2 features makes ``fit`` raise ValueError.
    """
    from sklearn.pipeline import Pipeline

    selector, predictor = parse_combination(name)
    select = ("passthrough" if selector is None
              else est.SelectedFeatures(estimator=make_estimator(selector, profile, seed), min_features=2))
    return Pipeline([("select", select), ("model", make_estimator(predictor, profile, seed))])


def has_survival_function(model) -> bool:
    """Whether a fitted combination gives its own S(t) (not the SVM, not a forest without leaf curves)."""
    final = model[-1]
    return (hasattr(final, "predict_survival_function")
            and not isinstance(final, est.RankingSurvivalSVM)
            and not getattr(final, "low_memory", False))


def selected_columns(model) -> np.ndarray:
    """Indices of the design columns the combination's predictor uses."""
    select = model.named_steps["select"]
    if select == "passthrough" or select is None:
        return np.arange(model[-1].n_features_in_)
    return np.flatnonzero(select.get_support())


def used_features(model, feature_names) -> list[str]:
    """Names of the design columns the combination's predictor uses."""
    return [list(feature_names)[i] for i in selected_columns(model)]


def predict_with_band(model, X):
    """``(risk, (times, mean, low, high))`` in one pass for forests with leaf curves, else ``(risk, None)``.

    The band is the 2.5th-97.5th percentile of the trees' curves (a spread, not a confidence interval).
    """
    final = model[-1]
    if hasattr(final, "predict_band_and_risk") and has_survival_function(model):
        Xt = np.asarray(X, dtype=float)[:, selected_columns(model)]
        times, mean, low, high, risk = final.predict_band_and_risk(Xt)
        return risk, (times, mean, low, high)
    return np.asarray(model.predict(np.asarray(X, dtype=float)), dtype=float), None


# --------------------------------------------------------------------------------------------
# running the grid
# --------------------------------------------------------------------------------------------


def _c_index(event, time, risk) -> float:
    """The one C-index (:func:`~nbrisk_core.prognosis.metrics.concordance_index`); NaN for a model whose
    risk is not finite (its row stays in the table, unranked)."""
    from nbrisk_core.prognosis.metrics import concordance_index

    risk = np.asarray(risk, dtype=float)
    if not np.all(np.isfinite(risk)):
        return float("nan")
    return concordance_index(event, time, risk)


def _fit_selector(name, profile, seed, X, y, X_test, y_test):
    """Fit a selector on all features; its own C-indices are those of the algorithm used alone."""
    import warnings

    start, cpu = _time.perf_counter(), _time.process_time()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make_estimator(name, profile, seed, risk_only=True).fit(X, y)
            e_tr, t_tr = est.event_time_arrays(y)
            e_te, t_te = est.event_time_arrays(y_test)
            scores = (_c_index(e_tr, t_tr, model.predict(X)),
                      _c_index(e_te, t_te, model.predict(X_test)) if len(t_te) else float("nan"))
        seconds, cpu = _time.perf_counter() - start, _time.process_time() - cpu
        return (name, np.asarray(model.selected_features_, dtype=int), seconds, None,
                (*scores, seconds, None, cpu))
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        seconds, cpu = _time.perf_counter() - start, _time.process_time() - cpu
        message = f"{type(error).__name__}: {error}"
        return name, None, seconds, message, (float("nan"), float("nan"), seconds, message, cpu)


def _fit_predictor(name, columns, profile, seed, X_train, y_train, X_test, y_test):
    import warnings

    start, cpu = _time.perf_counter(), _time.process_time()
    columns = list(columns)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = make_estimator(name, profile, seed, risk_only=True).fit(X_train[:, columns], y_train)
            e_tr, t_tr = est.event_time_arrays(y_train)
            e_te, t_te = est.event_time_arrays(y_test)
            c_train = _c_index(e_tr, t_tr, model.predict(X_train[:, columns]))
            c_test = _c_index(e_te, t_te, model.predict(X_test[:, columns])) if len(t_te) else float("nan")
        return c_train, c_test, _time.perf_counter() - start, None, _time.process_time() - cpu
    except (ValueError, ArithmeticError, np.linalg.LinAlgError) as error:
        return (float("nan"), float("nan"), _time.perf_counter() - start, f"{type(error).__name__}: {error}",
                _time.process_time() - cpu)


#: seconds to wait for a Dask scheduler to answer and for its first worker to register
DASK_CONNECT_TIMEOUT_S = 30


@contextmanager
def _parallel(backend: str, n_jobs: int, scheduler: str | None = None):
    """A context giving ``run(jobs) -> iterator of results in job order`` for the backend.

    ``jobs`` are joblib ``delayed`` calls. ``loky``/``threading``/``sequential`` use joblib; ``dask``
    submits each fit to a Dask cluster: the scheduler at ``scheduler`` (``tcp://HOST:PORT`` or
    ``tls://...``), or a LocalCluster of ``n_jobs`` single-threaded worker processes on 127.0.0.1 when
    none is given. The fits are the same calls with the same seeds on every backend, so the rows
    are the same. ``ray`` is refused unless the package is installed. InputError names the package or
    the address when something is missing.
    """
    import joblib

    if backend == "dask":
        with _dask_runner(n_jobs, scheduler) as run:
            yield run
        return
    if scheduler is not None:
        raise InputError(f"--scheduler {scheduler}: a scheduler address is only used with --backend dask "
                         f"(backend here: {backend})")
    if backend == "ray":
        try:
            from ray.util.joblib import register_ray
        except ImportError as error:
            raise InputError("backend 'ray' needs the package ray, which is not installed (NBRisk does not "
                             "pin it; use --backend dask for a cluster, or loky on one machine)") from error
        register_ray()
    elif backend not in ("loky", "threading", "sequential"):
        raise InputError(f"backend {backend!r} is not known (expected loky, dask or ray)")
    if backend == "sequential":
        parallel = joblib.Parallel(n_jobs=1, backend="sequential", return_as="generator")
    else:
        parallel = joblib.Parallel(n_jobs=n_jobs, backend=backend, return_as="generator")
    yield parallel


@contextmanager
def _dask_runner(n_jobs: int, scheduler: str | None):
    """Connect to (or start) a Dask cluster; yields ``run(jobs)``; closes what it opened."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as error:
        raise InputError("backend 'dask' needs the packages dask and distributed (pinned in "
                         "requirements.txt: pip install -r requirements.txt), or use --backend loky"
                         ) from error
    cluster = None
    if scheduler is None:
        # loopback only, no dashboard: a private cluster for this run, closed at the end
        cluster = LocalCluster(n_workers=max(1, n_jobs), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    else:
        if not isinstance(scheduler, str) or "://" not in scheduler:
            raise InputError(f"--scheduler {scheduler!r}: expected an address like tcp://HOST:PORT "
                             "or tls://HOST:PORT")
        try:
            client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as error:
            raise InputError(f"--scheduler {scheduler}: no Dask scheduler answered within "
                             f"{DASK_CONNECT_TIMEOUT_S} s ({type(error).__name__}); start one with "
                             "`dask scheduler` (see docs/scaling.md)") from error
    try:
        try:
            client.wait_for_workers(1, timeout=DASK_CONNECT_TIMEOUT_S)
        except TimeoutError as error:
            raise InputError(f"--scheduler {scheduler}: no Dask worker registered within "
                             f"{DASK_CONNECT_TIMEOUT_S} s; start workers with `dask worker {scheduler}`"
                             ) from error
        _check_dask_workers(client, scheduler)

        def run(jobs):
            futures = [client.submit(function, *args, pure=False, **kwargs)
                       for function, args, kwargs in jobs]
            for future in futures:
                yield future.result()

        yield run
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _check_dask_workers(client, scheduler) -> None:
    """InputError unless every worker can import this same ``nbrisk_core`` (fits are sent by reference)."""
    import importlib.util

    def origin_of(module):  # a local function: sent by value, so it runs where nbrisk_core is missing
        import importlib.util

        spec = importlib.util.find_spec(module)
        return None if spec is None else spec.origin

    here = importlib.util.find_spec("nbrisk_core").origin
    found = client.run(origin_of, "nbrisk_core")
    missing = [w for w, origin in found.items() if origin is None]
    if missing:
        raise InputError(f"Dask cluster {scheduler or 'LocalCluster'}: {len(missing)} worker(s) cannot "
                         "import nbrisk_core; start them from the repository root with the same environment "
                         "(PYTHONPATH, venv)")
    other = sorted({o for o in found.values() if o != here})
    if other:
        import warnings

        warnings.warn(f"Dask workers import nbrisk_core from {other[0]}, this process from {here}: results "
                      "are only identical to the local backend with the same code", stacklevel=3)


def run_grid(X_train, y_train, X_test, y_test, feature_names, *, pairs=None, profile: str = "full",
             backend: str = "loky", n_jobs: int = 2, seed: int = 2025, progress: bool = False,
             min_selected: int = 2, scheduler: str | None = None) -> pd.DataFrame:
    """Fit every combination and score it by Harrell's C in the training and testing cohorts.

    Parameters
    ----------
    X_train, X_test : ndarray
        Screened, standardised features (columns = ``feature_names``).
    y_train, y_test : structured arrays
        ``Surv.from_arrays(event, time)``.
    pairs : list of (selector or None, predictor), optional
        Default: all of :func:`combinations`.
    profile : {"full", "quick", "test"}
        Hyperparameter profile (:data:`PROFILES`).
    backend : {"loky", "dask", "ray", "threading", "sequential"}
        Where the fits run: joblib's backends on this machine, or ``dask`` (a Dask cluster: the
        scheduler at ``scheduler``, else a LocalCluster of ``n_jobs`` workers). Same rows on every
        backend (only ``seconds`` differs).
    scheduler : str, optional
        ``tcp://HOST:PORT`` (or ``tls://``) of a running Dask scheduler, with ``backend="dask"``.
    progress : bool
        Show a tqdm progress bar over the fits.

    Returns
    -------
    pandas.DataFrame
        ``combination, selector, predictor, status (fitted/skipped), reason, n_features, features,
        c_index_train, c_index_test, c_index_mean, seconds``; ``seconds`` of a combination is its
        predictor fit plus its share of the selector fit. Rows in grid order.
    """
    from joblib import delayed

    if profile not in PROFILES:
        raise InputError(f"grid profile {profile!r} is not known (expected one of {', '.join(PROFILES)})")
    X_train = np.asarray(X_train, dtype=float)
    X_test = np.asarray(X_test, dtype=float)
    feature_names = list(feature_names)
    pairs = combinations() if pairs is None else list(pairs)
    all_columns = tuple(range(X_train.shape[1]))
    with _parallel(backend, n_jobs, scheduler) as parallel:
        selectors = sorted({s for s, _ in pairs if s is not None})
        selected: dict[str, tuple | None] = {}
        selector_seconds: dict[str, float] = {}
        selector_errors: dict[str, str] = {}
        # A selector fitted on all features is the same model (same data, settings and seed) as that
        # algorithm used alone, so its scores are reused for the "alone" row instead of refitting.
        results: dict[tuple[str, tuple], tuple] = {}
        selector_jobs = (delayed(_fit_selector)(s, profile, seed, X_train, y_train, X_test, y_test)
                         for s in selectors)
        for name, columns, seconds, error, alone in parallel(selector_jobs):
            selected[name] = None if columns is None else tuple(int(c) for c in columns)
            selector_seconds[name] = 0.0 if (None, name) in pairs else seconds
            results[(name, all_columns)] = alone
            if error:
                selector_errors[name] = error

        tasks: list[tuple[str, tuple]] = []
        for selector, predictor in pairs:
            columns = all_columns if selector is None else selected[selector]
            if columns is not None and len(columns) >= (1 if selector is None else min_selected):
                if (predictor, columns) not in tasks and (predictor, columns) not in results:
                    tasks.append((predictor, columns))
        jobs = (delayed(_fit_predictor)(p, c, profile, seed, X_train, y_train, X_test, y_test)
                for p, c in tasks)
        iterator = parallel(jobs)
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, total=len(tasks), desc="survival combinations", unit="fit")
        results.update(zip(tasks, iterator))

    uses = {s: sum(1 for sel, _ in pairs if sel == s) for s in selectors}
    rows = []
    for selector, predictor in pairs:
        name = combination_name(selector, predictor)
        columns = all_columns if selector is None else selected[selector]
        row = dict(combination=name, selector=selector or "", predictor=predictor)
        share = selector_seconds.get(selector, 0.0) / max(1, uses.get(selector, 1)) if selector else 0.0
        if selector is not None and columns is None:
            row.update(status="skipped", reason=f"selector {selector} failed: {selector_errors[selector]}",
                       n_features=0, features="", c_index_train=np.nan, c_index_test=np.nan, seconds=share)
        elif selector is not None and len(columns) < min_selected:
            row.update(status="skipped",
                       reason=f"selector {selector} kept {len(columns)} feature(s), fewer than {min_selected}",
                       n_features=len(columns), features=";".join(feature_names[c] for c in columns),
                       c_index_train=np.nan, c_index_test=np.nan, seconds=share)
        else:
            c_train, c_test, seconds, error, _cpu = results[(predictor, columns)]
            row.update(status="skipped" if error else "fitted", reason=f"fit failed: {error}" if error else "",
                       n_features=len(columns), features=";".join(feature_names[c] for c in columns),
                       c_index_train=c_train, c_index_test=c_test, seconds=seconds + share)
        rows.append(row)
    table = pd.DataFrame(rows)
    # CPU seconds of every distinct fit (selectors included), summed over workers: the cost of the
    # grid independent of how busy the machine was
    table.attrs["cpu_seconds"] = float(sum(r[4] for r in results.values()))
    table.attrs["n_fits"] = len(results)
    table["c_index_mean"] = table[["c_index_train", "c_index_test"]].mean(axis=1, skipna=False)
    columns = ["combination", "selector", "predictor", "status", "reason", "n_features", "features",
               "c_index_train", "c_index_test", "c_index_mean", "seconds"]
    return table[columns]


def select_best(table: pd.DataFrame, rule: str = "mean") -> str:
    """Name of the best fitted combination by ``rule``.

    ``"mean"`` (paper): highest mean of training and testing C-index; ``"test"`` / ``"train"``: highest
    C-index in that cohort. Ties go to the higher testing C-index, then to the grid order.
    Note that the paper's rule looks at the testing cohort, so the testing C-index of the chosen
    model is optimistic; NBRisk reports the rule with the result.
    """
    if rule not in SELECTION_RULES:
        raise InputError(f"selection rule {rule!r} is not known (expected one of {', '.join(SELECTION_RULES)})")
    fitted = table[(table["status"] == "fitted") & table[f"c_index_{rule}"].notna()]
    if fitted.empty:
        raise InputError("no combination of the grid could be fitted on this cohort "
                         "(see the reasons in the combinations table)")
    order = fitted.assign(_order=np.arange(len(fitted))).sort_values(
        [f"c_index_{rule}", "c_index_test", "_order"], ascending=[False, False, True], kind="stable")
    return str(order.iloc[0]["combination"])


def fit_combination(name: str, X_train, y_train, feature_names=None, *, profile: str = "full",
                    seed: int = 2025):
    """Fit one named combination on the training data (used to rebuild the selected model).

    Returns the fitted ``Pipeline(select, model)`` of :func:`make_combination`. A forest whose leaf
    curves would exceed :data:`FOREST_CURVE_BUDGET_BYTES` is fitted with ``low_memory`` (same risk;
    S(t) then comes from a Breslow baseline on the MLRS). ``feature_names`` is accepted for
    symmetry with :func:`run_grid`; :func:`used_features` names the columns.
    """
    import warnings

    X_train = np.asarray(X_train, dtype=float)
    model = make_combination(name, profile, seed)
    predictor = model[-1]
    if isinstance(predictor, RandomSurvivalForest):
        n_times = len(np.unique(est.event_time_arrays(y_train)[1]))
        size = forest_curve_bytes(predictor.n_estimators, len(X_train), n_times, predictor.min_samples_leaf)
        if size > FOREST_CURVE_BUDGET_BYTES:
            predictor.set_params(low_memory=True)  # same risk; S(t) then comes from a Breslow baseline
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X_train, y_train)
        except ValueError as error:
            if "fewer than" not in str(error):
                raise
            selector = parse_combination(name)[0]
            kept = len(np.asarray(model.named_steps["select"].estimator_.selected_features_))
            raise InputError(f"combination {name!r}: selector {selector} kept {kept} feature(s) "
                             "on this cohort, fewer than 2; choose another combination") from error
    return model
