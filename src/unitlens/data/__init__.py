"""Data sets: MNIST (IDX files, .npz, or the embedded 5,000 digits), the elastic-deformation stream, and
whitened natural-image patches. Every loader returns a :class:`Dataset` with its norm rho."""

from unitlens.data.dataset import Dataset, dataset_norm
from unitlens.data.elastic import ElasticConfig, ElasticStream, elastic_deform
from unitlens.data.idx import read_idx, write_idx
from unitlens.data.mnist import load_mnist
from unitlens.data.patches import load_patches, sample_patches
from unitlens.data.stream import BatchSource, ShuffledBatches
from unitlens.data.whitening import whiten

__all__ = [
    "BatchSource",
    "Dataset",
    "ElasticConfig",
    "ElasticStream",
    "ShuffledBatches",
    "dataset_norm",
    "elastic_deform",
    "load_mnist",
    "load_patches",
    "read_idx",
    "sample_patches",
    "whiten",
    "write_idx",
]
