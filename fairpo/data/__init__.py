"""The data layer: the data sets (digits, COCO 2014, NUS-WIDE, your features), the privileged split,
the ViT backbone cut into a frozen bottom and a trained top, and the feature cache.

:mod:`fairpo.data.load` is the entry point; :mod:`fairpo.data.digits`, :mod:`fairpo.data.images` and
:mod:`fairpo.data.features` load one kind of data set each.
"""

from fairpo.data.digits import DIGIT_RATES, DIGITS_MEAN, DIGITS_STD, digit_pretraining_set
from fairpo.data.features import FEATURES_LAYOUT, data_fingerprint
from fairpo.data.images import COCO_LAYOUT, NUSWIDE_LAYOUT, ImageFileDataset
from fairpo.data.load import DataBundle, load_dataset, privileged_split
from fairpo.data.transform import ImageTransform
