import dataclasses
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from unitlens.errors import UnitlensError
from unitlens.visualize.transforms import (
    Compose,
    Jitter,
    Pad,
    RandomRotate,
    RandomScale,
    Resize,
    Transform,
    standard_transforms,
)

# ------------------------------------------------------------------------------------------------ shapes


@pytest.mark.parametrize(
    ("transform", "shape_in", "shape_out"),
    [
        (Pad(3), (2, 3, 8, 10), (2, 3, 14, 16)),
        (Pad(3), (2, 3, 8), (2, 3, 14)),
        (Pad(2, mode="reflect"), (2, 3, 8, 10), (2, 3, 12, 14)),
        (Pad(2, mode="reflect"), (2, 3, 8), (2, 3, 12)),
        (Pad(2, mode="replicate"), (2, 3, 8, 10), (2, 3, 12, 14)),
        (Pad(2, mode="replicate"), (2, 3, 8), (2, 3, 12)),
        (Pad(0), (2, 3, 8, 10), (2, 3, 8, 10)),
        (Jitter(4), (2, 3, 8, 10), (2, 3, 4, 6)),
        (Jitter(4, ndim=1), (2, 3, 8), (2, 3, 4)),
        (Jitter(0), (2, 3, 8, 10), (2, 3, 8, 10)),
        (RandomScale((0.9, 1.1)), (2, 3, 8, 10), (2, 3, 8, 10)),
        (RandomRotate((-10.0, 10.0)), (2, 3, 8, 10), (2, 3, 8, 10)),
        (Resize((5, 7)), (2, 3, 8, 10), (2, 3, 5, 7)),
        (Resize((5,)), (2, 3, 8), (2, 3, 5)),
        (Resize((16, 20), mode="nearest"), (2, 3, 8, 10), (2, 3, 16, 20)),
        (Compose((Pad(2), Jitter(3), Resize((4, 4)))), (2, 3, 8, 10), (2, 3, 4, 4)),
        (Compose((Pad(2), Jitter(3, ndim=1))), (2, 3, 8), (2, 3, 9)),
        (Compose(()), (2, 3, 8, 10), (2, 3, 8, 10)),
        (standard_transforms(), (2, 3, 32, 40), (2, 3, 44, 52)),
    ],
)
def test_output_shapes(transform: Transform, shape_in: tuple[int, ...], shape_out: tuple[int, ...]) -> None:
    x = torch.rand(shape_in)
    out = transform(x, torch.rand(shape_in[0], transform.n_random))
    assert tuple(out.shape) == shape_out
    assert out.dtype == x.dtype


def test_n_random() -> None:
    assert Pad(1).n_random == 0
    assert Resize((3, 3)).n_random == 0
    assert Jitter(2).n_random == 2
    assert Jitter(2, ndim=1).n_random == 1
    assert RandomScale((1.0,)).n_random == 1
    assert RandomRotate((0.0,)).n_random == 1
    assert Compose((Jitter(1), Pad(1), RandomRotate((0.0,)), Jitter(1, ndim=1))).n_random == 4
    assert Compose(()).n_random == 0


# ------------------------------------------------------------------------------------------------- Pad


