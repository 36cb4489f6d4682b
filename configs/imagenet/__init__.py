"""ImageNet-scale replication configs (TFDS ``imagenet2012``); see population.py."""
