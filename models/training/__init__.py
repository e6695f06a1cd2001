"""`vigil train`: compact Keras classifiers for face attributes (and any user classes).

data     labelled images -> face crops at the model's input size (the crop the pipeline makes)
nets     the small VGG-style networks (Keras 3, TensorFlow imported lazily)
fit      augmentation, class balancing, soft targets, validation split, early stopping
export   .keras, OpenVINO IR and TF Lite, with `vigil.json` (crop, normalisation, labels)
"""
