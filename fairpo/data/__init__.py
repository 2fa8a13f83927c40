"""The data layer: the data sets (digits, COCO 2014, NUS-WIDE, your features), the privileged split,
the ViT backbone cut into a frozen bottom and a trained top, and the feature cache."""

from fairpo.data.datasets import (COCO_LAYOUT, DIGIT_RATES, DIGITS_MEAN, DIGITS_STD, FEATURES_LAYOUT, NUSWIDE_LAYOUT,
                                  DataBundle, ImageFileDataset, ImageTransform, data_fingerprint,
                                  digit_pretraining_set, load_dataset, make_loader, privileged_split)
