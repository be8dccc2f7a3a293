"""Pictures of what PSRL's correspondence module does: flows as colours, frames, warped frames.

Flows follow transforms.warp: flow[..., 0] = dx (columns), flow[..., 1] = dy (rows, downwards), in
pixels. `flow_to_color` is the Middlebury colour coding (Baker et al., "A Database and Evaluation
Methodology for Optical Flow", IJCV 2011): the hue gives the direction (+x red, +y yellow-orange,
-x cyan-blue, -y blue-violet), the saturation the magnitude relative to a maximum, and zero flow
is white. Figures are built with matplotlib's Figure API on the Agg canvas (no pyplot, no global
state), so they work headless, in scripts and in notebooks (`figure_to_png`).

`external_flows` computes the flows the agent learns from, c^ext_{k+1->k} = C(z^t_{k+1}, z^q_k),
for a sequence of observations; everything numeric is a pure, jit-able function.
"""
import io
from typing import Optional, Sequence, Tuple

import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from psrl_jax import psrl, transforms

# Colour wheel segments of the Middlebury code (red-yellow, yellow-green, ..., magenta-red).
_RY, _YG, _GC, _CB, _BM, _MR = 15, 6, 4, 11, 13, 6


def color_wheel() -> np.ndarray:
    """The Middlebury colour wheel: 55 hues, uint8 [55, 3]; entry 0 is red (255, 0, 0).

    Six segments, red -> yellow -> green -> cyan -> blue -> magenta -> red, with one channel at 255,
    one ramping (floor(255 i / n) up, or 255 minus that down) and one at 0, as the Middlebury code.
    """
    segments = []
    # (length, channel held at 255, ramping channel, ramp goes up)
    for length, full, ramp, up in ((_RY, 0, 1, True), (_YG, 1, 0, False), (_GC, 1, 2, True),
                                   (_CB, 2, 1, False), (_BM, 2, 0, True), (_MR, 0, 2, False)):
        segment = np.zeros((length, 3), np.int64)
        steps = np.floor(255 * np.arange(length) / length).astype(np.int64)
        segment[:, full] = 255
        segment[:, ramp] = steps if up else 255 - steps
        segments.append(segment)
    return np.concatenate(segments).astype(np.uint8)


def flow_to_color(flow, max_magnitude: Optional[float] = None) -> np.ndarray:
    """Middlebury colour coding of a flow [H, W, 2] (dx, dy) -> uint8 RGB [H, W, 3].

    max_magnitude: the magnitude shown fully saturated (default: the largest in `flow`); larger
    magnitudes are darkened (x 0.75), as in the Middlebury code. Zero flow is white.
    """
    flow = np.asarray(flow, np.float64)
    if flow.ndim != 3 or flow.shape[-1] != 2:
        raise ValueError(f'expected a flow of shape [H, W, 2], got {flow.shape}')
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    if max_magnitude is None:
        max_magnitude = float(magnitude.max()) if magnitude.size else 0.0
    if not max_magnitude > 0:   # all-zero flow (or a zero scale): white
        return np.full(flow.shape[:2] + (3,), 255, np.uint8)
    u, v = flow[..., 0] / max_magnitude, flow[..., 1] / max_magnitude
    radius = np.sqrt(u * u + v * v)
    wheel = color_wheel().astype(np.float64) / 255.0
    n = len(wheel)
    angle = np.arctan2(-v, -u) / np.pi                 # in [-1, 1]; +x flow -> -1 -> entry 0
    position = (angle + 1.0) / 2.0 * (n - 1)
    k0 = np.floor(position).astype(np.int64)
    k1 = (k0 + 1) % n
    fraction = (position - k0)[..., None]
    color = (1.0 - fraction) * wheel[k0] + fraction * wheel[k1]
    inside = (radius <= 1.0)[..., None]
    color = np.where(inside, 1.0 - radius[..., None] * (1.0 - color), 0.75 * color)
    return np.floor(255.0 * color).astype(np.uint8)


