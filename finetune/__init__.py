"""strata.finetune: classifiers on pretrained encoders, the comparison with training from scratch, and the
encoder as a feature extractor (scikit-learn, TorchScript, ONNX)."""
import pretrain as _pretrain

if not hasattr(_pretrain, "__path__"):  # a module, not strata's package: a pretrain.py in the working directory
    raise ImportError(f"{_pretrain.__file__} shadows strata's package `pretrain`: rename that file, or run the "
                      "`strata` command, which does not import from the working directory")
from .api import fit
from .classifier import Classifier, load_classifier, save_classifier
from .export import export_onnx, export_torchscript
from .estimator import AutoencoderClassifier
from .features import EncoderTransformer, FeatureError, compute_codes
from .run import build_encoder, finetune_once, run_finetuning

__all__ = ["AutoencoderClassifier", "Classifier", "fit", "EncoderTransformer", "FeatureError", "build_encoder", "compute_codes", "export_onnx",
           "export_torchscript", "finetune_once", "load_classifier", "run_finetuning", "save_classifier"]
