"""Classifier stage: the Swin-T family of the paper (Swin-NC, -ART, -PV, -MP) and CNN baselines.

Modules (import the one you need; this package imports nothing heavy on its own):

``architectures``  the table of backbones, the paper's 16-neuron head, ``RiskClassifier`` (backbone + head)
``card``           the model card as a frozen, validated type; its data config feeds inference
``model_io``       safetensors weights + JSON model card, SHA-256 verified loading
``data``           cohort images and labels, the paper's augmentation
``training``       the paper's recipe (fine-tuning) and the synthetic pretraining stage, resumable
``metrics``        AUC with DeLong / bootstrap CI, confusion-matrix metrics, comparison tables
``explain``        Grad-CAM family via ``pytorch_grad_cam``
``inference``      device choice, the optimised CPU path, predicting one case
``embeddings``     the 16-d CT embedding per patient, cached on disk by model SHA-256
"""

#: class order of every model's output layer: index 0 = high risk, index 1 = non-high risk
CLASS_ORDER: tuple[str, str] = ("HR", "NHR")
HIDDEN_UNITS: int = 16
#: names of the backbones of :data:`nbrisk_core.classifier.architectures.ARCHITECTURES`, here so that reading a
#: model card (``card.ModelCard.from_record``) does not import torch and timm (the dashboard reads cards at
#: start; ``architectures`` checks at import that the two agree)
ARCHITECTURE_NAMES: tuple[str, ...] = ("swin_t", "resnet50", "densenet121", "vgg16", "alexnet")
#: the state-dict layout :class:`~nbrisk_core.classifier.architectures.RiskClassifier` writes (recorded in
#: the model card)
STATE_DICT_LAYOUT: int = 2
