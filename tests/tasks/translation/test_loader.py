"""translation_loader: batching by tokens, batch counts, per-epoch reshuffling, sharding."""

from __future__ import annotations

import pytest
import torch
from fairseq.data import Dictionary, LanguagePairDataset

from gsprune.tasks.translation.data import TokenBatchSampler, translation_loader


def make_dataset(n: int = 300, seed: int = 0) -> LanguagePairDataset:
    """n sentence pairs of 1..30 random tokens (+ </s>) over a 50-word dictionary."""
    dictionary = Dictionary()
    for i in range(50):
        dictionary.add_symbol(f"w{i}")
    g = torch.Generator().manual_seed(seed)
    sides = []
    for _ in range(2):
        lengths = torch.randint(1, 31, (n,), generator=g)
        sides.append(
            [
                torch.cat(
                    [torch.randint(4, len(dictionary), (int(k),), generator=g), torch.tensor([2])]
                )
                for k in lengths
            ]
        )
    sizes = [torch.tensor([len(s) for s in side]).numpy() for side in sides]
    return LanguagePairDataset(
        sides[0], sizes[0], dictionary, sides[1], sizes[1], dictionary, shuffle=False
    )


def epoch_ids(loader) -> list[list[int]]:
    return [batch["id"].tolist() for batch in loader]


def test_batches_cover_the_data_once_within_max_tokens():
    dataset = make_dataset()
    loader = translation_loader(dataset, max_tokens=256, shuffle=False, seed=0)
    expected = dataset.batch_by_size(dataset.ordered_indices(), max_tokens=256)
    assert len(loader) == len(expected) > 1
    ids = epoch_ids(loader)
    assert len(ids) == len(loader)
    assert sorted(i for batch in ids for i in batch) == list(range(len(dataset)))
    for batch in loader:
        longest = max(batch["net_input"]["src_tokens"].shape[1], batch["target"].shape[1])
        assert batch["nsentences"] * longest <= 256
        assert batch["ntokens"] == int(batch["target"].ne(dataset.tgt_dict.pad()).sum())
    # without shuffling, every epoch visits the batches in the same (length) order
    assert epoch_ids(loader) == ids
    assert [sorted(b) for b in ids] == [sorted(b.tolist()) for b in expected]


def test_shuffle_redraws_the_batch_order_every_epoch_deterministically():
    dataset = make_dataset()
    a = translation_loader(dataset, max_tokens=256, shuffle=True, seed=3)
    b = translation_loader(dataset, max_tokens=256, shuffle=True, seed=3)
    first, second = epoch_ids(a), epoch_ids(a)
    assert first != second  # a new order in the next epoch
    assert sorted(map(sorted, first)) == sorted(map(sorted, second))  # of the same batches
    assert epoch_ids(b) == first and epoch_ids(b) == second  # same seed, same sequence
    b.batch_sampler.set_epoch(1)
    assert epoch_ids(b) == second  # resume at an epoch
    c = translation_loader(dataset, max_tokens=256, shuffle=True, seed=4)
    assert epoch_ids(c) != first


def test_ranks_take_every_world_size_th_batch():
    dataset = make_dataset()
    samplers = [TokenBatchSampler(dataset, 256, shuffle=True, seed=0) for _ in range(3)]
    for rank, sampler in enumerate(samplers):
        sampler.rank, sampler.world = rank, 3  # what torch.distributed would report
    shards = [list(s) for s in samplers]
    whole = list(TokenBatchSampler(dataset, 256, shuffle=True, seed=0))
    assert all(
        len(shard) == len(whole) // 3 == len(s) for shard, s in zip(shards, samplers, strict=True)
    )
    usable = whole[: 3 * (len(whole) // 3)]
    assert [shards[k % 3][k // 3] for k in range(len(usable))] == usable


def test_max_tokens_below_the_longest_sentence():
    with pytest.raises(ValueError, match="max_tokens=16 is smaller than the longest sentence"):
        translation_loader(make_dataset(), max_tokens=16, shuffle=True, seed=0)
