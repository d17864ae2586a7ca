"""Training and held-out data: crops of photographs shipped with scikit-image / scikit-learn."""

from .photos import CLASS_NAMES, PHOTOS, CropBox, Crops, DataUnavailableError, load_photo, sample_crops

__all__ = ["CLASS_NAMES", "PHOTOS", "CropBox", "Crops", "DataUnavailableError", "load_photo", "sample_crops"]