def test_pad_constant_keeps_the_centre_and_fills_the_border_with_value() -> None:
    x = torch.rand(2, 3, 4, 5)
    out = Pad(2, value=0.25)(x, torch.empty(2, 0))
    assert torch.equal(out[:, :, 2:-2, 2:-2], x)
    border = torch.ones(8, 9, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    assert torch.all(out[:, :, border] == 0.25)
    assert torch.all(Pad(1)(x, torch.empty(2, 0))[..., 0, :] == 0.5)  # Lucid's mid-grey default


def test_pad_reflect_and_replicate_borders() -> None:
    x = torch.rand(2, 3, 4, 5)
    reflect = Pad(2, mode="reflect")(x, torch.empty(2, 0))
    # reflect mirrors without repeating the edge: columns 0, 1 of the output are x's columns 2, 1.
    assert torch.equal(reflect[:, :, 2:-2, 0], x[..., 2])
    assert torch.equal(reflect[:, :, 2:-2, 1], x[..., 1])
    assert torch.equal(reflect[:, :, 0, 2:-2], x[:, :, 2])
    assert torch.equal(reflect[:, :, 2:-2, -1], x[..., -3])
    replicate = Pad(2, mode="replicate")(x, torch.empty(2, 0))
    assert torch.equal(replicate[:, :, 2:-2, 0], x[..., 0])
    assert torch.equal(replicate[:, :, 2:-2, 1], x[..., 0])
    assert torch.equal(replicate[:, :, -1, -1], x[:, :, -1, -1])
    assert torch.equal(replicate[:, :, 2:-2, 2:-2], x)


def test_pad_1d() -> None:
    x = torch.tensor([[[1.0, 2.0, 3.0]]])
    u = torch.empty(1, 0)
    assert Pad(1, value=-1.0)(x, u).tolist() == [[[-1.0, 1.0, 2.0, 3.0, -1.0]]]
    assert Pad(2, mode="reflect")(x, u).tolist() == [[[3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]]]
    assert Pad(1, mode="replicate")(x, u).tolist() == [[[1.0, 1.0, 2.0, 3.0, 3.0]]]


# ---------------------------------------------------------------------------------------------- Jitter


def test_jitter_u0_is_the_top_left_crop_and_u1_the_bottom_right() -> None:
    x = torch.rand(2, 3, 9, 11)
    jitter = Jitter(4)
    assert torch.equal(jitter(x, torch.zeros(2, 2)), x[:, :, :5, :7])
    assert torch.equal(jitter(x, torch.full((2, 2), 0.9999)), x[:, :, 4:, 4:])
    # u == 1.0 (a float32 uniform rounded up) is clamped to the last offset.
    assert torch.equal(jitter(x, torch.ones(2, 2)), x[:, :, 4:, 4:])


def test_jitter_rows_get_their_own_crops() -> None:
    x = torch.rand(3, 2, 9, 11)
    u = torch.tensor([[0.3, 0.85], [0.9, 0.1], [0.5, 0.5]])
    # offsets floor(u * 5): (1, 4), (4, 0), (2, 2)
    out = Jitter(4)(x, u)
    assert torch.equal(out[0], x[0, :, 1:6, 4:11])
    assert torch.equal(out[1], x[1, :, 4:9, 0:7])
    assert torch.equal(out[2], x[2, :, 2:7, 2:9])


def test_jitter_reaches_every_offset_once_per_equal_share_of_u() -> None:
    x = torch.arange(10.0).view(1, 1, 10)
    jitter = Jitter(3, ndim=1)
    starts = [jitter(x, torch.tensor([[(k + 0.5) / 4]]))[0, 0, 0].item() for k in range(4)]
    assert starts == [0.0, 1.0, 2.0, 3.0]


def test_jitter_1d_rows() -> None:
    x = torch.rand(2, 3, 10)
    out = Jitter(3, ndim=1)(x, torch.tensor([[0.6], [0.2]]))  # offsets 2, 0
    assert torch.equal(out[0], x[0, :, 2:9])
    assert torch.equal(out[1], x[1, :, 0:7])


# ----------------------------------------------------------------------------------- scale and rotate


def test_scale_1_and_rotate_0_are_the_identity() -> None:
    x = torch.rand(3, 2, 7, 10)
    u = torch.rand(3, 1)
    torch.testing.assert_close(RandomScale((1.0,))(x, u), x, rtol=0, atol=1e-5)
    torch.testing.assert_close(RandomRotate((0.0,))(x, u), x, rtol=0, atol=1e-5)


def test_scale_2_zooms_about_the_centre() -> None:
    # A ramp along W: zooming by 2 halves its slope about the centre column, whose value is kept.
    ramp = torch.arange(9.0).expand(2, 1, 9, 9)
    out = RandomScale((2.0,))(ramp, torch.full((2, 1), 0.5))
    torch.testing.assert_close(out[:, 0, 4, 4], ramp[:, 0, 4, 4], rtol=0, atol=1e-5)
    torch.testing.assert_close(out[0, 0, 4], 4 + (torch.arange(9.0) - 4) / 2, rtol=0, atol=1e-5)
    x = torch.rand(2, 3, 7, 9)
    torch.testing.assert_close(RandomScale((2.0,))(x, torch.zeros(2, 1))[:, :, 3, 4], x[:, :, 3, 4])


def test_scale_below_1_shrinks_the_image_and_fills_with_the_padding() -> None:
    x = torch.rand(1, 1, 8, 8) + 1
    zeros = RandomScale((0.5,))(x, torch.zeros(1, 1))
    assert torch.all(zeros[..., 0, :] == 0) and torch.all(zeros[..., :, -1] == 0)
    border = RandomScale((0.5,), padding="border")(x, torch.zeros(1, 1))
    assert torch.all(border > 1)


def test_scale_picks_from_the_table_by_u() -> None:
    x = torch.rand(4, 1, 9, 9)
    scale = RandomScale((1.0, 2.0))
    u = torch.tensor([[0.2], [0.7], [0.49], [0.999]])
    out = scale(x, u)
    for b, s in enumerate((1.0, 2.0, 1.0, 2.0)):
        torch.testing.assert_close(out[b : b + 1], RandomScale((s,))(x[b : b + 1], torch.zeros(1, 1)))


def test_rotate_90_is_rot90_counter_clockwise() -> None:
    x = torch.rand(2, 3, 6, 6)
    u = torch.zeros(2, 1)
    torch.testing.assert_close(
        RandomRotate((90.0,))(x, u), torch.rot90(x, 1, dims=(-2, -1)), rtol=0, atol=1e-5
    )
    torch.testing.assert_close(
        RandomRotate((-90.0,))(x, u), torch.rot90(x, -1, dims=(-2, -1)), rtol=0, atol=1e-5
    )
    # Counter-clockwise as displayed (row 0 on top): a dot right of the centre ends up above it.
    dot = torch.zeros(1, 1, 5, 5)
    dot[0, 0, 2, 4] = 1.0
    turned = RandomRotate((90.0,))(dot, torch.zeros(1, 1))
    assert turned[0, 0, 0, 2].item() == pytest.approx(1.0, abs=1e-5)
    assert turned.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_rotate_is_rigid_on_non_square_images() -> None:
    x = torch.rand(2, 3, 4, 6)
    torch.testing.assert_close(
        RandomRotate((180.0,))(x, torch.zeros(2, 1)), x.flip(-2, -1), rtol=0, atol=1e-5
    )
    # A small rotation moves a dot along a circle: its distance to the centre is kept for H != W.
    dot = torch.zeros(1, 1, 21, 41)
    dot[0, 0, 10, 30] = 1.0  # 10 pixels right of the centre (10, 20)
    turned = RandomRotate((30.0,))(dot, torch.zeros(1, 1))[0, 0]
    rows, cols = torch.meshgrid(torch.arange(21.0), torch.arange(41.0), indexing="ij")
    mass = turned.sum()
    dy, dx = (turned * rows).sum() / mass - 10, (turned * cols).sum() / mass - 20
    assert torch.hypot(dx, dy).item() == pytest.approx(10.0, abs=0.1)
    assert torch.atan2(-dy, dx).item() == pytest.approx(torch.pi / 6, abs=0.01)


def test_rotate_picks_from_the_table_by_u() -> None:
    x = torch.rand(2, 1, 6, 6)
    out = RandomRotate((0.0, 90.0, 180.0))(x, torch.tensor([[0.5], [0.9]]))
    torch.testing.assert_close(out[0], torch.rot90(x[0], 1, dims=(-2, -1)), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], x[1].flip(-2, -1), rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------------- Resize


@pytest.mark.parametrize(
    ("size", "mode", "torch_mode"),
    [
        ((5, 13), "bilinear", "bilinear"),
        ((5, 13), "linear", "bilinear"),
        ((5, 13), "bicubic", "bicubic"),
        ((5,), "bilinear", "linear"),
        ((13,), "linear", "linear"),
    ],
)
def test_resize_matches_interpolate(size: tuple[int, ...], mode: str, torch_mode: str) -> None:
    x = torch.rand(2, 3, *(8, 10)[: len(size)])
    expected = F.interpolate(x, size=size, mode=torch_mode, align_corners=False)
    assert torch.equal(Resize(size, mode=mode)(x, torch.empty(2, 0)), expected)


@pytest.mark.parametrize("mode", ["nearest", "area"])
@pytest.mark.parametrize("size", [(5, 13), (5,)])
def test_resize_nearest_and_area_match_interpolate(mode: str, size: tuple[int, ...]) -> None:
    x = torch.rand(2, 3, *(8, 10)[: len(size)])
    assert torch.equal(Resize(size, mode=mode)(x, torch.empty(2, 0)), F.interpolate(x, size=size, mode=mode))


# --------------------------------------------------------------------------------------------- Compose


def test_compose_applies_in_order_and_hands_out_u_columns_in_order() -> None:
    x = torch.rand(3, 2, 12, 14)
    steps = (Jitter(3), Pad(1), RandomRotate((-20.0, 0.0, 15.0)), RandomScale((0.8, 1.0, 1.3)), Jitter(2))
    u = torch.rand(3, 6)
    by_hand = steps[0](x, u[:, 0:2])
    by_hand = steps[1](by_hand, u[:, 2:2])
    by_hand = steps[2](by_hand, u[:, 2:3])
    by_hand = steps[3](by_hand, u[:, 3:4])
    by_hand = steps[4](by_hand, u[:, 4:6])
    composed = Compose(steps)
    assert composed.n_random == 6
    # Compose fuses the warps with the crops around them: the same up to float rounding (see below).
    torch.testing.assert_close(composed(x, u), by_hand, rtol=0, atol=1e-5)


def test_compose_accepts_a_list_and_nests() -> None:
    inner = Compose([Jitter(2), Pad(1)])  # type: ignore[arg-type]
    assert isinstance(inner.transforms, tuple)
    outer = Compose((inner, Jitter(1)))
    x, u = torch.rand(2, 1, 8, 8), torch.rand(2, 4)
    assert torch.equal(outer(x, u), Jitter(1)(Pad(1)(Jitter(2)(x, u[:, :2]), u[:, 2:2]), u[:, 2:]))


# ------------------------------------------------------------------------------- Compose's fused paths


def _stepwise(transform: Transform, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """The reference composition: every transform by its own __call__, one at a time."""
    if type(transform) is not Compose:
        return transform(x, u)
    start = 0
    for t in transform.transforms:
        x = _stepwise(t, x, u[:, start : start + t.n_random])
        start += t.n_random
    return x


FUSED_CASES = [
    (standard_transforms(), (5, 3, 32, 32)),
    (standard_transforms(), (4, 1, 8, 8)),
    (standard_transforms(), (3, 3, 20, 26)),
    (Compose((Pad(12), Jitter(8, ndim=1), Jitter(4, ndim=1))), (3, 2, 30)),
    (Compose((Pad(3, mode="reflect"), Jitter(2), RandomScale((0.8, 1.25)), Jitter(3))), (4, 2, 9, 11)),
    (Compose((Pad(2, mode="replicate"), RandomScale((0.7, 1.3)))), (4, 2, 7, 10)),
    (Compose((Pad(2, value=0.0), Jitter(1), RandomScale((1.0, 0.5)))), (4, 2, 8, 8)),
    (Compose((Jitter(3), RandomScale((0.9, 1.1), padding="border"), Jitter(2))), (4, 2, 12, 10)),
    (Compose((RandomRotate((-30.0, 45.0), padding="reflection"), Jitter(3), Jitter(1))), (4, 2, 12, 14)),
    (Compose((RandomScale((2.0, 0.6)), RandomScale((0.5, 1.4)), RandomRotate((90.0, 7.0)))), (4, 2, 9, 9)),
    (Compose((Pad(1), Pad(2, mode="reflect"), Jitter(2), Pad(1, value=-1.0), Jitter(3))), (4, 2, 6, 7)),
    (
        Compose(
            (
                Compose((Pad(4), Jitter(3))),
                RandomScale((0.9, 1.1)),
                Compose((RandomRotate((10.0, -4.0)), Jitter(2))),
            )
        ),
        (4, 3, 10, 12),
    ),
]


@pytest.mark.parametrize(("transform", "shape"), FUSED_CASES)
def test_fused_compose_equals_the_reference_composition(transform: Compose, shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    u = torch.rand(shape[0], transform.n_random, generator=gen)
    u[0], u[1] = 0.0, 1.0  # the first and the last choice of every transform
    for dtype, atol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        x = torch.rand(shape, generator=gen, dtype=dtype, requires_grad=True)
        fused, reference = transform(x, u.to(dtype)), _stepwise(transform, x, u.to(dtype))
        assert fused.shape == reference.shape and fused.dtype == dtype
        torch.testing.assert_close(fused, reference, rtol=0, atol=atol)
        # The gradients too (the adjoint of each fused map).
        cotangent = torch.rand(fused.shape, generator=gen, dtype=dtype)
        (g_fused,) = torch.autograd.grad(fused, x, cotangent)
        (g_reference,) = torch.autograd.grad(reference, x, cotangent)
        torch.testing.assert_close(g_fused, g_reference, rtol=0, atol=atol)


RESIZED_CASES = [
    # Lucid's transforms on an 8x8 image, resized back to the model's 8x8: the warp reads 16x16 of 20x20.
    (standard_transforms(), (5, 1, 8, 8), (8, 8)),
    (standard_transforms(), (4, 3, 8, 10), (5, 7)),
    # Rows upsampled (every row read, the first outputs clamped to row 0), columns down: still folded.
    (standard_transforms(), (4, 2, 8, 8), (45, 4)),
    # Upsampling reads every location: not folded, the same result.
    (standard_transforms(), (3, 3, 6, 6), (40, 30)),
    # The last segment is not a warp: not folded.
    (Compose((RandomRotate((10.0, -4.0)), Pad(2))), (3, 2, 9, 9), (4, 4)),
    (Compose((RandomScale((0.8, 1.2), padding="border"), Jitter(2))), (3, 2, 12, 11), (3, 5)),
]


@pytest.mark.parametrize(("transform", "shape", "size"), RESIZED_CASES)
def test_resized_equals_the_composition_then_interpolate(
    transform: Compose, shape: tuple[int, ...], size: tuple[int, int]
) -> None:
    gen = torch.Generator().manual_seed(1)
    u = torch.rand(shape[0], transform.n_random, generator=gen)
    u[0], u[1] = 0.0, 1.0
    for dtype, atol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        x = torch.rand(shape, generator=gen, dtype=dtype, requires_grad=True)
        folded = transform.resized(x, u.to(dtype), size)
        reference = F.interpolate(
            _stepwise(transform, x, u.to(dtype)), size=size, mode="bilinear", align_corners=False
        )
        assert folded.shape == reference.shape == (shape[0], shape[1], *size)
        torch.testing.assert_close(folded, reference, rtol=0, atol=atol)
        cotangent = torch.rand(folded.shape, generator=gen, dtype=dtype)
        (g_folded,) = torch.autograd.grad(folded, x, cotangent)
        (g_reference,) = torch.autograd.grad(reference, x, cotangent)
        torch.testing.assert_close(g_folded, g_reference, rtol=0, atol=atol)


def test_resized_folds_the_resize_into_lucids_last_warp(monkeypatch: pytest.MonkeyPatch) -> None:
    # On an 8x8 image the resize is two products inside the warp: no separate interpolation runs.
    def refuse(*args: object, **kwargs: object) -> torch.Tensor:
        raise AssertionError("F.interpolate was called: the resize was not folded into the warp")

    transform = standard_transforms()
    x, u = torch.rand(3, 1, 8, 8), torch.rand(3, transform.n_random)
    expected = F.interpolate(transform(x, u), size=(8, 8), mode="bilinear", align_corners=False)
    monkeypatch.setattr(F, "interpolate", refuse)
    torch.testing.assert_close(transform.resized(x, u, (8, 8)), expected, rtol=0, atol=1e-6)


def test_the_precomputed_tables_hold_the_numbers_computed_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # The scale weights and warp grids looked up in tables are the same numbers as computed per row.
    import unitlens.visualize.transforms as transforms_module

    transform = standard_transforms()
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(6, 3, 8, 8, generator=gen)
    u = torch.rand(6, transform.n_random, generator=gen)
    with_tables = transform(x, u), transform.resized(x, u, (8, 8))
    monkeypatch.setattr(transforms_module, "_TABLE_ELEMENTS", 0)
    without = transform(x, u), transform.resized(x, u, (8, 8))
    for a, b in zip(with_tables, without, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("transform", "x", "message"),
    [
        (Compose((Pad(1), Jitter(20), RandomScale((1.0,)))), torch.rand(2, 1, 8, 8), "Jitter.distance"),
        (Compose((Pad(5, mode="reflect"), RandomScale((1.0,)))), torch.rand(2, 1, 4, 4), "Pad.width"),
        (Compose((Pad(1), Jitter(2, ndim=1), RandomScale((1.0,)))), torch.rand(2, 1, 8, 8), "Jitter.ndim"),
        (Compose((Pad(1), RandomScale((1.0,)))), torch.rand(2, 1, 8), r"\(n, C, H, W\)"),
        (Compose((RandomRotate((0.0,)), Jitter(9))), torch.rand(2, 1, 8, 8), "Jitter.distance"),
    ],
)
def test_fused_compose_raises_what_the_transforms_raise(
    transform: Compose, x: torch.Tensor, message: str
) -> None:
    with pytest.raises(UnitlensError, match=message):
        transform(x, torch.rand(x.shape[0], transform.n_random))


# --------------------------------------------------------------------------------- gradients and rows


GRADCHECK_CASES = [
    (Pad(2), (2, 2, 4, 5)),
    (Pad(2, mode="reflect"), (2, 2, 4, 5)),
    (Pad(1, mode="replicate"), (2, 2, 5)),
    (Jitter(2), (2, 2, 5, 6)),
    (Jitter(2, ndim=1), (2, 2, 6)),
    (RandomScale((0.8, 1.3)), (2, 2, 5, 6)),
    (RandomRotate((-17.0, 23.0)), (2, 2, 5, 6)),
    (Resize((7, 3)), (2, 2, 5, 6)),
    (Resize((9,)), (2, 2, 6)),
    (
        Compose((Pad(2), Jitter(2), RandomScale((0.9, 1.1)), RandomRotate((-10.0, 10.0)), Jitter(1))),
        (2, 2, 5, 6),
    ),
]


@pytest.mark.parametrize(("transform", "shape"), GRADCHECK_CASES)
def test_gradcheck_float64(transform: Transform, shape: tuple[int, ...]) -> None:
    x = torch.rand(shape, dtype=torch.float64, requires_grad=True)
    # u away from the choice boundaries of every transform here (k * u never near an integer).
    u = torch.tensor([[0.3] * transform.n_random, [0.7] * transform.n_random], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: transform(t, u), (x,))


RANDOM_CASES = [
    (Jitter(3), (4, 2, 8, 9)),
    (Jitter(3, ndim=1), (4, 2, 9)),
    (RandomScale((0.8, 1.0, 1.25)), (4, 2, 8, 9)),
    (RandomRotate((-30.0, 0.0, 45.0)), (4, 2, 8, 9)),
    (Pad(2, mode="reflect"), (4, 2, 8, 9)),
    (Resize((5, 4)), (4, 2, 8, 9)),
    (standard_transforms(), (4, 3, 20, 24)),
]


@pytest.mark.parametrize(("transform", "shape"), RANDOM_CASES)
def test_rows_are_independent(transform: Transform, shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=gen)
    u = torch.rand(shape[0], transform.n_random, generator=gen)
    out = transform(x, u)
    # Change every other row's image and uniforms: row 0 must not move.
    x2, u2 = torch.rand(shape, generator=gen), torch.rand(u.shape, generator=gen)
    x2[0], u2[0] = x[0], u[0]
    torch.testing.assert_close(transform(x2, u2)[0], out[0], rtol=0, atol=1e-6)
    # Alone in its batch, row 2 comes out as in the batch of 4.
    torch.testing.assert_close(transform(x[2:3], u[2:3])[0], out[2], rtol=0, atol=1e-6)


def test_rows_with_different_u_differ_in_one_batch() -> None:
    x = torch.rand(1, 2, 12, 12).expand(3, 2, 12, 12)
    u = torch.tensor([[0.05, 0.05, 0.05, 0.05, 0.05, 0.05], [0.95] * 6, [0.5] * 6])
    out = standard_transforms()(x, u)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


# ------------------------------------------------------------------------------------------- defaults


def test_standard_transforms_has_lucid_and_lucents_numbers() -> None:
    std = standard_transforms()
    pad, jitter8, scale, rotate, jitter4 = std.transforms
    assert pad == Pad(12, mode="constant", value=0.5)
    assert jitter8 == Jitter(8)
    assert isinstance(scale, RandomScale)
    assert scale.scales == pytest.approx([0.90, 0.92, 0.94, 0.96, 0.98, 1.0, 1.02, 1.04, 1.06, 1.08, 1.10])
    assert scale.padding == "zeros"
    assert isinstance(rotate, RandomRotate)
    assert rotate.degrees == tuple(float(d) for d in range(-10, 11)) + (0.0,) * 5
    assert rotate.padding == "zeros"
    assert jitter4 == Jitter(4)
    assert std.n_random == 6


def test_transforms_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Jitter(2).distance = 3  # type: ignore[misc]
    assert RandomScale([1, 2.0]).scales == (1.0, 2.0)  # type: ignore[arg-type]
    assert Resize([3, 4]).size == (3, 4)  # type: ignore[arg-type]
    assert hash(standard_transforms()) == hash(standard_transforms())


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: Pad(-1), "Pad.width"),
        (lambda: Pad(1.5), "Pad.width"),
        (lambda: Pad(True), "Pad.width"),
        (lambda: Pad(1, mode="circular"), "Pad.mode"),
        (lambda: Pad(1, value=float("nan")), "Pad.value"),
        (lambda: Pad(1, value="grey"), "Pad.value"),
        (lambda: Jitter(-1), "Jitter.distance"),
        (lambda: Jitter(2.0), "Jitter.distance"),
        (lambda: Jitter(2, ndim=3), "Jitter.ndim"),
        (lambda: RandomScale(()), "RandomScale.scales"),
        (lambda: RandomScale((1.0, 0.0)), "RandomScale.scales"),
        (lambda: RandomScale((1.0, float("inf"))), "RandomScale.scales"),
        (lambda: RandomScale(1.1), "RandomScale.scales"),
        (lambda: RandomScale((1.0,), padding="constant"), "RandomScale.padding"),
        (lambda: RandomRotate(()), "RandomRotate.degrees"),
        (lambda: RandomRotate((0.0, float("nan"))), "RandomRotate.degrees"),
        (lambda: RandomRotate("90"), "RandomRotate.degrees"),
        (lambda: RandomRotate((0.0,), padding="wrap"), "RandomRotate.padding"),
        (lambda: Resize(()), "Resize.size"),
        (lambda: Resize((2, 3, 4)), "Resize.size"),
        (lambda: Resize((0, 3)), "Resize.size"),
        (lambda: Resize(5), "Resize.size"),
        (lambda: Resize((5, 5), mode="trilinear"), "Resize.mode"),
        (lambda: Resize((5,), mode="bicubic"), "Resize.mode"),
        (lambda: Compose(Jitter(1)), "Compose.transforms"),
        (lambda: Compose((Jitter(1), "pad")), r"Compose.transforms\[1\]"),
    ],
)
def test_invalid_settings_name_the_field(build: Callable[[], object], field: str) -> None:
    with pytest.raises(UnitlensError, match=field):
        build()


