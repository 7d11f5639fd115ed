"""What ``nbrisk reproduce`` runs, as data: the classifiers of the paper and the two profiles.

Both the protocol (:mod:`nbrisk_core.reproduce.protocol`) and the report's sections
(:mod:`nbrisk_core.reproduce.sections`) read these; neither imports the other's module for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClassifierSpec:
    key: str
    arch: str
    variant: str
    label: str


#: the paper's four Swin-T variants, then the CNN baselines (trained on ART images as in the paper)
CLASSIFIERS: tuple[ClassifierSpec, ...] = (
    ClassifierSpec("swin_nc", "swin_t", "nc", "Swin-NC"),
    ClassifierSpec("swin_art", "swin_t", "art", "Swin-ART"),
    ClassifierSpec("swin_pv", "swin_t", "pv", "Swin-PV"),
    ClassifierSpec("swin_mp", "swin_t", "mp", "Swin-MP"),
    ClassifierSpec("resnet", "resnet50", "art", "ResNet-50"),
    ClassifierSpec("densenet", "densenet121", "art", "DenseNet-121"),
    ClassifierSpec("alexnet", "alexnet", "art", "AlexNet"),
    ClassifierSpec("vgg", "vgg16", "art", "VGG-16"),
)

#: ``recipe``: the fields of :class:`~nbrisk_core.classifier.training.Recipe` the profile changes from the
#: paper's fine-tuning recipe (the classifiers' seed is the run's ``--seed``)
PROFILES: dict[str, dict] = {
    "paper": {"recipe": {}, "tiny_swin": False, "grid": "full",
              "description": "the paper's recipe: Adam, cosine T_max 20 from 1e-5, batch 8, at most 100 "
                             "epochs, early stopping after epoch 25 with patience 10 on a validation split; "
                             "full grid"},
    "quick": {"recipe": {"max_epochs": 1, "early_stop_after": 1, "patience": 1}, "tiny_swin": True,
              "grid": "quick",
              "description": "every step of the protocol, but 1 epoch per classifier, Swin variants in a "
                             "tiny configuration (not Swin-T tiny), and the reduced combination grid: a smoke "
                             "run, its classifier numbers are not comparable with the paper's"},
}
