"""Benchmark of the accelerated decoders against accelerated AR and against AR's physical floor.

Per strategy: forward passes per image, latency per image (median over >= 10 timed images after
warm-up; the strategies' images interleaved, so load changes hit every row alike), tokens/s,
speed-up over accelerated AR, step compression. For AR also the time per step against its
floor: max(weight bytes / measured copy bandwidth, measured empty-op launch time). Weights are
random (LlamaGen architecture at its published size) unless a local checkpoint in the official
layout is given; random weights make timings real but acceptance rates (and so step
compression) unrepresentative of a trained model.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from jacobi_oracle.accelerated import ACCELERATED, WINDOW_DECODERS, build_accelerated
from jacobi_oracle.accelerated.jacobi import AcceleratedWindowDecoder
from jacobi_oracle.models.llamagen import CONFIGS, LlamaGen, llamagen_config, load_llamagen
from jacobi_oracle.models.trained import load_trained
from jacobi_oracle.reference.presets import REAL_MODEL_PARAMS, build_preset, real_params
from jacobi_oracle.spec.errors import InvalidParameterError
from jacobi_oracle.spec.layout import Layout
from jacobi_oracle.spec.model import Model
from jacobi_oracle.spec.randomness import KeyedRandomness, Randomness
from jacobi_oracle.spec.row_entry import RowEntryProxy
from jacobi_oracle.spec.sampling import Sampling

MODEL_PREFIX = "llamagen-"
TRAINED = "trained"  # jacobi_oracle/assets/photos-llamagen.safetensors (models/trained.py)
MIN_TIMED_IMAGES = 10
HF_PEER = "hf"
HF_PEER_ROW = "hf-generate (peer)"


@dataclass(frozen=True)
class BenchConfig:
    model: str = "llamagen-tiny"
    grid: int = 4
    strategies: tuple[str, ...] = ("ar", "sjd")
    window: int = 16
    images: int = MIN_TIMED_IMAGES
    warmup: int = 2
    batch: int = 1
    cfg_scale: float = 4.0
    top_k: int | None = None
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    checkpoint: str | None = None
    threads: int | None = None  # CPU threads (1 avoids contention on a loaded machine)
    reference_images: int = 0  # also time reference/ (query contract, no cache) on this many images
    peer: str | None = None  # "hf": also time transformers' Llama `generate` of the same size
    compile: bool = False  # also time each raster-window preset's torch.compile'd static-shape step (warmup >= 1)

    def __post_init__(self) -> None:
        # Verify the model name, the image count and the dtype
        if self.model != TRAINED and (
            not self.model.startswith(MODEL_PREFIX) or self.model[len(MODEL_PREFIX) :] not in CONFIGS
        ):
            names = ", ".join([TRAINED] + [MODEL_PREFIX + n for n in CONFIGS])
            raise InvalidParameterError(f"unknown bench model {self.model!r}; known: {names}")
        for entry in self.strategies:
            strategy_params(entry, self.window)  # raises on an unknown preset or a bad name:W
        if self.peer not in (None, HF_PEER):
            raise InvalidParameterError(f"unknown peer {self.peer!r}; known: {HF_PEER}")
        if self.images < MIN_TIMED_IMAGES:
            raise InvalidParameterError(f"images must be >= {MIN_TIMED_IMAGES} (median latency), got {self.images}")
        if self.dtype not in ("float32", "float64", "bfloat16", "float16"):
            raise InvalidParameterError(f"dtype must be float32, float64, bfloat16 or float16, got {self.dtype!r}")
        if self.compile and self.warmup < 1:
            raise InvalidParameterError("--compile needs --warmup >= 1: the first image pays the compilation")
        if self.grid < 1 or self.batch < 1 or self.warmup < 0:
            raise InvalidParameterError(
                f"grid, batch >= 1 and warmup >= 0 needed, got {self.grid}, {self.batch}, {self.warmup}"
            )


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def build_bench_model(config: BenchConfig, device: torch.device) -> LlamaGen:
    dtype = getattr(torch, config.dtype)
    if config.model == TRAINED:  # the committed model: trained acceptance rates
        return load_trained().for_grid(config.grid).to(device=device, dtype=dtype)
    arch = llamagen_config(config.model[len(MODEL_PREFIX) :], grid_size=config.grid)
    if config.checkpoint is not None:
        return load_llamagen(config.checkpoint, arch, dtype=dtype).to(device)
    torch.manual_seed(config.seed)
    model = LlamaGen(arch)
    torch.nn.init.normal_(model.output.weight, std=arch.dim**-0.5)  # non-flat logits (official init zeroes it)
    return model.to(device=device, dtype=dtype).eval().requires_grad_(False)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_bandwidth(device: torch.device) -> float:
    """Bytes / s of a large device-to-device copy (read + write counted)."""
    numel = (256 if device.type == "cuda" else 32) * 2**20 // 4
    src = torch.ones(numel, device=device)
    dst = torch.empty_like(src)
    seconds = median_seconds(lambda: dst.copy_(src), device, repeats=10)
    return 2 * src.numel() * src.element_size() / seconds


def measure_empty_launch(device: torch.device) -> float:
    """Seconds of one minimal device op (dispatch + launch of a 1-element add)."""
    x = torch.zeros(1, device=device)
    return median_seconds(lambda: x.add_(0), device, repeats=200)


def split_window(entry: str) -> tuple[str, int | None]:
    """'name' or 'name:W' (the preset with window W, e.g. gumbel-jacobi-above:128)."""
    name, colon, window = entry.partition(":")
    # Verify the window override is an int >= 1
    if colon and not (window.isdigit() and int(window) >= 1):
        raise InvalidParameterError(f"{entry!r}: the window after ':' must be an int >= 1")
    return name, int(window) if colon else None


def strategy_params(entry: str, window: int) -> dict[str, Any]:
    """The real-model parameters of preset `name` (experiments/realtable.py), with the bench's
    window for the raster-window presets; `name:W` sets the window to W."""

    name, override = split_window(entry)
    # Verify the preset has an accelerated decoder
    if name not in ACCELERATED:
        raise InvalidParameterError(f"no accelerated decoder for {name!r}; accelerated: {', '.join(ACCELERATED)}")
    params = real_params(name)
    if override is not None:
        # Verify the preset has a window to set
        if "window" not in params:
            raise InvalidParameterError(f"{entry!r}: preset {name!r} has no window")
        params["window"] = override
    elif name not in REAL_MODEL_PARAMS and "window" in params:
        params["window"] = window
    return params


def decoding_model(name: str, model: LlamaGen) -> Model:
    """The model a preset decodes: raster presets the bare model, the others (rows started
    early) through the row-entry proxy (spec/row_entry.md), which changes nothing for raster."""
    return model if name in WINDOW_DECODERS else RowEntryProxy(model)


COMPILED_SUFFIX = "+compiled"  # the row of a raster-window preset's torch.compile'd twin (--compile)


def image_timer(
    name: str, model: LlamaGen, config: BenchConfig, layout: Layout, sampling: Sampling, device: torch.device
) -> Callable[[int], tuple[float, list[int]]]:
    """A function timing preset `name`'s image `image` (a batch of config.batch samples):
    seconds per sample and each sample's forward passes. Classes cycle over the samples.
    `name` + COMPILED_SUFFIX: the same decoder with its compiled static-shape step."""
    compiled = name.endswith(COMPILED_SUFFIX)
    name = name.removesuffix(COMPILED_SUFFIX)
    decoder = build_accelerated(split_window(name)[0], **strategy_params(name, config.window))
    if compiled:
        assert isinstance(decoder, AcceleratedWindowDecoder)
        decoder = replace(decoder, compiled=True)
    target = decoding_model(split_window(name)[0], model)

    def time_image(image: int) -> tuple[float, list[int]]:
        samples = [image * config.batch + b for b in range(config.batch)]
        conditions: list[int | None] = [s % model.num_classes for s in samples]
        noise: list[Randomness] = [KeyedRandomness(config.seed, s) for s in samples]
        synchronize(device)
        start = time.perf_counter()
        with torch.inference_mode():
            decoded = decoder.decode_batch(target, conditions, layout, sampling, noise)
        synchronize(device)
        return (time.perf_counter() - start) / config.batch, [d.forward_passes for d in decoded]

    return time_image


def summarise(name: str, latencies: list[float], passes: list[int], cells: int, batch: int) -> dict[str, Any]:
    """A bench row: median latency per image over the timed images, passes, step compression."""
    latency = statistics.median(latencies)
    mean_passes = statistics.fmean(passes)
    return {
        "strategy": name,
        "forward_passes_mean": mean_passes,
        "forward_passes_sd": statistics.pstdev(passes),
        "step_compression": cells / mean_passes,
        "latency_s_median": latency,
        "tokens_per_s": cells / latency,
        "time_per_pass_s": latency * batch / mean_passes,
    }


def time_reference(name: str, model: LlamaGen, config: BenchConfig, layout: Layout, sampling: Sampling) -> float:
    """Median seconds per image of the reference decoder (batch 1) on the same model."""
    reference = build_preset(split_window(name)[0], **strategy_params(name, config.window))
    target = decoding_model(split_window(name)[0], model)
    times = []
    for image in range(config.reference_images):
        start = time.perf_counter()
        with torch.inference_mode():
            reference.decode(target, 0, layout, sampling, KeyedRandomness(config.seed, image))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hf_peer_model(model: LlamaGen) -> Any:
    """transformers' LlamaForCausalLM of `model`'s size (width, depth, heads, SwiGLU width,
    vocabulary + class rows), random weights: the decoder a user would otherwise run."""
    try:
        from transformers import LlamaConfig, LlamaForCausalLM
    except ImportError as error:  # the `hf` extra
        raise InvalidParameterError("--peer hf needs transformers: pip install -e '.[hf]'") from error
    c = model.config
    config = LlamaConfig(
        vocab_size=c.vocab_size + c.num_classes + 1,
        hidden_size=c.dim,
        intermediate_size=c.ffn_hidden,
        num_hidden_layers=c.n_layer,
        num_attention_heads=c.n_head,
        num_key_value_heads=c.kv_heads,
        max_position_embeddings=1 + c.num_positions,
        rms_norm_eps=c.norm_eps,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    weight = model.output.weight
    peer: Any = LlamaForCausalLM(config)
    return peer.to(device=weight.device, dtype=weight.dtype).eval()


def hf_generate(peer: Any, prompt: torch.Tensor, cells: int) -> torch.Tensor:
    """`cells` new tokens per row of [R, 1] `prompt` by transformers `generate` (sampling at
    T = 1, no top-k, KV cache on); refuses an early stop (which would flatter the peer)."""
    with torch.inference_mode():
        out: torch.Tensor = peer.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=cells,
            min_new_tokens=cells,
            do_sample=True,
            top_k=0,
            temperature=1.0,
            use_cache=True,
            pad_token_id=0,
        )
    # Verify generate produced every cell
    if out.shape[1] != prompt.shape[1] + cells:
        raise InvalidParameterError(f"hf generate returned {out.shape[1] - prompt.shape[1]} tokens, expected {cells}")
    return out


def hf_image_timer(
    model: LlamaGen, config: BenchConfig, layout: Layout, device: torch.device
) -> Callable[[int], tuple[float, list[int]]]:
    """Times transformers `generate` (sampling at T = 1, no top-k, KV cache on) of one image's
    tokens per call, batch 2 per sample when CFG is on (the cost of the unconditional row;
    generate does not mix the rows, so its tokens are not CFG samples: timing only)."""
    peer = hf_peer_model(model)
    rows = 2 * config.batch if config.cfg_scale != 1.0 else config.batch
    prompt = torch.zeros(rows, 1, dtype=torch.long, device=device)
    cells = layout.num_cells

    def time_image(image: int) -> tuple[float, list[int]]:
        synchronize(device)
        start = time.perf_counter()
        hf_generate(peer, prompt, cells)
        synchronize(device)
        return (time.perf_counter() - start) / config.batch, [cells] * config.batch

    return time_image


def run_bench(config: BenchConfig, command: str, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        return _run_bench(config, command, progress)
    finally:
        torch.set_num_threads(threads)


def _run_bench(config: BenchConfig, command: str, progress: Callable[[str], None] | None) -> dict[str, Any]:
    device = pick_device(config.device)
    model = build_bench_model(config, device)
    layout = Layout(config.grid, config.grid)
    sampling = Sampling(top_k=config.top_k, cfg_scale=config.cfg_scale)
    strategies = list(config.strategies)
    if "ar" not in strategies:
        strategies.insert(0, "ar")  # the baseline every speed-up is measured against
    if config.compile:  # each raster-window preset's compiled twin, timed beside it in the same run
        strategies += [n + COMPILED_SUFFIX for n in list(strategies) if split_window(n)[0] in WINDOW_DECODERS]
    timers = {name: image_timer(name, model, config, layout, sampling, device) for name in strategies}
    if config.peer == HF_PEER:
        timers[HF_PEER_ROW] = hf_image_timer(model, config, layout, device)
    latencies: dict[str, list[float]] = {name: [] for name in timers}
    passes: dict[str, list[int]] = {name: [] for name in timers}
    first: dict[str, float] = {}  # the first (untimed) image: with --compile, it pays the compilation
    # interleaved: image i of every strategy before image i + 1 of any, so a change of load
    # during the run hits every row alike and the ratios stay side by side
    for image in range(config.warmup + config.images):
        for name, time_image in timers.items():
            if progress is not None:
                progress(f"{name} image {image + 1}/{config.warmup + config.images}")
            seconds, image_passes = time_image(image)
            if image == 0:
                first[name] = seconds
            if image >= config.warmup:
                latencies[name].append(seconds)
                passes[name] += image_passes
    rows = [summarise(n, latencies[n], passes[n], layout.num_cells, config.batch) for n in timers]
    for row in rows:
        row["first_image_s"] = first[row["strategy"]]
        row["compiled"] = row["strategy"].endswith(COMPILED_SUFFIX)
    if config.reference_images:
        for row in rows[: len(strategies)]:
            if row["compiled"]:
                continue
            row["reference_latency_s_median"] = time_reference(row["strategy"], model, config, layout, sampling)
            row["speedup_over_reference"] = row["reference_latency_s_median"] / row["latency_s_median"]
    ar = next(r for r in rows if r["strategy"] == "ar")
    for row in rows:
        row["speedup_over_ar"] = ar["latency_s_median"] / row["latency_s_median"]
        row["speedup_over_compression"] = row["speedup_over_ar"] / (row["step_compression"] / ar["step_compression"])
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    bandwidth = measure_bandwidth(device)
    launch = measure_empty_launch(device)
    floor = max(weight_bytes / bandwidth, launch)
    ar.update(
        weight_bytes=weight_bytes,
        bandwidth_bytes_per_s=bandwidth,
        bandwidth_floor_s=weight_bytes / bandwidth,
        empty_launch_s=launch,
        step_over_floor=ar["time_per_pass_s"] / floor,
    )
    cuda_graphs = config.compile and device.type == "cuda"  # the compiled rows' step is a CUDA graph
    return run_record(config, device, command) | {"cuda_graphs": cuda_graphs, "results": rows}


def run_record(config: Any, device: torch.device, command: str) -> dict[str, Any]:
    """What every harness run records about itself: its config, device, torch, date and command."""
    return {
        "config": config.__dict__ | {"strategies": list(config.strategies)},
        "device": describe_device(device),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
