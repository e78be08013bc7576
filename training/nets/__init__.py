"""Network zoo, registered by name so that the CLI, export and tests loop over one registry.

Importing this package imports every family module, which registers its builders.
"""

from training.nets import alexnet, googlenet, lenet, resnet, vgg  # noqa: E402,F401  (registers builders)
from training.nets.registry import PRESETS, ArchInfo, Preset, build, get_arch, list_archs, register

__all__ = ["PRESETS", "ArchInfo", "Preset", "build", "get_arch", "list_archs", "register"]