@pytest.mark.parametrize(
    ("transform", "x", "u", "message"),
    [
        (RandomScale((1.0,)), torch.rand(2, 1, 8), torch.rand(2, 1), r"\(n, C, H, W\)"),
        (RandomRotate((0.0,)), torch.rand(2, 1, 8), torch.rand(2, 1), r"\(n, C, H, W\)"),
        (Pad(1), torch.rand(2, 1, 3, 3, 3), torch.rand(2, 0), "shape"),
        (Pad(1), torch.arange(8).view(1, 1, 8), torch.rand(1, 0), "floating-point"),
        (Pad(3, mode="reflect"), torch.rand(2, 1, 3, 8), torch.rand(2, 0), "Pad.width"),
        (Jitter(2), torch.rand(2, 1, 8), torch.rand(2, 2), "Jitter.ndim"),
        (Jitter(2, ndim=1), torch.rand(2, 1, 8, 8), torch.rand(2, 1), "Jitter.ndim"),
        (Jitter(8), torch.rand(2, 1, 8, 9), torch.rand(2, 2), "Jitter.distance"),
        (Jitter(2), torch.rand(2, 1, 8, 8), torch.rand(2, 1), r"u must have shape .*\(2, 2\)"),
        (Jitter(2), torch.rand(2, 1, 8, 8), torch.rand(3, 2), r"u must have shape"),
        (Resize((4, 4)), torch.rand(2, 1, 8), torch.rand(2, 0), "Resize.size"),
        (Compose((Jitter(1), Jitter(1))), torch.rand(2, 1, 8, 8), torch.rand(2, 2), r"Compose: u .*\(2, 4\)"),
    ],
)
def test_invalid_inputs_raise(transform: Transform, x: torch.Tensor, u: torch.Tensor, message: str) -> None:
    with pytest.raises(UnitlensError, match=message):
        transform(x, u)
