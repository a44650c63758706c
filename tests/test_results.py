"""The results table's seed summary: mean and range over a system's seed copies."""

from __future__ import annotations

from asr.results import seed_table


def _row(system: str, dset: str, wer: float, seed: int | None) -> dict:
    return {"system": system, "set": dset, "info": {"wer": wer},
            "model": {} if seed is None else {"seed": seed, "threads": 2}}


def test_seed_copies_are_summarised_per_set() -> None:
    rows = [_row("dnn", "test", 4.14, 0), _row("dnn_seed1", "test", 4.92, 1), _row("dnn_seed2", "test", 5.17, 2),
            _row("dnn", "dev", 5.87, 0), _row("dnn_seed1", "dev", 6.01, 1),
            _row("ctc", "test", 8.93, 0),  # one seed only: no summary
            _row("tri1", "test", 8.67, None), _row("tri1_seed1", "test", 9.0, None)]  # GMMs have no seed
    table = seed_table(rows)
    assert "| dnn | test | 0, 1, 2 | 4.74 | 4.14 - 5.17 | 4.14, 4.92, 5.17 |" in table
    assert "| dnn | dev | 0, 1 | 5.94 | 5.87 - 6.01 |" in table
    assert "ctc" not in table and "tri1" not in table
    assert seed_table([_row("ctc", "test", 8.93, 0)]) == ""


def test_labels_mark_rows_whose_choices_were_not_made_on_dev() -> None:
    import pytest

    from asr.results import apply_labels
    from asr.utils import AsrError

    rows = [_row("tri1", "test", 8.67, None), _row("tri1_500leaves", "test", 8.8, None), _row("dnn", "test", 4.1, 0)]
    rows[0]["info"]["selection"] = "tuned on exp/an4/tri1/decode_dev"
    apply_labels(rows, ["tri1*=test-tuned: Gaussians", "dnn=test-tuned: size"])
    assert rows[0]["info"]["selection"] == "tuned on exp/an4/tri1/decode_dev; test-tuned: Gaussians"
    assert rows[1]["info"]["selection"] == "test-tuned: Gaussians" and rows[2]["info"]["selection"] == "test-tuned: size"
    with pytest.raises(AsrError, match="SYSTEM=TEXT"):
        apply_labels(rows, ["no-equals-sign"])


def test_cross_table_has_a_row_per_model_and_a_column_per_target(tmp_path) -> None:
    import json

    import pytest

    from asr.results import cross_table, write_cross_results
    from asr.utils import AsrError

    own = tmp_path / "an4" / "dnn"
    (own / "decode_test").mkdir(parents=True)
    (own / "decode_test" / "wer.txt").write_text("%WER 5.82 [ 45 / 773, 5 ins, 3 del, 37 sub ]\n")
    cross = tmp_path / "cross"
    for system, model, decodes in (("an4_dnn", own, {"fsdd_dev": 22.33, "fsdd_test": 20.67}),
                                   ("librispeech_tri3", tmp_path / "none", {"an4_dev": 19.74, "an4_test": 21.73,
                                                                             "fsdd_test": 20.33})):
        for name, wer in decodes.items():
            d = cross / system / f"decode_{name}"
            d.mkdir(parents=True)
            (d / "decode_info.json").write_text(json.dumps({"model": str(model)}))
            (d / "wer.txt").write_text(f"%WER {wer:.2f} [ 1 / 2, 0 ins, 0 del, 1 sub ]\n")
    table = cross_table(cross).splitlines()
    assert table[0] == "| model | own test | an4 test (dev) | fsdd test (dev) |"
    assert table[2] == "| an4 dnn | 5.82 |  | 20.67 (22.33) |"
    assert table[3] == "| librispeech tri3 | - | 21.73 (19.74) | 20.33 (-) |"
    text = write_cross_results(cross, tmp_path / "RESULTS.md")
    assert (tmp_path / "RESULTS.md").read_text() == text and "| an4 dnn |" in text
    labelled = cross_table(cross, ["an4_dnn=not chosen on dev"]).splitlines()
    assert labelled[2] == "| an4 dnn (not chosen on dev) | 5.82 |  | 20.67 (22.33) |" and labelled[3] == table[3]
    with pytest.raises(AsrError):
        cross_table(tmp_path / "empty_dir_that_is_missing")
