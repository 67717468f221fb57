"""The model zoo: `build_model(cfg.model, spec, num_outputs)` picks a model by `model.type`.

    mlp          tabular rows (optional categorical embeddings) or flattened images
    lenet        image: conv blocks + fully connected layers
    resnet       image: a small residual network
    rnn          text: embedding + RNN/LSTM/GRU + pooling
    transformer  text: a pre-norm Transformer encoder, attention written out in layers.py
    lm           corpus: the config-driven GPT / BERT / LLaMA language model (lm.py)

Every classifier is called as `model(**batch_without_target)` and returns (N, num_outputs).
"""

from practicum.models.build import DATA_KINDS, MODELS, SpecLike, build_model, models_for
from practicum.models.cnn import LeNet, ResNet
from practicum.models.lm import KVCache, TransformerLM
from practicum.models.mlp import MLP, ImageMLP
from practicum.models.pretrained import PretrainedClassifier
from practicum.models.rnn import RNNClassifier
from practicum.models.transformer import TransformerClassifier

__all__ = [
    "DATA_KINDS",
    "MLP",
    "MODELS",
    "PretrainedClassifier",
    "ImageMLP",
    "KVCache",
    "LeNet",
    "RNNClassifier",
    "ResNet",
    "SpecLike",
    "TransformerClassifier",
    "TransformerLM",
    "build_model",
    "models_for",
]