def color_wheel_legend(size: int = 101) -> np.ndarray:
    """The colour key: pixel (y, x) shows the flow from the centre to it, the disc's edge at max
    magnitude; outside the disc is white. uint8 RGB [size, size, 3]."""
    half = (size - 1) / 2.0
    rows, cols = np.mgrid[0:size, 0:size]
    flow = np.stack([cols - half, rows - half], axis=-1) / max(half, 1.0)
    legend = flow_to_color(flow, max_magnitude=1.0)
    legend[np.hypot(flow[..., 0], flow[..., 1]) > 1.0] = 255
    return legend


def external_flows(online_params, target_params, observations: jnp.ndarray,
                   config: psrl.PSRLConfig) -> jnp.ndarray:
    """c^ext_{k+1->k} = C(z^t_{k+1}, z^q_k) along a sequence, in cells of the map C matches on
    (config.correspondence_map).

    online_params / target_params: psrl.init_params-style dicts with 'encoder' and
    'correspondence' (the target may be the online parameters, as SPR's tau = 0).
    observations: float [N+1, H, W, stack*c] in [0, 1]. Returns [N, h, w, 2].
    """
    query = psrl.encode(online_params, observations[None, :-1], config, config.early_map)[0]
    target = psrl.encode(target_params, observations[None, 1:], config, config.early_map)[0]
    return psrl.make_modules(config).correspondence.apply(online_params['correspondence'],
                                                          target, query)


def warp_previous(frames: jnp.ndarray, flows: jnp.ndarray) -> Tuple[jnp.ndarray, jnp.ndarray]:
    """warp(I_k, c_{k+1->k}), which should match I_{k+1}.

    frames: [N+1, H, W, c]; flows: [N, h, w, 2] in feature cells (up-sampled to H x W here).
    Returns (warped [N, H, W, c], flows in pixels [N, H, W, 2]).
    """
    height, width = frames.shape[1:3]
    pixels = transforms.upsample_flow(flows, height, width)
    return transforms.warp(frames[:-1], pixels), pixels


def _display(frame) -> np.ndarray:
    """A frame [H, W, c] (c = 1 gray or 3 RGB; uint8 or float in [0, 1]) -> float [H, W(, 3)]."""
    frame = np.asarray(frame)
    frame = frame / 255.0 if frame.dtype == np.uint8 else frame.astype(np.float64)
    frame = np.clip(frame, 0.0, 1.0)
    return frame[..., 0] if frame.shape[-1] == 1 else frame


def _grid(rows: int, cols: int, cell: float = 1.9, key: bool = False) -> tuple:
    """A Figure on the Agg canvas with rows x cols image axes (+ a narrow key column)."""
    ratios = [1.0] * cols + ([0.7] if key else [])
    fig = Figure(figsize=(sum(ratios) * cell, rows * cell + 0.35), layout='constrained')
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(rows, len(ratios), squeeze=False,
                                   gridspec_kw={'width_ratios': ratios}))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    if key:
        for ax in axes[1:, -1]:
            ax.set_axis_off()
    return fig, axes


def _show(ax, image, title: str = '', error: bool = False) -> None:
    gray = image.ndim == 2
    ax.imshow(image, cmap='magma' if error else ('gray' if gray else None), vmin=0.0, vmax=1.0,
              interpolation='nearest')
    ax.set_title(title, fontsize=8)


def draw_color_key(ax, max_magnitude: float) -> None:
    """Draws the colour key (color_wheel_legend) into a matplotlib axis, titled with the flow
    magnitude in pixels that its rim stands for."""
    ax.imshow(color_wheel_legend(), interpolation='bilinear')
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f'key: rim {max_magnitude:.3g} px', fontsize=8)


