from unitlens.analysis.claims import measure_claims


def _layer(layer: int, median: float, frac: float, capped: int = 0, lc: float = 0.7) -> dict[str, object]:
    row: dict[str, object] = {
        "layer": layer,
        "restarts": {"median_mean_cosine": median, "fraction_above": frac, "n_units_capped": capped},
        "control_restarts": {"median_mean_cosine": 0.9, "fraction_above": 0.5},
        "selectivity": {"fraction_diagonal": 0.97, "n_tied": 1},
        "lc_vs_am": {"median": lc},
    }
    if layer == 1:
        row["closed_form_cosine_min"] = 0.9995
    return row


def _by_id(claims: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(c["id"]): c for c in claims}


def test_claims_hold_or_fail_against_the_floors() -> None:
    good = {"layers": [_layer(1, 1.0, 1.0), _layer(2, 0.99, 0.97), _layer(3, 0.98, 0.95)]}
    bad = {"layers": [_layer(1, 1.0, 1.0), _layer(2, 0.99, 0.97, capped=2), _layer(3, 0.90, 0.5, lc=0.95)]}
    claims = _by_id(
        measure_claims(
            {"mnist-dbn": good}, {"am_cosine": {"dbn L2": 0.996}, "errors": {"dbn": 0.04, "random": 0.08}}
        )
    )
    assert claims["1"]["holds"] is True
    assert claims["2.2"]["holds"] is True and claims["2.3"]["holds"] is True
    assert "shuffled control 0.900" in str(claims["2.2"]["measured"])
    assert claims["3"]["holds"] is True
    assert claims["4"]["holds"] is True
    assert claims["6"]["holds"] is None and "not measured" in str(claims["6"]["measured"])
    assert claims["7"]["holds"] is True
    failing = _by_id(measure_claims({"mnist-dbn": good, "mnist-sdae": bad}))
    assert failing["2.2"]["holds"] is False  # a unit hit the step cap
    assert failing["2.3"]["holds"] is False
    assert failing["7"]["holds"] is None


def test_patch_size_claim_compares_12_and_20_pixel_patches() -> None:
    small = {"layers": [_layer(2, 0.99, 1.0), _layer(3, 0.98, 1.0)]}
    large = {"layers": [_layer(2, 0.95, 0.8), _layer(3, 0.93, 0.7)]}
    claims = _by_id(measure_claims({"patches-sdae": small, "patches20-sdae": large}))
    assert claims["6"]["holds"] is True
    # 20x20 restarts are expected to disagree: claim 2 lists them without judging them.
    assert claims["2.2"]["holds"] is True and "patches20-sdae 0.950" in str(claims["2.2"]["detail"])
    claims = _by_id(measure_claims({"patches-sdae": large, "patches20-sdae": small}))
    assert claims["6"]["holds"] is False


def test_finetune_claim_needs_both_kept_images_and_a_useful_finetuning() -> None:
    def claim7(cosine: float, errors: dict[str, float]) -> object:
        return _by_id(measure_claims({}, {"am_cosine": {"dbn L2": cosine}, "errors": errors}))["7"]["holds"]

    assert claim7(0.999, {"dbn": 0.04, "random": 0.08}) is True
    assert claim7(0.99, {"dbn": 0.04, "random": 0.08}) is False  # below the 0.995 floor
    assert claim7(0.999, {"dbn": 0.09, "random": 0.08}) is False  # images kept, but fine-tuning did nothing
    assert claim7(0.999, {"dbn": 0.04}) is False  # no baseline to compare with


def test_finetune_floor_is_the_layers_own_restart_agreement_where_lower() -> None:
    loose = {"layers": [_layer(3, 0.98, 1.0)]}  # restarts of this layer agree at 0.98
    tight = {"layers": [_layer(3, 0.999, 1.0)]}
    finetune = {"am_cosine": {"sdae L3": 0.985}, "errors": {"sdae": 0.04, "random": 0.08}}
    assert _by_id(measure_claims({"mnist-sdae": loose}, finetune))["7"]["holds"] is True
    assert _by_id(measure_claims({"mnist-sdae": tight}, finetune))["7"]["holds"] is False
    assert "restarts agree at 0.980" in str(
        _by_id(measure_claims({"mnist-sdae": loose}, finetune))["7"]["measured"]
    )
