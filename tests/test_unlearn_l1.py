import pytest

from unlearn.sparse import l1_coefficient


@pytest.mark.parametrize(
    "epochs,no_l1,expected",
    [
        (10, 0, [0.2 * (1 - t / 10) for t in range(10)]),
        (5, 2, [0.2, 0.2 * 2 / 3, 0.2 / 3, 0.0, 0.0]),
        (3, 3, [0.2, 0.2, 0.2]),  # E - E0 = 0: the full coefficient throughout
    ],
)
def test_l1_schedule_epoch_by_epoch(epochs, no_l1, expected):
    got = [l1_coefficient(0.2, t, epochs, no_l1) for t in range(epochs)]
    assert got == pytest.approx(expected)
