import pytest

from services.cometapi.predictions import Prediction, normalise_output, parse_progress
from services.errors import Unavailable


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (["https://a/1.png", "https://a/2.png"], ("https://a/1.png", "https://a/2.png")),
        ("https://a/1.png", ("https://a/1.png",)),
        ("data:image/png;base64,AAAA", ("data:image/png;base64,AAAA",)),
        (None, ()),
        ("", ()),
        ([None, 3, "https://a/1.png"], ("https://a/1.png",)),
        ({"weird": True}, ()),
    ],
)
def test_output_shapes(output, expected):
    assert normalise_output(output) == expected


def test_lenient_parse_of_partial_and_odd_objects():
    p = Prediction.from_api({"id": "abc", "status": "QUEUED_FOR_GPU", "created_at": "2026-11-21T10:00:00.123456789Z"})
    assert p.status == "queued_for_gpu"
    assert not p.terminal
    assert p.created_at is not None
    assert Prediction.from_api({"id": "abc"}).status == "starting"
    done = Prediction.from_api(
        {
            "id": "a",
            "status": "succeeded",
            "created_at": "2026-11-21T10:00:00Z",
            "completed_at": "2026-11-21T10:00:02.5Z",
        }
    )
    assert done.server_seconds == 2.5
    assert Prediction.from_api({"id": "a", "status": "failed", "error": {"detail": "NSFW"}}).error == "NSFW"
    bad_objects: list[object] = [None, [], {"status": "succeeded"}, {"id": ""}]
    for bad in bad_objects:
        with pytest.raises(Unavailable):
            Prediction.from_api(bad)


def test_tqdm_progress_takes_the_last_line_and_computes_time_left():
    logs = "Using seed: 1\n  0%|          | 0/4 [00:00<?, ?it/s]\r 75%|███████▌  | 3/4 [00:00<00:00,  2.00it/s]"
    progress = parse_progress(logs)
    assert (progress.percent, progress.step, progress.total) == (75, 3, 4)
    assert progress.seconds_left == pytest.approx(0.5)
    slow = parse_progress(" 50%|█████     | 14/28 [00:02<00:02,  1.50s/it]")
    assert slow.seconds_left == pytest.approx(21.0)


def test_no_invented_percentages():
    assert parse_progress("Using seed: 1\nGenerating image...").percent is None
    assert parse_progress("Using seed: 1\nGenerating image...").stage == "Generating image..."
    assert parse_progress("4it [00:01,  3.1it/s]") == parse_progress("")
    assert parse_progress("").percent is None


def test_a_time_without_a_zone_is_read_as_utc_beside_one_with_a_zone():
    done = Prediction.from_api(
        {
            "id": "a",
            "status": "succeeded",
            "created_at": "2026-11-21T10:00:00Z",
            "completed_at": "2026-11-21T10:00:03",
        }
    )
    assert done.server_seconds == 3.0
