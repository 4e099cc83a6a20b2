"""``mammocad serve``: a local web page to predict on one mammogram and to browse a folder of predictions.

Above :mod:`mammocad.infer`, below :mod:`mammocad.cli`. :mod:`config` holds :class:`ServeConfig`
(light: no torch, no FastAPI); :mod:`app` the FastAPI application (:func:`create_app`); ``static/``
the page itself, plain HTML/JS/CSS served by the app (no build step, nothing fetched from elsewhere).
Research software, not a medical device.
"""
