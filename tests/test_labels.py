"""finetune.labels.labeled_subset on digits: the labeled subset fine-tuning trains on, and the split it validates on."""
import pytest
import torch

from finetune.batches import StepBatches
from finetune.labels import labeled_subset
from pretrain import DigitsDataModule, StrataError


@pytest.fixture(scope="module")
def row_index(digits):
    """Raw image -> its position in x_train (digits has no two identical images), and the test images."""
    index = {tuple(row.tolist()): i for i, row in enumerate(digits.x_train)}
    assert len(index) == len(digits.x_train)
    return index, {tuple(row.tolist()) for row in digits.x_test}


def draw(digits, row_index, labels, seed=0, val_from="pool", val_fraction=0.2):
    """labeled_subset(...) as (train positions, train labels, validation positions) in x_train."""
    (x, y), (x_val, y_val), _ = labeled_subset(digits, labels, seed, val_from, val_fraction)
    index, test_rows = row_index
    assert not {tuple(r.tolist()) for r in torch.cat([x, x_val])} & test_rows  # never the test set
    train, val = [torch.tensor([index[tuple(r.tolist())] for r in xs]) for xs in (x, x_val)]
    assert torch.equal(digits.y_train[train], y) and torch.equal(digits.y_train[val], y_val)
    return train, y, val


def assert_balanced(y, n, classes=10):
    counts = torch.bincount(y, minlength=classes)
    assert counts.sum() == n
    assert counts.min() == n // classes and counts.max() - counts.min() <= (1 if n % classes else 0), counts.tolist()


@pytest.mark.parametrize("n", [10, 20, 37, 100])
def test_pool_labels_are_balanced_and_disjoint_from_the_validation_pool(digits, row_index, n):
    train, y, val = draw(digits, row_index, labels=n, val_from="pool", seed=0)
    assert len(set(train.tolist())) == n
    assert_balanced(y, n)
    assert set(val.tolist()) == set(digits.val_index.tolist())
    assert not set(train.tolist()) & set(val.tolist())


@pytest.mark.parametrize("n", [20, 37, 100])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_labels_carve_a_balanced_validation_split_out_of_n(digits, row_index, n, seed):
    """val_from=labels: the N labels are split into training and validation, each balanced across classes
    (so that no class is left without a training example)."""
    train, y, val = draw(digits, row_index, labels=n, val_from="labels", val_fraction=0.2, seed=seed)
    k = round(0.2 * n)
    assert len(val) == k and len(train) == n - k
    assert not set(train.tolist()) & set(val.tolist())
    assert not set((train.tolist() + val.tolist())) & set(digits.val_index.tolist())  # the pool stays untouched
    assert_balanced(y, n - k)
    assert_balanced(digits.y_train[val], k)


@pytest.mark.parametrize("val_from", ["pool", "labels"])
def test_the_draw_is_reproducible_from_its_seed(digits, row_index, val_from):
    first, again, other = (draw(digits, row_index, labels=50, val_from=val_from, seed=s) for s in (0, 0, 1))
    assert torch.equal(first[0], again[0]) and torch.equal(first[2], again[2])
    assert set(first[0].tolist()) != set(other[0].tolist())
    if val_from == "pool":  # the validation pool does not move with the seed
        assert torch.equal(first[2], other[2])


def test_all_labels_are_every_training_example_outside_the_validation_pool(digits, row_index):
    train, y, val = draw(digits, row_index, labels="all", val_from="pool")
    assert sorted(train.tolist()) == sorted(digits.fit_index.tolist())
    assert sorted(val.tolist()) == sorted(digits.val_index.tolist())

    train, y, val = draw(digits, row_index, labels="all", val_from="labels", val_fraction=0.2)
    assert sorted(train.tolist() + val.tolist()) == sorted(digits.fit_index.tolist())
    assert len(val) == round(0.2 * len(digits.fit_index))


def test_by_default_nothing_validates_and_no_label_beyond_the_budget_is_used(digits, row_index):
    """The realistic protocol: a budget of N labels gives N labels to train on and no validation split; the pool's
    labels stay unused (its inputs are unlabeled training inputs like the others)."""
    assert DigitsDataModule().val_from == "none"
    (x, y), val, validation = labeled_subset(digits, 100, 0)
    assert val is None and validation.startswith("none") and len(x) == len(y) == 100
    index, _ = row_index
    assert not {index[tuple(r.tolist())] for r in x} & set(digits.val_index.tolist())
    (x_l, _), (x_v, _), validation = labeled_subset(digits, 100, 0, "labels")
    assert len(x_l) + len(x_v) == 100 and validation == "20 of the 100 budgeted labels"  # carved from the same 100
    assert {tuple(r.tolist()) for r in torch.cat([x_l, x_v])} == {tuple(r.tolist()) for r in x}
    assert "beyond the budget" in labeled_subset(digits, 100, 0, "pool").validation  # the pool is always named


def test_impossible_budgets_are_clear_errors(digits, row_index):
    with pytest.raises(StrataError, match="data.labels=5000 exceeds the 1221 labeled training examples"):
        draw(digits, row_index, labels=5000)
    with pytest.raises(StrataError, match="data.labels=1200 asks for 120 examples of class"):
        draw(digits, row_index, labels=1200)  # fewer than 120 of some digit outside the pool
    with pytest.raises(StrataError, match="data.labels='many' is not a positive integer or 'all'"):
        DigitsDataModule(labels="many")
    with pytest.raises(StrataError, match="data.val_from='test' is not one of none, labels, pool"):
        DigitsDataModule(val_from="test")
    with pytest.raises(StrataError, match="leaves no validation or nothing to train on"):
        draw(digits, row_index, labels=2, val_from="labels", val_fraction=0.9)


def test_few_labels_are_cycled_in_reshuffled_passes():
    x, y = torch.arange(20.0)[:, None], torch.arange(20)
    loader = StepBatches(x, y, batch_size=8, steps=5, seed=0)
    epochs = [list(loader), list(loader)]
    assert len(loader) == 5 and all(len(e) == 5 and all(len(b[1]) == 8 for b in e) for e in epochs)
    seen = torch.cat([b[1] for e in epochs for b in e])  # 80 draws: four whole passes over the 20 examples
    for p in range(4):
        assert torch.equal(seen[20 * p : 20 * (p + 1)].sort().values, torch.arange(20))
    assert all(torch.equal(b[0][:, 0].long(), b[1]) for e in epochs for b in e)  # inputs stay with their labels
    assert not torch.equal(seen[:20], seen[20:40])  # each pass reshuffled
    again = StepBatches(x, y, batch_size=8, steps=5, seed=0)
    assert torch.equal(torch.cat([b[1] for b in list(again)]), torch.cat([b[1] for b in epochs[0]]))
    assert len(next(iter(StepBatches(x, y, batch_size=64, steps=1)))[1]) == 20  # fewer rows than a batch: all of them
