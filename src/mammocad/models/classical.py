"""The classical baselines: hand-crafted patch features -> a scikit-learn estimator, in the model registry.

The floor every network must beat on the same patch sets, splits and metrics: features of
``mammocad.models.features`` (intensity statistics, GLCM/Haralick, LBP; mask shape where every
patch has a lesion mask) feed

- ``classical``: gradient boosting (scikit-learn ``HistGradientBoostingClassifier``: shallow
  trees, small learning rate, strong L2, no early stopping, so it needs no held-out cut of its own);
- ``classical_lr``: standardised features -> L2 logistic regression.

Both are registered with ``register_classical``; ``mammocad.train.classical`` fits and saves
them, ``mammocad.train.inference.load_predictor`` reads them back. scikit-learn is imported
when an estimator is built, so registering them costs nothing.
"""

from __future__ import annotations

from mammocad.models.registry import register_classical

FEATURE_INPUT_SIZE = 128  # px: the side patches are resized to before the features (GLCM, LBP scales)


@register_classical("classical", input_size=FEATURE_INPUT_SIZE,
                    reference="intensity + GLCM + LBP features -> gradient boosting (the classical floor)")
def gradient_boosting(seed: int, balanced: bool):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=10,
                                          l2_regularization=1.0, early_stopping=False,
                                          class_weight="balanced" if balanced else None, random_state=seed)


@register_classical("classical_lr", input_size=FEATURE_INPUT_SIZE,
                    reference="intensity + GLCM + LBP features -> logistic regression")
def logistic_regression(seed: int, balanced: bool):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000, random_state=seed,
                                                              class_weight="balanced" if balanced else None))
