"""Image recognition (DESIGN §7): top-1 accuracy of a ResNet.

Parts: ``resnet`` (models), ``datasets`` (Fashion-MNIST, ImageNet), ``task``
(the Task).

Two scales share this one task kind (``kind: image``):

- embedded (``conf/task/image.yaml``): ``resnet_small`` below on Fashion-MNIST
  from the Debian package ``dataset-fashion-mnist``, held in memory;
- paper (``conf/task/imagenet.yaml``): torchvision's ``resnet50`` on ImageNet
  in ImageFolder layout under a user-given ``data_dir``, trained with the
  torchvision reference recipe (see ``scripts/prepare_imagenet.py``).

Task config keys (besides the ``dense:``/``finetune:`` sections of
``gsprune.tasks.base``)::

    name, kind: image, scale: embedded | paper
    dataset: fashion_mnist | imagenet     # a key of DATASETS
    data_dir: path                        # imagenet: mandatory
    model: resnet_small | <torchvision classification model name>
    model_args: {}                        # keyword arguments of the model builder
    batch_size, eval_batch_size, num_workers
    amp: false                            # bfloat16 autocast
    channels_last: false
    label_smoothing: 0.0
    include, exclude: [fnmatch patterns]  # prunable parameters (gsprune.views)
    fashion_mnist: train_subset (null | N first images), crop_padding, flip
    imagenet: crop_size, resize_size
"""

from gsprune.tasks.image.datasets import DATASETS, SCALES, FashionMNIST, ImageData, ImageNet
from gsprune.tasks.image.resnet import BasicBlock, SmallResNet, build_classifier
from gsprune.tasks.image.task import ImageTask

__all__ = [
    "DATASETS",
    "SCALES",
    "BasicBlock",
    "FashionMNIST",
    "ImageData",
    "ImageNet",
    "ImageTask",
    "SmallResNet",
    "build_classifier",
]
