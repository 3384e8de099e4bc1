"""PANN CNN14 (Kong et al. 2020, "PANNs: Large-Scale Pretrained Audio Neural Networks").

A readable definition whose parameter names match the released AudioSet checkpoint
(``Cnn14_mAP=0.431.pth``), so its state dict loads strictly. The release computed its log-mel
front end with torchlibrosa (an STFT as a conv and librosa's mel filters, stored in the
checkpoint); here torchaudio computes the same quantities: hann-windowed STFT (centred, reflect
padding), power spectrum, Slaney mel filters (librosa's default) and ``10 * log10`` with a floor
of 1e-10 and no ``top_db`` clipping. The front end has no learnt weights, so the checkpoint's
copies of them are ignored (``FRONT_END_KEYS``).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

SAMPLE_RATE = 32000
WINDOW = 1024  # n_fft and window length
HOP = 320  # 10 ms
MEL_BINS = 64
FMIN = 50.0
FMAX = 14000.0
AMIN = 1e-10  # power floor before the log
EMBEDDING_DIM = 2048
CLASSES = 527  # AudioSet
POOLED_BLOCKS = 5  # blocks 1-5 halve time and frequency; block 6 does not pool
# Each 2x2 pool floors, so the spectrogram needs 2**5 frames to leave one; with a centred STFT
# a waveform of n samples has 1 + n // HOP frames.
MIN_SAMPLES = HOP * (2**POOLED_BLOCKS - 1)

# torchlibrosa's fixed STFT kernels and mel matrix in the released checkpoint: recomputed by
# torchaudio here, so these (and only these) keys are skipped when loading.
FRONT_END_KEYS = frozenset(
    {
        "spectrogram_extractor.stft.conv_real.weight",
        "spectrogram_extractor.stft.conv_imag.weight",
        "logmel_extractor.melW",
    }
)


class LogMel(nn.Module):
    """Waveform (B, samples) at 32 kHz -> log-mel power in dB (B, MEL_BINS, frames)."""

    def __init__(self) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=WINDOW,
            win_length=WINDOW,
            hop_length=HOP,
            f_min=FMIN,
            f_max=FMAX,
            n_mels=MEL_BINS,
            window_fn=torch.hann_window,  # periodic, as librosa's get_window(fftbins=True)
            power=2.0,
            center=True,
            pad_mode="reflect",
            norm="slaney",
            mel_scale="slaney",
        )

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        return 10.0 * torch.log10(self.mel(waves).clamp(min=AMIN))


class ConvBlock(nn.Module):
    """Two 3x3 conv + BN + ReLU, then average pooling (names as in the release)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool)


class Cnn14(nn.Module):
    """CNN14 for inference: dropout and SpecAugment are training-only and left out.

    ``fc_audioset`` is unused by ``embed`` but kept so the released state dict loads strictly.
    """

    def __init__(self) -> None:
        super().__init__()
        self.front_end = LogMel()
        self.bn0 = nn.BatchNorm2d(MEL_BINS)  # normalises each mel bin
        self.conv_block1 = ConvBlock(1, 64)
        self.conv_block2 = ConvBlock(64, 128)
        self.conv_block3 = ConvBlock(128, 256)
        self.conv_block4 = ConvBlock(256, 512)
        self.conv_block5 = ConvBlock(512, 1024)
        self.conv_block6 = ConvBlock(1024, 2048)
        self.fc1 = nn.Linear(2048, EMBEDDING_DIM)
        self.fc_audioset = nn.Linear(EMBEDDING_DIM, CLASSES)

    def embed(self, waves: torch.Tensor) -> torch.Tensor:
        """(B, samples >= MIN_SAMPLES) -> (B, 2048) fc1 embedding, after its ReLU."""
        x = self.front_end(waves)  # (B, mel, time)
        x = self.bn0(x.unsqueeze(-1))  # mel bins as channels
        x = x.squeeze(-1).transpose(1, 2).unsqueeze(1)  # (B, 1, time, mel)
        x = self.conv_block1(x, pool=2)
        x = self.conv_block2(x, pool=2)
        x = self.conv_block3(x, pool=2)
        x = self.conv_block4(x, pool=2)
        x = self.conv_block5(x, pool=2)
        x = self.conv_block6(x, pool=1)
        x = x.mean(dim=3)  # over frequency: (B, channels, time)
        x = x.amax(dim=2) + x.mean(dim=2)
        return F.relu(self.fc1(x))

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """AudioSet tag probabilities (B, 527), as the release's ``clipwise_output``."""
        return torch.sigmoid(self.fc_audioset(self.embed(waves)))


def network_state(model: Cnn14) -> dict[str, torch.Tensor]:
    """The state a checkpoint must supply: everything but the front end's fixed buffers.

    BatchNorm's ``num_batches_tracked`` counters are optional: eval mode never reads them.
    """
    return {k: v for k, v in model.state_dict().items() if not k.startswith("front_end.")}


def check_state_dict(model: Cnn14, state: dict[str, torch.Tensor], path: Path) -> None:
    """A ``ValueError`` naming ``path`` and the first misfits; front-end keys are allowed."""
    expected = network_state(model)
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected and k not in FRONT_END_KEYS]
    wrong = [
        f"{k} {tuple(getattr(state[k], 'shape', ()))} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and getattr(state[k], "shape", None) != v.shape
    ]
    problems = [
        f"{what} ({len(keys)}): {', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong))
        if keys
    ]
    if problems:
        raise ValueError(f"{path} is not a PANN CNN14 state dict: {'; '.join(problems)}")


def load_cnn14(state: dict[str, torch.Tensor], path: Path) -> Cnn14:
    """CNN14 in eval mode with ``state`` loaded; strict on every network parameter."""
    model = Cnn14()
    check_state_dict(model, state, path)
    network = {k: v for k, v in state.items() if k not in FRONT_END_KEYS}
    model.load_state_dict(network, strict=False)  # strictness was checked above
    return model.eval()