def frames_figure(frames, titles: Optional[Sequence[str]] = None, cols: int = 8) -> Figure:
    """Frames [N, H, W, c] (c = 1 or 3, uint8 or float in [0, 1]) in rows of `cols`."""
    frames = np.asarray(frames)
    n = len(frames)
    cols = min(cols, n)
    fig, axes = _grid(-(-n // cols), cols)
    for i, ax in enumerate(axes.ravel()):
        if i < n:
            _show(ax, _display(frames[i]), titles[i] if titles else f'frame {i}')
        else:
            ax.set_axis_off()
    return fig


def flows_figure(flows, max_magnitude: Optional[float] = None,
                 titles: Optional[Sequence[str]] = None) -> Figure:
    """Flows [N, H, W, 2] in pixels as colours, one panel each, plus the colour key.

    max_magnitude: shared saturation scale (default: the largest magnitude over all flows).
    """
    flows = np.asarray(flows)
    scale = _scale(flows, max_magnitude)
    fig, axes = _grid(1, len(flows), key=True)
    for i, ax in enumerate(axes[0, :-1]):
        _show(ax, flow_to_color(flows[i], scale) / 255.0, titles[i] if titles else f'flow {i}')
    draw_color_key(axes[0, -1], scale)
    return fig


def _error(target, warped) -> np.ndarray:
    """|target - warped| averaged over colour channels: [H, W] in [0, 1]."""
    error = np.abs(_display(target) - _display(warped))
    return error.mean(axis=-1) if error.ndim == 3 else error


def warp_figure(previous, warped, target, titles: Optional[Sequence[str]] = None) -> Figure:
    """Rows of I_k | warp(I_k, c_{k+1->k}) | I_{k+1} | |I_{k+1} - warped|.

    previous, warped, target: [N, H, W, c] (c = 1 or 3, uint8 or float in [0, 1]).
    """
    previous, warped, target = (np.asarray(x) for x in (previous, warped, target))
    fig, axes = _grid(len(previous), 4)
    for i, row in enumerate(axes):
        label = f'{titles[i]}: ' if titles else ''
        error = _error(target[i], warped[i])
        _show(row[0], _display(previous[i]), f'{label}I_k')
        _show(row[1], _display(warped[i]), 'warp(I_k, c)')
        _show(row[2], _display(target[i]), 'target I_k+1')
        _show(row[3], error, f'|error| mean {error.mean():.4f}', error=True)
    return fig


def correspondence_figure(previous, target, flows, warped, max_magnitude: Optional[float] = None,
                          titles: Optional[Sequence[str]] = None, suptitle: str = '') -> Figure:
    """One row per pair: I_k | I_{k+1} | c_{k+1->k} (colours) | warp(I_k, c) | |I_{k+1} - warped|,
    and the colour key. The error panel's title compares the mean error with that of zero flow.

    previous, target, warped: [N, H, W, c] (c = 1 or 3); flows: [N, H, W, 2] in pixels.
    """
    previous, target, flows, warped = (np.asarray(x) for x in (previous, target, flows, warped))
    scale = _scale(flows, max_magnitude)
    fig, axes = _grid(len(previous), 5, key=True)
    for i, row in enumerate(axes):
        label = f'{titles[i]}: ' if titles else ''
        error = _error(target[i], warped[i])
        _show(row[0], _display(previous[i]), f'{label}I_k')
        _show(row[1], _display(target[i]), 'I_k+1')
        _show(row[2], flow_to_color(flows[i], scale) / 255.0, 'c_k+1->k')
        _show(row[3], _display(warped[i]), 'warp(I_k, c)')
        _show(row[4], error, f'err {error.mean():.4f} '
              f'(c=0: {_error(target[i], previous[i]).mean():.4f})', error=True)
    draw_color_key(axes[0, -1], scale)
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    return fig


def _scale(flows: np.ndarray, max_magnitude: Optional[float]) -> float:
    """The saturation scale: max_magnitude, or the largest magnitude in flows (1 if all zero)."""
    if max_magnitude is not None:
        return float(max_magnitude)
    flows = np.asarray(flows, np.float64)       # as flow_to_color computes magnitudes
    largest = float(np.hypot(flows[..., 0], flows[..., 1]).max()) if flows.size else 0.0
    return largest if largest > 0 else 1.0


def figure_to_png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes (e.g. for IPython.display.Image)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=dpi)
    return buffer.getvalue()


def save_png(fig: Figure, path: str, dpi: int = 100) -> None:
    """Writes the figure to `path` as PNG."""
    with open(path, 'wb') as f:
        f.write(figure_to_png(fig, dpi))
