"""Lesion segmentation: Mask R-CNN and U-Net models, their training and their predictions.

Sits beside :mod:`mammocad.train` (it reuses its engine) and below :mod:`mammocad.evaluate`.
Every model's predictions for one image are an :class:`~mammocad.segment.instances.Instances`.
"""
