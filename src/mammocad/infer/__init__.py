"""The second reader: trained models as bundles, predictions on new mammograms, discrepancy flags.

Above :mod:`mammocad.segment`, :mod:`mammocad.train` and :mod:`mammocad.evaluate`; below
:mod:`mammocad.cli`. :mod:`bundle` packs a trained model with everything needed to use it;
:mod:`predict` runs preprocess -> region proposals -> region classification on mammograms and
maps every result back to the original pixel grid (:mod:`mapping`); :mod:`second_read` compares
predictions with a radiologist's readings. Research software, not a medical device.
"""
