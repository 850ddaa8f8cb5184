"""Low-precision training: number formats, rounding, chunked accumulation, FP8 layers.

Implements the techniques of Wang, Choi, Brand, Chen and Gopalakrishnan, "Training Deep
Neural Networks with 8-bit Floating Point Numbers" (NeurIPS 2018, arXiv:1812.08011):
an FP8 (1-5-2) data format, FP16 (1-6-9) chunk-based accumulation for the three GEMMs of
every layer, and stochastic rounding for FP16 weight updates -- all emulated bit-exactly in
float32 on any machine. :func:`convert_to_fp8` converts linear, convolution, embedding,
attention (transformers included) and recurrent layers, and reports whatever it leaves in
float32.

On CPU the rounding and the sequential chunk accumulation run in a small C library compiled
with the system C compiler at first use (see :mod:`neurips18.lowprec._native`); without a
compiler, or with ``NEURIPS18_LOWPREC_NATIVE=0``, PyTorch kernels give the same bits, slower.
"""

from neurips18.lowprec.accumulate import chunked_matmul, chunked_sum
from neurips18.lowprec.attention import Fp8MultiheadAttention, Fp8TransformerEncoderLayer
from neurips18.lowprec.convert import (
    Fp8ConversionWarning,
    Fp8Report,
    ReportEntry,
    convert_to_fp8,
    fp8_report,
)
from neurips18.lowprec.formats import BF16, E4M3, E5M2, E6M9, FP16, FP32, PRESETS, FloatFormat
from neurips18.lowprec.layers import Fp8Conv1d, Fp8Conv2d, Fp8Embedding, Fp8Linear, Fp8Recipe
from neurips18.lowprec.optim import StochasticRoundingSGD, sr_sgd
from neurips18.lowprec.quantize import is_representable, quantize
from neurips18.lowprec.recurrent import Fp8GRU, Fp8LSTM, Fp8RNN

__all__ = [
    "BF16", "E4M3", "E5M2", "E6M9", "FP16", "FP32", "PRESETS", "FloatFormat",
    "Fp8ConversionWarning", "Fp8Conv1d", "Fp8Conv2d", "Fp8Embedding", "Fp8GRU", "Fp8LSTM",
    "Fp8Linear", "Fp8MultiheadAttention", "Fp8RNN", "Fp8Recipe", "Fp8Report",
    "Fp8TransformerEncoderLayer", "ReportEntry", "StochasticRoundingSGD", "chunked_matmul",
    "chunked_sum", "convert_to_fp8", "fp8_report", "is_representable", "quantize", "sr_sgd",
]
