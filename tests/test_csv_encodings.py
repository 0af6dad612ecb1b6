"""CSV files as people have them (issue 21, item 7): a UTF-8 byte-order mark never joins the first header;
a latin-1 file gets one line naming the file and the fix (it is refused, not guessed)."""
import numpy as np

from conftest import run_inprocess
from mixup_cli.data import get_dataset


def label_first_rows(rows=30):
    """A table whose label column comes first: were the header misread, the last feature would be the label."""
    rng = np.random.default_rng(0)
    lines = ["label,width,height"]
    for i in range(rows):
        lines.append(f"{['cat', 'dog', 'emu'][i % 3]},{rng.normal(10 * (i % 3), 1):.3f},{rng.normal(100, 5):.3f}")
    return "\n".join(lines) + "\n"


def test_a_byte_order_mark_does_not_become_part_of_the_first_header(tmp_path):
    plain, marked = tmp_path / "plain.csv", tmp_path / "marked.csv"
    plain.write_text(label_first_rows(), encoding="utf-8")
    marked.write_text(label_first_rows(), encoding="utf-8-sig")  # as spreadsheet programs save "CSV UTF-8"
    assert marked.read_bytes().startswith(b"\xef\xbb\xbf")
    spec = get_dataset(f"csv:{marked}")
    assert spec.num_classes == 3 and spec.input_shape == (2,)
    for split in ("train", "test"):
        a, b = get_dataset(f"csv:{plain}").load(split), spec.load(split)
        assert a.labels.tolist() == b.labels.tolist() and np.array_equal(a.inputs.numpy(), b.inputs.numpy())
    result = run_inprocess("train", "--dataset", f"csv:{marked}", "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 0, result.stderr


def test_a_latin1_file_is_refused_with_one_line_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "cafés.csv"
    path.write_bytes(label_first_rows().replace("emu", "émeu").encode("latin-1"))
    result = run_inprocess("train", "--dataset", f"csv:{path}", "--epochs", "1", "--out", tmp_path / "run")
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0], result.stderr
    assert "not UTF-8" in lines[0] and "line 4" in lines[0] and "save it as UTF-8" in lines[0]
    assert not (tmp_path / "run").exists()
