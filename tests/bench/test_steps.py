"""bench.steps in-process on a tiny WRN: the record each method prints, the baseline's ratio."""

import json

import pytest

from bench import steps

KEYS = {"method", "ms_median", "ms_min", "ms_max", "images_per_s", "ratio", "peak_rss_mb", "device"}


def test_a_tiny_benchmark_prints_one_record_per_method_baseline_first(capsys):
    tiny = ["--wrn_depth=10", "--wrn_width=1", "--image_size=8", "--batch=8", "--warmup=1"]
    records = steps.main(["--methods=ns3l", "--steps=2", *tiny])
    assert [r["method"] for r in records] == ["supervised", "ns3l"]  # the baseline is added
    assert all(KEYS <= r.keys() for r in records)
    assert records[0]["ratio"] == 1.0
    assert all(r["ms_min"] <= r["ms_median"] <= r["ms_max"] for r in records)
    ratio = records[1]["ms_median"] / records[0]["ms_median"]
    # The record divides the unrounded medians; the printed ms are rounded, hence 2 %.
    assert records[1]["ratio"] == pytest.approx(ratio, rel=0.02)
    assert [json.loads(line) for line in capsys.readouterr().out.splitlines()] == records


def test_mixmatch_under_xla_and_mixed_precision_several_steps_per_call():
    tiny = ["--filters=4", "--repeat=1", "--image_size=8", "--batch=8", "--warmup=1"]
    options = ["--xla", "--mixed_precision", "--steps_per_call=3", "--steps=2"]
    records = steps.main(["--stack=mixmatch", *options, *tiny])
    assert [r["method"] for r in records] == ["mixmatch", "mixmatch+ns3l"]
    for record in records:  # every method compiles under XLA: no "error" key, a time
        assert "error" not in record and record["ms_median"] > 0
        assert record["policy"] == "mixed_bfloat16" and record["xla"]
        assert (record["steps_per_call"], record["feed"]) == (3, "pipeline")


def test_fixmatch_steps_on_synthetic_views():
    tiny = ["--filters=4", "--repeat=1", "--image_size=8", "--batch=4", "--warmup=1", "--steps=2"]
    records = steps.main(["--stack=fixmatch", *tiny])
    assert [r["method"] for r in records] == ["fixmatch", "fixmatch+ns3l"]
    assert records[0]["ratio"] == 1.0 and records[1]["ratio"] > 0
    # A step reads 4 labeled rows and both views of 7 × 4 unlabeled ones: 60 images.
    assert records[0]["images_per_s"] == pytest.approx(
        60 / (records[0]["ms_median"] / 1e3), rel=0.02
    )
