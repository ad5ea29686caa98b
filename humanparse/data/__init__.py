"""Annotated data: the CIHP layout, Pascal-Person-Part conversion, augmentation, and the
procedural world of synthetic people (images and video) with exact ground truth."""
