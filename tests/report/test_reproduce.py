from pathlib import Path

import pytest

from engramlab.cli import build_parser
from engramlab.report.reproduce import plan, reproduce


@pytest.mark.parametrize("full", [False, True])
def test_every_planned_experiment_is_a_valid_command(full):
    parser = build_parser()
    steps = plan(Path("/tmp/report"), full, None)
    assert {s.system for s in steps} == {"foundation", "bdh", "astro", "hmmglm", "timescales"}
    for s in steps:
        args = parser.parse_args(s.argv)  # argparse exits (SystemExit) on an unknown option
        assert callable(args.func), s.name


def test_unknown_system_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown system.*'bhd'.*known: astro, bdh, foundation"):
        reproduce(tmp_path, only=["bhd"])
