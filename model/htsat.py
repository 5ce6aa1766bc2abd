"""HTS-AT: a hierarchical Swin transformer over a folded log-mel image with a token-semantic head.

Parameter names follow the official implementation (RetroCirce/HTS-Audio-Transformer) so that its
checkpoints load unchanged. The forward pass reproduces the official eval path:

    wave [B, N] -> log-mel [B, T, 64] -> bn0 over mel bins -> (tile short clips) -> bicubic resize of time to
    1024 frames -> fold 1024x64 into a 256x256 image (4 time chunks stacked along frequency) -> patch embed ->
    4 Swin stages -> token-semantic conv head -> per-token logits [B, C, 32] -> clipwise / framewise scores.

Only what inference, fine-tuning and export use is kept (no hierarchical output, repeat mode, heatmaps).
"""

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from htsat_live.model.frontend import N_MELS, LogMel
from htsat_live.model.timebase import MODEL_FRAMES, SAMPLE_RATE

FREQ_RATIO = 4  # time chunks stacked along frequency when folding 1024 x 64 into 256 x 256


@dataclass(frozen=True)
class HTSATConfig:
    """Architecture numbers. The defaults are the full-size AudioSet model (31.3 M parameters)."""

    num_classes: int = 527
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 8
    spec_size: int = 256
    patch_size: int = 4
    patch_stride: int = 4
    mlp_ratio: float = 4.0
    mel_bins: int = N_MELS
    sample_rate: int = SAMPLE_RATE
    drop_path_rate: float = 0.1  # stochastic depth, active only in training

    def __post_init__(self):
        object.__setattr__(self, "depths", tuple(self.depths))
        object.__setattr__(self, "num_heads", tuple(self.num_heads))
        if len(self.depths) != len(self.num_heads):
            raise ValueError(f"depths {self.depths} and num_heads {self.num_heads} must have the same length")
        if self.spec_size * FREQ_RATIO != MODEL_FRAMES or self.spec_size // FREQ_RATIO != self.mel_bins:
            raise ValueError(f"spec_size {self.spec_size} must fold {MODEL_FRAMES} x {self.mel_bins} frames")
        if self.sample_rate != SAMPLE_RATE:
            raise ValueError(f"sample_rate must be {SAMPLE_RATE}, got {self.sample_rate}")
        for i, heads in enumerate(self.num_heads):
            if (self.embed_dim * 2**i) % heads:
                raise ValueError(f"stage {i}: width {self.embed_dim * 2**i} is not divisible by {heads} heads")
        if self.final_grid % FREQ_RATIO or MODEL_FRAMES % self.time_tokens:
            raise ValueError(f"final token grid {self.final_grid} does not fold back into time tokens")

    @property
    def num_features(self) -> int:
        return self.embed_dim * 2 ** (len(self.depths) - 1)

    @property
    def final_grid(self) -> int:
        """Side of the square token grid after the last stage (8 for the official model)."""
        return self.spec_size // self.patch_stride // 2 ** (len(self.depths) - 1)

    @property
    def time_tokens(self) -> int:
        """Time steps of the token-semantic map (32 for the official model: 312.5 ms each)."""
        return self.final_grid * FREQ_RATIO

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "HTSATConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown HTSATConfig fields: {sorted(unknown)}")
        return cls(**values)


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * nW, window * window, C]."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """[B * nW, window * window, C] -> [B, H, W, C]."""
    c = windows.shape[-1]
    x = windows.view(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """[N, N] index into the (2w-1)^2 bias table for every pair of positions in a window (N = w * w)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # [N, N, 2]
    return relative[:, :, 0] * (2 * window - 1) + relative[:, :, 1]


