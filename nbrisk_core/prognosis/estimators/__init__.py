"""Survival estimators of the combination grid, by family, all with the scikit-survival contract.

Every estimator here follows scikit-survival: keyword-only ``__init__`` parameters, ``fit(X, y)`` with
``y = Surv.from_arrays(event, time)`` (checked by ``sksurv.util.check_array_survival``) returns
``self``, fitted attributes end in ``_`` (``predict`` before ``fit`` raises sklearn's
``NotFittedError``), ``predict`` returns a risk score (higher = worse prognosis), ``score`` is Harrell's
C-index, and ``predict_survival_function`` returns step functions where the model defines them.
Estimators that can act as feature *selectors* expose ``selected_features_`` (column indices).

=================  ===========================================================================
module             contents
=================  ===========================================================================
``cox``            the Cox kernel: risk-set sums (written once), partial likelihood, Newton fit,
                   information, Wald statistics, univariate scores, CV partial likelihood
``linear``         :class:`StepwiseCox`, :class:`CoxnetCV`, :class:`RidgeCoxCV`, :class:`CoxBoostCV`,
                   :class:`PLSCox`, :class:`SuperPC` (risk = ``X @ coef_``, Breslow baseline)
``ensemble``       :class:`GBMCoxCV`, :class:`MinimalDepthRSF`
``svm``            :class:`RankingSurvivalSVM`
``selection``      :class:`SelectedFeatures`: the ``"select"`` step of a combination ``Pipeline``
=================  ===========================================================================

Where scikit-survival has the algorithm it is used (random survival forest, Coxnet, componentwise
boosting, gradient boosting, fast survival SVM); written here are only what no well-kept Python library
offers (the Cox kernel, stepwise Cox by AIC, PLS-Cox, supervised principal components) plus the
cross-validation that R's glmnet / CoxBoost / gbm do internally.
"""

from sksurv.functions import StepFunction

from nbrisk_core.prognosis.estimators.cox import (
    check_survival_data,
    cox_information,
    cox_newton,
    cox_partial_loglik,
    cox_wald,
    cv_partial_loglik,
    event_time_arrays,
    risk_set_index,
    risk_set_sums,
    univariate_cox_scores,
)
from nbrisk_core.prognosis.estimators.ensemble import GBMCoxCV, MinimalDepthRSF
from nbrisk_core.prognosis.estimators.linear import (
    CoxBoostCV,
    CoxnetCV,
    LinearCoxModel,
    PLSCox,
    RidgeCoxCV,
    StepwiseCox,
    SuperPC,
)
from nbrisk_core.prognosis.estimators.selection import SelectedFeatures
from nbrisk_core.prognosis.estimators.svm import RankingSurvivalSVM

__all__ = [
    "CoxBoostCV", "CoxnetCV", "GBMCoxCV", "LinearCoxModel", "MinimalDepthRSF", "PLSCox", "RankingSurvivalSVM",
    "RidgeCoxCV", "SelectedFeatures", "StepFunction", "StepwiseCox", "SuperPC", "check_survival_data",
    "cox_information", "cox_newton", "cox_partial_loglik", "cox_wald", "cv_partial_loglik",
    "event_time_arrays",
    "risk_set_index", "risk_set_sums", "univariate_cox_scores",
]
