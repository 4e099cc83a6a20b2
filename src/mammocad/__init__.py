"""mammocad: find and classify breast abnormalities in mammograms.

Research software, not a medical device: nothing here is validated for clinical use.

Layers (a lower layer never imports a higher one):
``utils`` -> ``data`` -> ``preprocess`` -> ``patches`` -> ``models`` -> ``train`` ->
``evaluate`` -> ``report`` / ``infer`` -> ``cli``.
"""

__version__ = "0.1.0"

DISCLAIMER = "Research software, not a medical device: not for clinical decisions."
