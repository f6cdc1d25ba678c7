"""Elastic-deformation stream tests; references: slicing, F.conv2d, scipy and brute-force bilinear."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from unitlens.data.elastic import (
    ElasticConfig,
    ElasticStream,
    displacement_field,
    elastic_deform,
    gaussian_radius,
    gaussian_smoothing_matrix,
    warp,
)
from unitlens.data.stream import BatchSource
from unitlens.errors import UnitlensError

IDENTITY = ElasticConfig(alpha=0.0, max_shift=0.0)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def stroke_digits(n: int, generator: torch.Generator, size: int = 28) -> torch.Tensor:
    """(n, size, size) digit-like images: a 3-segment polyline inside the central 16x16, drawn ~4 px wide.

    Stroke width and ink match MNIST roughly (mean pixel ~0.11, mean L2 norm ~8.6, MNIST's are 0.13 and 9.3).
    """
    points = 6 + 16 * torch.rand(n, 4, 2, generator=generator)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    pixels = torch.stack((xx, yy), -1).float().view(1, 1, size * size, 2)
    start, end = points[:, :-1, None, :], points[:, 1:, None, :]
    along = end - start
    t = ((pixels - start) * along).sum(-1) / (along * along).sum(-1).clamp_min(1e-6)
    nearest = start + t.clamp(0, 1)[..., None] * along
    distance = (pixels - nearest).norm(dim=-1).amin(1)
    return (2.3 - distance).clamp(0, 1).view(n, size, size)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


# ---------------------------------------------------------------- config


def test_config_defaults_and_int_coercion() -> None:
    config = ElasticConfig()
    assert (config.alpha, config.sigma, config.max_shift) == (34.0, 4.0, 2.0)
    coerced = ElasticConfig(alpha=10, sigma=3, max_shift=0)
    assert isinstance(coerced.alpha, float)
    assert isinstance(coerced.sigma, float)
    with pytest.raises(AttributeError):
        config.alpha = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("alpha", -1.0),
        ("alpha", math.nan),
        ("alpha", "34"),
        ("sigma", 0.0),
        ("sigma", -2.0),
        ("sigma", math.inf),
        ("max_shift", -0.5),
        ("max_shift", True),
    ],
)
def test_config_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(UnitlensError, match=field):
        ElasticConfig(**{field: value})  # type: ignore[arg-type]


# ---------------------------------------------------------------- smoothing


@pytest.mark.parametrize(("n", "sigma"), [(28, 4.0), (28, 1.3), (20, 6.0), (5, 2.0)])
def test_smoothing_matrix_equals_conv2d_with_zero_padding(n: int, sigma: float) -> None:
    radius = gaussian_radius(sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    kernel2d = (kernel[:, None] * kernel[None, :])[None, None]
    field = torch.rand(6, n, n + 3, generator=gen(0)) * 2 - 1
    expected = F.conv2d(field[:, None], kernel2d, padding=radius)[:, 0]
    G_h = gaussian_smoothing_matrix(n, sigma, torch.float32, "cpu")
    G_w = gaussian_smoothing_matrix(n + 3, sigma, torch.float32, "cpu")
    torch.testing.assert_close(G_h @ field @ G_w.T, expected, atol=1e-6, rtol=0)


def test_smoothing_matrix_equals_scipy_gaussian_filter() -> None:
    ndimage = pytest.importorskip("scipy.ndimage")
    field = torch.rand(24, 31, generator=gen(1), dtype=torch.float64)
    expected = ndimage.gaussian_filter(field.numpy(), sigma=4.0, mode="constant", cval=0.0, truncate=4.0)
    G_h = gaussian_smoothing_matrix(24, 4.0, torch.float64, "cpu")
    G_w = gaussian_smoothing_matrix(31, 4.0, torch.float64, "cpu")
    torch.testing.assert_close(G_h @ field @ G_w.T, torch.from_numpy(expected), atol=1e-12, rtol=0)


def test_smoothing_matrix_properties() -> None:
    G = gaussian_smoothing_matrix(40, 2.0, torch.float64, "cpu")
    assert G.shape == (40, 40)
    assert G.dtype == torch.float64
    torch.testing.assert_close(G, G.T)
    radius = gaussian_radius(2.0)
    assert radius == 8
    # Banded: nothing beyond the radius.
    offsets = torch.arange(40)[None, :] - torch.arange(40)[:, None]
    assert torch.all(G[offsets.abs() > radius] == 0)
    # A constant field stays constant where the kernel does not reach the border; it fades at the border.
    smoothed = G @ torch.full((40, 40), 0.7, dtype=torch.float64) @ G.T
    interior = smoothed[radius:-radius, radius:-radius]
    torch.testing.assert_close(interior, torch.full_like(interior, 0.7), atol=1e-12, rtol=0)
    assert smoothed[0, 0] < 0.7 * 0.6


def test_smoothing_matrix_rejects_bad_arguments() -> None:
    with pytest.raises(UnitlensError, match="n must"):
        gaussian_smoothing_matrix(0, 1.0, torch.float32, "cpu")
    with pytest.raises(UnitlensError, match="sigma"):
        gaussian_smoothing_matrix(5, 0.0, torch.float32, "cpu")


# ---------------------------------------------------------------- warp


def test_warp_matches_brute_force_bilinear() -> None:
    images = torch.rand(2, 5, 7, generator=gen(2), dtype=torch.float64)
    dx = torch.rand(2, 5, 7, generator=gen(3), dtype=torch.float64) * 6 - 3
    dy = torch.rand(2, 5, 7, generator=gen(4), dtype=torch.float64) * 6 - 3

    def pixel(b: int, row: int, col: int) -> float:
        inside = 0 <= row < 5 and 0 <= col < 7
        return float(images[b, row, col]) if inside else 0.0

    expected = torch.zeros_like(images)
    for b in range(2):
        for y in range(5):
            for x in range(7):
                sx, sy = x + float(dx[b, y, x]), y + float(dy[b, y, x])
                x0, y0 = math.floor(sx), math.floor(sy)
                fx, fy = sx - x0, sy - y0
                expected[b, y, x] = (1 - fy) * (
                    (1 - fx) * pixel(b, y0, x0) + fx * pixel(b, y0, x0 + 1)
                ) + fy * ((1 - fx) * pixel(b, y0 + 1, x0) + fx * pixel(b, y0 + 1, x0 + 1))
    torch.testing.assert_close(warp(images, dx, dy), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("sx", "sy"), [(2, 0), (0, -3), (-1, 2), (3, 3)])
def test_warp_integer_translation_is_a_slice_with_zero_fill(sx: int, sy: int) -> None:
    images = torch.rand(3, 20, 26, generator=gen(5))
    dx = torch.full_like(images, float(sx))
    dy = torch.full_like(images, float(sy))
    # out[y, x] = images[y + sy, x + sx], zero where that is outside.
    expected = torch.zeros_like(images)
    H, W = 20, 26
    expected[:, max(0, -sy) : H - max(0, sy), max(0, -sx) : W - max(0, sx)] = images[
        :, max(0, sy) : H + min(0, sy), max(0, sx) : W + min(0, sx)
    ]
    torch.testing.assert_close(warp(images, dx, dy), expected, atol=1e-5, rtol=0)


def test_warp_rejects_mismatched_fields() -> None:
    images = torch.rand(2, 6, 6)
    with pytest.raises(UnitlensError, match="dy"):
        warp(images, torch.zeros(2, 6, 6), torch.zeros(2, 6, 5))
    with pytest.raises(UnitlensError, match="images"):
        warp(torch.rand(6, 6), torch.zeros(6, 6), torch.zeros(6, 6))


# ---------------------------------------------------------------- deformation


def test_identity_config_returns_the_input() -> None:
    images = torch.rand(4, 28, 28, generator=gen(6))
    torch.testing.assert_close(elastic_deform(images, gen(0), IDENTITY), images, atol=1e-5, rtol=0)
    wide = torch.rand(3, 12, 30, generator=gen(7))
    torch.testing.assert_close(elastic_deform(wide, gen(0), IDENTITY), wide, atol=1e-5, rtol=0)


def test_fused_deformation_equals_plain_field_then_warp() -> None:
    # elastic_deform folds constants and transposes; displacement_field + warp is the readable form.
    for config, shape in [
        (ElasticConfig(), (28, 28)),
        (ElasticConfig(alpha=12, sigma=2.5, max_shift=1), (16, 22)),
    ]:
        images = torch.rand(9, *shape, generator=gen(8))
        g_fused, g_plain = gen(11), gen(11)
        fused = elastic_deform(images, g_fused, config)
        dx, dy = displacement_field(9, shape, g_plain, config)
        torch.testing.assert_close(fused, warp(images, dx, dy).clamp(0, 1), atol=2e-5, rtol=0)
        # Both consumed the generator identically.
        assert torch.equal(torch.rand(3, generator=g_fused), torch.rand(3, generator=g_plain))


def test_translation_only_shifts_each_image_by_a_constant() -> None:
    config = ElasticConfig(alpha=0.0, max_shift=2.0)
    many_x, many_y = displacement_field(4000, (3, 4), gen(26), config)
    for shift in (many_x[:, 0, 0], many_y[:, 0, 0]):
        assert shift.abs().max() <= 2.0
        # Uniform on [-2, 2]: mean 0, variance 4/3 (the sample variance's standard deviation is 0.02 here).
        assert abs(shift.mean().item()) < 0.1
        assert abs(shift.var().item() - 4 / 3) < 0.1
    assert abs(torch.corrcoef(torch.stack((many_x[:, 0, 0], many_y[:, 0, 0])))[0, 1].item()) < 0.07
    dx, dy = displacement_field(300, (28, 28), gen(12), config)
    for field in (dx, dy):
        torch.testing.assert_close(field, field[:, :1, :1].expand_as(field), atol=1e-6, rtol=0)
    # An integer shift through elastic_deform is exactly the sliced, zero-filled image.
    images = torch.rand(300, 28, 28, generator=gen(13))
    deformed = elastic_deform(images, gen(12), config)
    rounded = (dx[:, 0, 0] - dx[:, 0, 0].round()).abs() + (dy[:, 0, 0] - dy[:, 0, 0].round()).abs()
    b = int(rounded.argmin())  # the most nearly integer shift; re-warp it with the exact integers.
    sx, sy = round(float(dx[b, 0, 0])), round(float(dy[b, 0, 0]))
    exact = warp(images[b : b + 1], torch.full((1, 28, 28), float(sx)), torch.full((1, 28, 28), float(sy)))
    near = warp(images[b : b + 1], dx[b : b + 1], dy[b : b + 1])
    torch.testing.assert_close(deformed[b : b + 1], near, atol=1e-5, rtol=0)
    assert (near - exact).abs().max() <= 2 * float(rounded[b]) + 1e-5


def test_displacement_variance_matches_closed_form() -> None:
    # d = alpha * G_h N G_w^T with N i.i.d. Uniform(-1, 1) (variance 1/3):
    # Var d[y, x] = alpha^2 / 3 * sum_i G_h[y, i]^2 * sum_j G_w[x, j]^2, at every pixel, borders included.
    config = ElasticConfig(alpha=34.0, sigma=4.0, max_shift=0.0)
    dx, dy = displacement_field(4000, (28, 28), gen(14), config, dtype=torch.float64)
    G = gaussian_smoothing_matrix(28, 4.0, torch.float64, "cpu")
    expected = config.alpha**2 / 3 * (G**2).sum(1)[:, None] * (G**2).sum(1)[None, :]
    for field in (dx, dy):
        assert field.mean(0).abs().max() < 0.1
        ratio = field.var(0) / expected
        assert (ratio - 1).abs().max() < 0.15
        assert abs(ratio.mean().item() - 1) < 0.05
    # The centre moves by about 1.4 px (the ElasticConfig docstring's figure).
    assert 1.3 < math.sqrt(expected[14, 14]) < 1.45
    # dx and dy are independent fields.
    assert abs(torch.corrcoef(torch.stack((dx[:, 14, 14], dy[:, 14, 14])))[0, 1].item()) < 0.06


def test_output_stays_in_unit_interval() -> None:
    images = torch.rand(200, 28, 28, generator=gen(15))
    images[:, 5:20, 5:20] = 1.0  # flat ink regions, where rounding could overshoot 1
    for config in (ElasticConfig(), ElasticConfig(alpha=80.0, sigma=2.0, max_shift=4.0)):
        out = elastic_deform(images, gen(16), config)
        assert out.min() >= 0.0
        assert out.max() <= 1.0


def test_stream_output_stays_in_unit_interval() -> None:
    # Without the clamp, float32 bilinear weights overshoot 1.0 by an ulp at hundreds of pixels of such
    # a batch (measured: all-ink images, where samples straddle the zero-filled border).
    base = torch.rand(20, 784, generator=gen(24))
    base[:10] = 1.0
    stream = ElasticStream(base, None, (28, 28), 500, gen(25), ElasticConfig())
    for _ in range(4):
        x, _ = stream.next_batch()
        assert x.min() >= 0.0
        assert x.max() <= 1.0


def test_deformed_digits_stay_correlated_with_their_originals_yet_differ() -> None:
    digits = stroke_digits(400, gen(17))
    deformed = elastic_deform(digits, gen(18), ElasticConfig())
    r = pearson(deformed, digits)
    assert r.mean() > 0.55  # measured 0.66 with the defaults; 0.75 without the translation
    assert r.mean() < 0.95
    assert (deformed - digits).abs().mean(dim=(1, 2)).min() > 0.01  # every one of them changed
    # Ink is roughly preserved: the deformation moves strokes, it neither erases nor floods them.
    ink_ratio = deformed.sum() / digits.sum()
    assert 0.85 < ink_ratio < 1.15


def test_elastic_deform_is_seeded_and_follows_dtype() -> None:
    images = torch.rand(5, 28, 28, generator=gen(19), dtype=torch.float64)
    a = elastic_deform(images, gen(1), ElasticConfig())
    b = elastic_deform(images, gen(1), ElasticConfig())
    c = elastic_deform(images, gen(2), ElasticConfig())
    assert a.dtype == torch.float64
    assert a.shape == images.shape
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_elastic_deform_rejects_bad_arguments() -> None:
    with pytest.raises(UnitlensError, match="images"):
        elastic_deform(torch.rand(28, 28), gen(0), ElasticConfig())
    with pytest.raises(UnitlensError, match="floating"):
        elastic_deform(torch.zeros(2, 28, 28, dtype=torch.uint8), gen(0), ElasticConfig())
    with pytest.raises(UnitlensError, match="generator"):
        elastic_deform(torch.rand(2, 28, 28), 0, ElasticConfig())  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match="config"):
        elastic_deform(torch.rand(2, 28, 28), gen(0), {"alpha": 1})  # type: ignore[arg-type]
    with pytest.raises(UnitlensError, match="batch"):
        displacement_field(-1, (28, 28), gen(0), ElasticConfig())
    with pytest.raises(UnitlensError, match="image_shape"):
        displacement_field(2, (28, 1), gen(0), ElasticConfig())


# ---------------------------------------------------------------- stream


def make_stream(seed: int, batch_size: int = 64, config: ElasticConfig | None = None) -> ElasticStream:
    x = stroke_digits(50, gen(100)).view(50, 784)
    y = torch.arange(50)
    return ElasticStream(x, y, (28, 28), batch_size, gen(seed), config or ElasticConfig())


def test_stream_is_a_batch_source_with_the_right_shapes() -> None:
    stream = make_stream(0, batch_size=80)  # more than the 50 base examples: sampling is with replacement
    assert isinstance(stream, BatchSource)
    x, y = stream.next_batch()
    assert x.shape == (80, 784)
    assert x.dtype == torch.float32
    assert y is not None
    assert y.shape == (80,)
    assert y.dtype == torch.int64
    assert x.min() >= 0
    assert x.max() <= 1
    batches = iter(stream)
    assert next(batches)[0].shape == (80, 784)
    assert stream.batches_drawn == 2


def test_stream_labels_follow_their_images() -> None:
    # With the identity deformation every row is exactly its base example, so labels can be checked.
    base = torch.rand(30, 12 * 10, generator=gen(20))
    stream = ElasticStream(base, torch.arange(30) + 100, (12, 10), 500, gen(21), IDENTITY)
    x, y = stream.next_batch()
    assert y is not None
    torch.testing.assert_close(x, base[y - 100], atol=1e-5, rtol=0)
    # Indices are uniform over the base set.
    assert len(torch.unique(y)) == 30


def test_same_seed_same_stream_different_seed_different_stream() -> None:
    a, b, c = make_stream(3), make_stream(3), make_stream(4)
    for _ in range(3):
        (xa, ya), (xb, yb), (xc, _) = a.next_batch(), b.next_batch(), c.next_batch()
        assert torch.equal(xa, xb)
        assert ya is not None
        assert yb is not None
        assert torch.equal(ya, yb)
        assert not torch.allclose(xa, xc)
    # Successive batches differ (nothing is replayed from a reused buffer).
    first, _ = a.next_batch()
    second, _ = a.next_batch()
    assert not torch.allclose(first, second)


def test_returned_batches_are_not_overwritten_by_later_ones() -> None:
    stream = make_stream(5)
    x1, _ = stream.next_batch()
    kept = x1.clone()
    stream.next_batch()
    assert torch.equal(x1, kept)


def test_state_dict_resumes_exactly() -> None:
    uninterrupted = make_stream(7)
    for _ in range(2):
        uninterrupted.next_batch()
    state = uninterrupted.state_dict()
    expected = [uninterrupted.next_batch() for _ in range(3)]

    resumed = make_stream(999)  # another seed: everything must come from the state
    resumed.next_batch()
    resumed.load_state_dict(state)
    assert resumed.batches_drawn == 2
    for x_expected, y_expected in expected:
        x, y = resumed.next_batch()
        assert torch.equal(x, x_expected)
        assert y is not None
        assert y_expected is not None
        assert torch.equal(y, y_expected)
    assert resumed.batches_drawn == 5


def test_state_dict_is_a_copy() -> None:
    stream = make_stream(8)
    state = stream.state_dict()
    stream.next_batch()
    stream.load_state_dict(state)
    again = make_stream(8)
    assert torch.equal(stream.next_batch()[0], again.next_batch()[0])


def test_stream_without_labels_and_in_float64() -> None:
    x = torch.rand(10, 64, generator=gen(22), dtype=torch.float64)
    stream = ElasticStream(x, None, (8, 8), 4, gen(23), ElasticConfig(alpha=5.0, sigma=1.5, max_shift=1.0))
    out, y = stream.next_batch()
    assert y is None
    assert out.dtype == torch.float64
    assert out.shape == (4, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"x": torch.rand(10, 783)}, "x has 783 columns"),
        ({"x": torch.rand(10, 28, 28)}, "x must be"),
        ({"x": torch.rand(0, 784)}, "x must be"),
        ({"x": torch.zeros(10, 784, dtype=torch.uint8)}, "floating"),
        ({"y": torch.arange(9)}, "y must be"),
        ({"image_shape": (28,)}, "image_shape"),
        ({"image_shape": (1, 784)}, "image_shape"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"generator": 5}, "generator"),
        ({"config": None}, "config"),
    ],
)
def test_stream_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "x": torch.rand(10, 784),
        "y": torch.arange(10),
        "image_shape": (28, 28),
        "batch_size": 4,
        "generator": gen(0),
        "config": ElasticConfig(),
    }
    arguments.update(kwargs)
    with pytest.raises(UnitlensError, match=message):
        ElasticStream(**arguments)  # type: ignore[arg-type]


def test_load_state_dict_rejects_bad_state() -> None:
    stream = make_stream(0)
    with pytest.raises(UnitlensError, match="lacks"):
        stream.load_state_dict({"generator": gen(0).get_state()})
    with pytest.raises(UnitlensError, match="generator state"):
        stream.load_state_dict(
            {"generator": torch.zeros(3, dtype=torch.uint8), "batches_drawn": torch.tensor(0)}
        )
