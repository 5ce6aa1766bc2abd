"""The settings of the training recipe (`htsat-live train`): optimiser, schedule, augmentation, loss, weight
average and arithmetic, with the recipe's defaults. The optimiser's settings (`OptimizerSettings`) are shared
with clip training (`clip_training.ClipRecipe`), which sets its own defaults."""

from dataclasses import dataclass

PRECISIONS = ("fp32", "bf16")  # training arithmetic; validation and the saved weights are always fp32


@dataclass(frozen=True)
class OptimizerSettings:
    """AdamW's settings and the steps it takes (epochs of batches); a recipe derives from it and gives its own
    defaults, the number of epochs at least."""

    epochs: int
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.05

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(self.betas))
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs, batch_size and lr must be positive")

    def optimizer(self, parameters):
        """torch's AdamW over `parameters` with these settings."""
        import torch

        return torch.optim.AdamW(parameters, lr=self.lr, betas=self.betas, eps=self.eps, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class TrainSettings(OptimizerSettings):
    epochs: int = 8
    warmup_fraction: float = 0.06  # of all steps
    final_lr_fraction: float = 0.01  # cosine decays to lr * this
    gain_db: float = 6.0  # per-example level change, uniform in +-gain_db
    time_masks: int = 2
    time_mask_frames: int = 80  # of 1001 frames
    freq_masks: int = 2
    freq_mask_bins: int = 8  # of 64 bins
    mixup_probability: float = 0.5  # share of batches mixed
    mixup_alpha: float = 1.0
    frame_loss_weight: float = 1.0
    band_limit_probability: float = 0.0  # share of examples whose mel bands above a BAND_LIMITS_HZ cut are emptied
    equalizer_db: float = 0.0  # per-example random tilt and bumps across the mel bands, within +-equalizer_db
    pitch_shift_bins: int = 0  # per-example shift of the mel bands, uniform in +-pitch_shift_bins
    ema_decay: float = 0.0  # > 0: also validate an exponential moving average of the weights (per step) each epoch
    precision: str = "fp32"  # "bf16": forward and backward under bfloat16 autocast (weights and optimizer stay fp32)
    seed: int = 8
    threads: int = 2

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.equalizer_db < 0 or self.pitch_shift_bins < 0:
            raise ValueError(
                f"equalizer_db and pitch_shift_bins must be >= 0, got {self.equalizer_db}, {self.pitch_shift_bins}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
