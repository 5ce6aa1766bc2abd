"""HTS-AT model core: `load_model(path).predict(wave)` is the API everything else calls."""

from model.predictor import Predictor, load_model

__all__ = ["Predictor", "load_model"]