def shifted_window_mask(resolution: int, window: int, shift: int) -> torch.Tensor:
    """[nW, N, N] additive mask (0 or -100) that keeps cyclically shifted windows from mixing regions."""
    region = torch.zeros(1, resolution, resolution, 1)
    bounds = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    label = 0
    for rows in bounds:
        for cols in bounds:
            region[:, rows, cols, :] = label
            label += 1
    region_windows = window_partition(region, window)[..., 0]  # [nW, N]
    differs = region_windows[:, None, :] != region_windows[:, :, None]
    return torch.zeros(differs.shape).masked_fill(differs, -100.0)


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample during training."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a learned relative position bias."""

    def __init__(self, dim: int, window: int, heads: int):
        super().__init__()
        self.heads = heads
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer("relative_position_index", relative_position_index(window), persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def position_bias(self) -> torch.Tensor:
        """[heads, N, N]"""
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.heads).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x [B * nW, N, C]; mask [nW, N, N] or None -> [B * nW, N, C]."""
        bw, n, c = x.shape
        d = c // self.heads
        qkv = self.qkv(x).view(bw, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B * nW, heads, N, d]
        bias = self.position_bias()  # [heads, N, N]
        if mask is not None:  # windows of one image share a mask: fold (window, head) into one axis
            windows = mask.shape[0]
            bias = (bias[None] + mask[:, None]).reshape(windows * self.heads, n, n)  # [nW * heads, N, N]
            q, k, v = (t.reshape(bw // windows, windows * self.heads, n, d) for t in (q, k, v))
        # explicit softmax attention: on CPU it beats scaled_dot_product_attention with an additive mask
        scores = torch.matmul(q * d**-0.5, k.transpose(-2, -1)) + bias  # [..., N, N]
        out = torch.matmul(scores.softmax(dim=-1), v)  # [B * nW, heads, N, d] or [B, nW * heads, N, d]
        out = out.reshape(bw, self.heads, n, d).transpose(1, 2).reshape(bw, n, c)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwinBlock(nn.Module):
    """Window attention (cyclically shifted by half a window in odd blocks) then an MLP, both residual."""

    def __init__(
        self, dim: int, resolution: int, heads: int, window: int, shift: int, mlp_ratio: float, drop_path: float
    ):
        super().__init__()
        if resolution <= window:  # one window covers the whole grid: nothing to shift
            window, shift = resolution, 0
        self.resolution = resolution
        self.window = window
        self.shift = shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window, heads)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        mask = shifted_window_mask(resolution, window, shift) if shift else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H * W, C] -> [B, H * W, C]"""
        b, length, c = x.shape
        h = w = self.resolution
        y = self.norm1(x).view(b, h, w, c)
        if self.shift:
            y = torch.roll(y, shifts=(-self.shift, -self.shift), dims=(1, 2))
        y = self.attn(window_partition(y, self.window), self.attn_mask)
        y = window_reverse(y, self.window, h, w)
        if self.shift:
            y = torch.roll(y, shifts=(self.shift, self.shift), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, length, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Halves the grid: each 2x2 neighbourhood [4C] -> LayerNorm -> Linear -> [2C]."""

    def __init__(self, dim: int, resolution: int):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, H * W, C] -> [B, H/2 * W/2, 2C]"""
        b, _, c = x.shape
        x = x.view(b, self.resolution, self.resolution, c)
        # official order: (even row, even col), (odd, even), (even, odd), (odd, odd)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))


class SwinStage(nn.Module):
    def __init__(
        self,
        dim: int,
        resolution: int,
        depth: int,
        heads: int,
        config: HTSATConfig,
        drop_paths: list[float],
        merge: bool,
    ):
        super().__init__()
        self.blocks = nn.ModuleList(
            SwinBlock(
                dim,
                resolution,
                heads,
                config.window_size,
                0 if i % 2 == 0 else config.window_size // 2,
                config.mlp_ratio,
                drop_paths[i],
            )
            for i in range(depth)
        )
        self.downsample = PatchMerging(dim, resolution) if merge else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    """[B, 1, 256, 256] image -> non-overlapping 4x4 patches -> [B, 64 * 64, embed_dim]."""

    def __init__(self, config: HTSATConfig):
        super().__init__()
        padding = (config.patch_size - config.patch_stride) // 2
        self.proj = nn.Conv2d(1, config.embed_dim, config.patch_size, config.patch_stride, padding)
        self.norm = nn.LayerNorm(config.embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


def tile_frames(mel: torch.Tensor) -> torch.Tensor:
    """Official infer mode for short clips: [B, T, F] -> [B, T * floor(1024 / T), F]."""
    return mel.repeat(1, MODEL_FRAMES // mel.shape[1], 1)


def fold_to_image(mel: torch.Tensor) -> torch.Tensor:
    """[B, T, 64] -> bicubic resize of time to 1024 -> [B, 1, 256, 256] (4 time chunks stacked on frequency)."""
    b, _, f = mel.shape
    x = F.interpolate(mel[:, None], size=(MODEL_FRAMES, f), mode="bicubic", align_corners=True)  # [B, 1, 1024, 64]
    x = x.transpose(2, 3).reshape(b, 1, f, FREQ_RATIO, MODEL_FRAMES // FREQ_RATIO)  # [B, 1, 64, 4, 256]
    return x.transpose(2, 3).reshape(b, 1, f * FREQ_RATIO, MODEL_FRAMES // FREQ_RATIO)  # [B, 1, 256, 256]


class HTSAT(nn.Module):
    def __init__(self, config: HTSATConfig):
        super().__init__()
        self.config = config
        self.frontend = LogMel()
        self.bn0 = nn.BatchNorm1d(config.mel_bins)
        self.patch_embed = PatchEmbed(config)
        drop_paths = torch.linspace(0, config.drop_path_rate, sum(config.depths)).tolist()
        resolution = config.spec_size // config.patch_stride
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(config.depths, config.num_heads)):
            first = sum(config.depths[:i])
            merge = i < len(config.depths) - 1
            self.layers.append(
                SwinStage(
                    config.embed_dim * 2**i,
                    resolution // 2**i,
                    depth,
                    heads,
                    config,
                    drop_paths[first : first + depth],
                    merge,
                )
            )
        self.norm = nn.LayerNorm(config.num_features)
        freq_rows = config.final_grid // FREQ_RATIO
        self.tscam_conv = nn.Conv2d(config.num_features, config.num_classes, kernel_size=(freq_rows, 3), padding=(0, 1))
        self.apply(_init_weights)

    def logmel(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, N] -> log-mel dB [B, T, 64] (before bn0)."""
        return self.frontend(wave)

    def token_logits(self, mel: torch.Tensor, bf16: bool = False) -> torch.Tensor:
        """log-mel [B, T, 64] (T <= 1024, already tiled if wanted) -> per-token logits [B, C, 32].

        bf16: the trunk's matrix products run in bfloat16 under autocast; weights, layer norms, softmax and the
        residual sums keep float32, and so do the front end and bn0 (dB values need its precision).
        """
        image = self.image(mel)
        with torch.autocast(image.device.type, dtype=torch.bfloat16, enabled=bf16):
            return self.trunk(image)

    def image(self, mel: torch.Tensor) -> torch.Tensor:
        """log-mel [B, T, 64] -> bn0 -> folded image [B, 1, 256, 256] (float32)."""
        return fold_to_image(self.bn0(mel.transpose(1, 2)).transpose(1, 2))

    def trunk(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 1, 256, 256] -> per-token logits [B, C, 32]: the transformer, which other engines may run."""
        x = self.patch_embed(image)  # [B, 64 * 64, D]
        for stage in self.layers:
            x = stage(x)
        x = self.norm(x)  # [B, 8 * 8, 8D]
        b, _, d = x.shape
        grid = self.config.final_grid
        rows = grid // FREQ_RATIO
        x = x.transpose(1, 2).reshape(b, d, FREQ_RATIO, rows, grid)  # rows = (time chunk, freq)
        x = x.transpose(2, 3).reshape(b, d, rows, FREQ_RATIO * grid)  # [B, 8D, 2, 32] chunks back in time order
        return self.tscam_conv(x).flatten(2).float()  # [B, C, 32]

    def forward(
        self, wave: torch.Tensor, tile_short: bool = False, bf16: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """wave [B, N] -> clipwise [B, C], framewise [B, 1024, C] (probabilities); bf16 as in token_logits."""
        mel = self.logmel(wave)
        if tile_short:
            mel = tile_frames(mel)
        return scores_from_logits(self.token_logits(mel, bf16))


def scores_from_logits(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """token logits [B, C, T_tok] -> clipwise [B, C], framewise [B, 1024, C] (each token repeated)."""
    clipwise = torch.sigmoid(logits.mean(-1))
    framewise = torch.sigmoid(logits).transpose(1, 2).repeat_interleave(MODEL_FRAMES // logits.shape[-1], dim=1)
    return clipwise, framewise


def _init_weights(module: nn.Module) -> None:
    """Swin's initialisation, used when training from scratch."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
