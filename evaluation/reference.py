"""The official HTS-AT forward pass, op for op, over an HTSAT module's weights.

This is the benchmark's baseline ("what the research code costs") and a second opinion in the parity tests.
It mirrors the official module's eager operations: torchlibrosa's convolution STFT, 4-D transposes around
bn0, explicit softmax attention with the bias and mask added as separate steps, and the same layout copies.
"""

import math

import torch
from torch.nn import functional as F

from htsat_live.model.frontend import AMIN, N_FFT
from htsat_live.model.htsat import (
    FREQ_RATIO,
    HTSAT,
    PatchMerging,
    SwinBlock,
    window_partition,
    window_reverse,
)
from htsat_live.model.timebase import HOP_LENGTH, MODEL_FRAMES


def stft_kernels() -> tuple[torch.Tensor, torch.Tensor]:
    """torchlibrosa's DFT-as-convolution kernels: periodic Hann times cos / -sin, [513, 1, 1024] each."""
    n = torch.arange(N_FFT, dtype=torch.float64)
    k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)
    window = 0.5 - 0.5 * torch.cos(2 * math.pi * n / N_FFT)
    angle = 2 * math.pi * torch.outer(k, n) / N_FFT  # [513, 1024]
    real = (window * torch.cos(angle)).float()[:, None, :]
    imag = (-window * torch.sin(angle)).float()[:, None, :]
    return real, imag


class ReferenceHTSAT:
    """Callable like the official model in eval/infer mode: wave [B, N] -> (clipwise [B, C], framewise [B, 1024, C])."""

    def __init__(self, model: HTSAT):
        self.model = model.eval()
        self.conv_real, self.conv_imag = stft_kernels()

    @torch.inference_mode()
    def __call__(self, wave: torch.Tensor, tile_short: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        x = F.pad(wave[:, None, :], (N_FFT // 2, N_FFT // 2), mode="reflect")
        real = F.conv1d(x, self.conv_real, stride=HOP_LENGTH).transpose(1, 2)[:, None]  # [B, 1, T, 513]
        imag = F.conv1d(x, self.conv_imag, stride=HOP_LENGTH).transpose(1, 2)[:, None]
        x = torch.matmul(real**2 + imag**2, m.frontend.mel_fb)  # [B, 1, T, 64]
        x = 10.0 * torch.log10(torch.clamp(x, min=AMIN))
        x = x.transpose(1, 3)
        x = F.batch_norm(x, m.bn0.running_mean, m.bn0.running_var, m.bn0.weight, m.bn0.bias, False, 0.0, m.bn0.eps)
        x = x.transpose(1, 3)  # [B, 1, T, 64]
        if tile_short:
            x = x.repeat(1, 1, MODEL_FRAMES // x.shape[2], 1)
        x = self._wav2img(x)
        return self._features(x)

    def _wav2img(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[2] < MODEL_FRAMES:
            x = F.interpolate(x, (MODEL_FRAMES, x.shape[3]), mode="bicubic", align_corners=True)
        x = x.permute(0, 1, 3, 2).contiguous()
        x = x.reshape(x.shape[0], x.shape[1], x.shape[2], FREQ_RATIO, x.shape[3] // FREQ_RATIO)
        x = x.permute(0, 1, 3, 2, 4).contiguous()
        return x.reshape(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], x.shape[4])

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        frames = x.shape[2]
        x = m.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = m.patch_embed.norm(x)
        for stage in m.layers:
            for block in stage.blocks:
                x = self._block(block, x)
            if stage.downsample is not None:
                x = self._merge(stage.downsample, x)
        x = m.norm(x)
        b, n, c = x.shape
        side = frames // 2 ** (len(m.config.depths) - 1) // m.config.patch_stride
        x = x.permute(0, 2, 1).contiguous().reshape(b, c, side, side)
        rows = side // FREQ_RATIO
        x = x.reshape(b, c, side // rows, rows, side).permute(0, 1, 3, 2, 4).contiguous().reshape(b, c, rows, -1)
        x = m.tscam_conv(x)
        x = torch.flatten(x, 2)  # [B, C, 32]
        repeat = MODEL_FRAMES // x.shape[2]
        framewise = torch.sigmoid(x).permute(0, 2, 1).contiguous()
        framewise = framewise[:, :, None, :].repeat(1, 1, repeat, 1).reshape(b, -1, x.shape[1])
        clipwise = torch.sigmoid(torch.flatten(F.adaptive_avg_pool1d(x, 1), 1))
        return clipwise, framewise

    @staticmethod
    def _block(block: SwinBlock, x: torch.Tensor) -> torch.Tensor:
        h = w = block.resolution
        b, length, c = x.shape
        shortcut = x
        x = block.norm1(x).view(b, h, w, c)
        if block.shift:
            x = torch.roll(x, shifts=(-block.shift, -block.shift), dims=(1, 2))
        windows = window_partition(x, block.window)
        attn = block.attn
        bw, n, _ = windows.shape
        qkv = attn.qkv(windows).reshape(bw, n, 3, attn.heads, c // attn.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * (c // attn.heads) ** -0.5
        scores = q @ k.transpose(-2, -1)
        scores = scores + attn.position_bias().contiguous().unsqueeze(0)
        if block.attn_mask is not None:
            nw = block.attn_mask.shape[0]
            scores = scores.view(bw // nw, nw, attn.heads, n, n) + block.attn_mask.unsqueeze(1).unsqueeze(0)
            scores = scores.view(-1, attn.heads, n, n)
        scores = F.softmax(scores, dim=-1)
        out = attn.proj((scores @ v).transpose(1, 2).reshape(bw, n, c))
        x = window_reverse(out.view(-1, block.window, block.window, c), block.window, h, w)
        if block.shift:
            x = torch.roll(x, shifts=(block.shift, block.shift), dims=(1, 2))
        x = shortcut + x.reshape(b, h * w, c)
        return x + block.mlp(block.norm2(x))

    @staticmethod
    def _merge(merge: PatchMerging, x: torch.Tensor) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, merge.resolution, merge.resolution, c)
        x = torch.cat([x[:, 0::2, 0::2, :], x[:, 1::2, 0::2, :], x[:, 0::2, 1::2, :], x[:, 1::2, 1::2, :]], -1)
        return merge.reduction(merge.norm(x.view(b, -1, 4 * c)))
