import numpy as np
import pandas as pd
import pytest
import torch

from gapdiag import Episodes, InputError, Items, Pairs, Split
from gapdiag.data import as_split, labels_from_pairs, make_episodes, make_pairs, pairs_from_episodes


def _items(n=60, classes=6, shape=(1, 4, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return Items(torch.rand((n, *shape), generator=g), labels=np.arange(n) % classes)


def test_pairs_from_loader_deduplicates_identical_inputs():
    x = torch.rand(5, 1, 4, 4)
    # item 0 appears in both batches and on both sides: still one item
    batches = [
        (x[[0, 1]], x[[2, 0]], torch.tensor([1, 0])),
        (x[[0, 3]], x[[4, 4]], torch.tensor([0, 1])),
    ]
    pairs = Pairs.from_loader(batches)
    assert len(pairs.items) == 5
    assert len(pairs) == 4
    assert pairs.left[0] == pairs.right[1] == pairs.left[2]
    assert pairs.right[2] == pairs.right[3]
    # the stored inputs are the loader's values
    torch.testing.assert_close(pairs.items.get_batch(np.array([pairs.left[1]])), x[[1]])


def test_pairs_from_loader_keeps_identity_labels_and_rejects_bad_labels():
    x = torch.rand(4, 3)
    pairs = Pairs.from_loader(
        [(x[:2], x[2:], torch.tensor([1, 0]), torch.tensor([7, 8]), torch.tensor([7, 9]))]
    )
    assert pairs.items.labels.tolist() == [7, 8, 7, 9]
    with pytest.raises(InputError, match="0 \\(dissimilar\\) or 1"):
        Pairs.from_loader([(x[:2], x[2:], torch.tensor([1, -1]))])
    with pytest.raises(InputError, match="NaN"):
        Pairs.from_loader([(torch.full((2, 3), float("nan")), x[2:], torch.tensor([1, 0]))])


def test_triplet_batches_become_a_similar_and_a_dissimilar_pair_each():
    """(anchor, positive, negative) batches, as a triplet loss reads them, from a loader or a dataset of rows."""
    x = torch.rand(6, 1, 4, 4)
    batches = [(x[[0, 1]], x[[2, 3]], x[[4, 5]]), (x[[0]], x[[3]], x[[5]])]
    pairs = Pairs.from_loader(batches)
    assert len(pairs.items) == 6 and len(pairs) == 6
    assert pairs.label.tolist() == [1, 1, 0, 0, 1, 0]
    anchors = pairs.items.get_batch(pairs.left)
    torch.testing.assert_close(anchors, x[[0, 1, 0, 1, 0, 0]])
    torch.testing.assert_close(pairs.items.get_batch(pairs.right), x[[2, 3, 4, 5, 3, 5]])
    rows = torch.utils.data.TensorDataset(x[[0, 1]], x[[2, 3]], x[[4, 5]])  # a map-style dataset of triplets
    split = as_split(rows, "train")
    assert len(split.pairs) == 4 and sorted(split.pairs.label.tolist()) == [0, 0, 1, 1]
    # a pair batch whose labels happen to be floats is still a pair batch
    feature_pairs = Pairs.from_loader([(torch.rand(3, 5), torch.rand(3, 5), torch.tensor([1.0, 0.0, 1.0]))])
    assert feature_pairs.label.tolist() == [1, 0, 1]


def test_episodes_from_loader_accepts_batched_collated_and_unbatched():
    x = torch.rand(8, 1, 4, 4)
    batched = [(x[[0, 1]], x[torch.tensor([[2, 3, 4], [5, 6, 7]])], torch.tensor([0, 2]))]
    collated = [(x[[0, 1]], [x[[2, 5]], x[[3, 6]], x[[4, 7]]], torch.tensor([0, 2]))]
    single = [(x[0], [x[2], x[3], x[4]], 0), (x[1], [x[5], x[6], x[7]], 2)]
    results = [Episodes.from_loader(b) for b in (batched, collated, single)]
    for e in results:
        assert len(e.items) == 8 and e.n_way == 3 and e.correct.tolist() == [0, 2]
        anchors = e.items.get_batch(e.anchor)
        torch.testing.assert_close(anchors, x[[0, 1]])
        torch.testing.assert_close(e.items.get_batch(e.candidates[1]), x[[5, 6, 7]])


def test_episodes_reject_correct_out_of_range():
    items = _items()
    with pytest.raises(InputError, match="out of range for 3 candidates"):
        Episodes(items, [0], [[1, 2, 3]], [3])


def test_mismatched_lengths_empty_and_out_of_range_indices():
    items = _items()
    with pytest.raises(InputError, match="Mismatched lengths"):
        Pairs(items, [0, 1], [2], [1, 0])
    with pytest.raises(InputError, match="outside the 60 items"):
        Pairs(items, [0, 60], [1, 2], [1, 0])
    with pytest.raises(InputError, match="empty"):
        Items(torch.empty(0, 3))
    with pytest.raises(InputError, match="one label per item"):
        Items(torch.rand(3, 2), labels=[0, 1])


def test_make_pairs_is_deterministic_balanced_and_correct():
    items = _items(n=200, classes=10)
    a, b = make_pairs(items, n_pairs=500, seed=3), make_pairs(items, n_pairs=500, seed=3)
    c = make_pairs(items, n_pairs=500, seed=4)
    assert (
        np.array_equal(a.left, b.left)
        and np.array_equal(a.right, b.right)
        and np.array_equal(a.label, b.label)
    )
    assert not np.array_equal(a.left, c.left)
    assert a.label.sum() == 250
    y = items.labels
    pos = a.label == 1
    assert np.all(y[a.left[pos]] == y[a.right[pos]]) and np.all(a.left[pos] != a.right[pos])
    assert np.all(y[a.left[~pos]] != y[a.right[~pos]])


def test_make_episodes_is_deterministic_and_well_formed():
    items = _items(n=200, classes=12)
    e1, e2 = (
        make_episodes(items, n_way=5, n_episodes=300, seed=1),
        make_episodes(items, n_way=5, n_episodes=300, seed=1),
    )
    assert np.array_equal(e1.candidates, e2.candidates) and np.array_equal(e1.correct, e2.correct)
    y = items.labels
    rows = np.arange(300)
    match = e1.candidates[rows, e1.correct]
    assert np.all(y[match] == y[e1.anchor]) and np.all(match != e1.anchor)
    cand_classes = y[e1.candidates]
    # distractors: other classes, all distinct within an episode
    assert np.all(np.sort(cand_classes, axis=1)[:, 1:] != np.sort(cand_classes, axis=1)[:, :-1])
    assert np.bincount(e1.correct, minlength=5).min() > 30  # the true match's position is spread out
    with pytest.raises(InputError, match="need 13 classes"):
        make_episodes(items, n_way=13)


def test_pairs_from_episodes_and_components():
    items = _items(n=20, classes=4)
    e = make_episodes(items, n_way=3, n_episodes=10, seed=0)
    p = pairs_from_episodes(e)
    assert len(p) == 30 and p.label.sum() == 10
    pairs = Pairs(items, [0, 1, 5, 9], [1, 2, 6, 10], [1, 1, 1, 0])
    comp = labels_from_pairs(pairs)
    assert comp[0] == comp[1] == comp[2] and comp[5] == comp[6] and comp[9] != comp[10] and comp[0] != comp[5]


def test_items_from_dataset_reads_lazily():
    class Lazy:
        reads = 0

        def __len__(self):
            return 30

        def __getitem__(self, i):
            Lazy.reads += 1
            return torch.full((2, 3), float(i)), i % 3

    ds = Lazy()
    items = Items.from_dataset(ds)
    before = Lazy.reads
    batch = items.get_batch(np.array([4, 7]))
    assert Lazy.reads - before == 2
    assert batch[:, 0, 0].tolist() == [4.0, 7.0]
    split = Split.from_items("train", items, n_pairs=40, n_way=3, seed=0)
    assert len(split.pairs) == 40 and split.episodes.n_way == 3


def test_split_rejects_foreign_pairs_and_builds_from_embeddings():
    a, b = _items(seed=0), _items(seed=1)
    with pytest.raises(InputError, match="different Items"):
        Split("val", a, pairs=make_pairs(b, n_pairs=10))
    s = Split.from_embeddings(np.random.rand(10, 4), labels=np.arange(10) % 2, pairs=([0, 1], [2, 3], [1, 0]))
    assert not s.items.has_inputs and s.embeddings.shape == (10, 4)
    with pytest.raises(InputError, match="NaN"):
        Split.from_embeddings(np.full((3, 2), np.nan), labels=[0, 1, 0])


def test_items_keep_user_attributes_in_row_order():
    df = pd.DataFrame({"scanner": ["a", "b", "c"]}, index=[10, 11, 12])
    items = Items(torch.rand(3, 2), attributes=df)
    assert items.attributes["scanner"].tolist() == ["a", "b", "c"] and list(items.attributes.index) == [
        0,
        1,
        2,
    ]


def test_audit_inputs_can_be_loaders_of_pairs_or_episodes():
    from gapdiag.data import as_split

    x = torch.rand(8, 1, 4, 4)
    pair_batches = [(x[[0, 1]], x[[2, 3]], torch.tensor([1, 0]))]
    episode_batches = [(x[[0, 1]], x[torch.tensor([[2, 3, 4], [5, 6, 7]])], torch.tensor([0, 2]))]
    collated = [(x[[0, 1]], [x[[2, 5]], x[[3, 6]], x[[4, 7]]], torch.tensor([0, 2]))]
    assert as_split(iter(pair_batches), "train").pairs is not None
    for batches in (episode_batches, collated):
        split = as_split((b for b in batches), "val")
        assert split.episodes is not None and split.episodes.n_way == 3 and split.pairs is None
    with pytest.raises(InputError, match="yielded no batches"):
        as_split(iter([]), "val")
    with pytest.raises(InputError, match="first batch of the val loader is a Tensor"):
        as_split([x[0]], "val")


def test_audit_inputs_can_be_labelled_loaders_or_datasets():
    from gapdiag.data import as_split

    x, y = torch.rand(40, 1, 4, 4), torch.arange(40) % 4
    loader = [(x[s : s + 16], y[s : s + 16]) for s in range(0, 40, 16)]
    split = as_split(loader, "val")
    assert len(split.items) == 40 and split.items.labels.tolist() == y.tolist()
    # labelled items carry no protocol of their own: the audit derives pairs and episodes from the labels
    assert split.pairs is None and split.episodes is None

    class Dataset:
        def __len__(self):
            return 40

        def __getitem__(self, i):
            return x[i], int(y[i])

    split = as_split(Dataset(), "train")
    assert len(split.items) == 40 and split.items.labels.tolist() == y.tolist()

    class PairDataset:
        def __len__(self):
            return 30

        def __getitem__(self, i):
            return x[i], x[i + 1], int(y[i] == y[i + 1])

    split = as_split(PairDataset(), "train")
    assert len(split.pairs) == 30 and len(split.items) == 31 and split.items.item_shape == (1, 4, 4)

    class EpisodeDataset:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return x[i], [x[i + 10], x[i + 20], x[i + 30]], i % 3

    split = as_split(EpisodeDataset(), "val")
    assert (
        len(split.episodes) == 5
        and split.episodes.n_way == 3
        and split.episodes.correct.tolist() == [0, 1, 2, 0, 1]
    )


def _pair_rows(x, y, nested: bool):
    """Rows of a pair dataset, as public Siamese datasets write them."""

    class PairDataset:
        def __len__(self):
            return 30

        def __getitem__(self, i):
            target = int(y[i] == y[i + 1])
            return ((x[i], x[i + 1]), target) if nested else (x[i], x[i + 1], target)

    return PairDataset()


def test_nested_pair_batches_and_rows_are_pairs_never_labelled_items():
    from gapdiag.data import as_split

    x, y = torch.rand(40, 1, 4, 4), torch.arange(40) % 4
    flat = as_split(_pair_rows(x, y, nested=False), "train")
    nested = as_split(_pair_rows(x, y, nested=True), "train")
    assert nested.pairs is not None and nested.items.labels is None
    assert nested.pairs.label.tolist() == flat.pairs.label.tolist() and len(nested.items) == 31
    # a loader of ((x1, x2), target) batches, as a DataLoader collates them
    loader = [
        ((x[s : s + 8], x[s + 1 : s + 9]), (y[s : s + 8] == y[s + 1 : s + 9]).long()) for s in (0, 8, 16)
    ]
    split = as_split(loader, "train")
    assert len(split.pairs) == 24 and split.items.labels is None
    # identity labels riding along as a pair
    loader = [((x[:8], x[1:9]), (y[:8] == y[1:9]).long(), (y[:8], y[1:9]))]
    assert as_split(loader, "train").items.labels is not None
    assert Pairs.from_loader(loader).items.labels is not None


def test_layouts_that_fit_nothing_name_the_layouts_understood():
    from gapdiag.data import as_split

    x = torch.rand(8, 1, 4, 4)
    with pytest.raises(InputError, match="gapdiag reads tuples"):
        as_split([{"x1": x, "x2": x, "label": torch.ones(8)}], "train")
    with pytest.raises(InputError, match="fit neither a pair"):
        as_split([(x, torch.rand(8, 1, 5, 5), torch.ones(8))], "train")
    with pytest.raises(InputError, match=r"labelled items: \(x, label\)"):
        as_split([(x,)], "train")


def test_split_roles_come_from_positions_not_names():
    from gapdiag.data import as_split

    items = Items(torch.rand(6, 3), labels=[0, 0, 1, 1, 2, 2])
    split = as_split(Split("val", items), "train")
    assert split.name == "train" and split.items is items
