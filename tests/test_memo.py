"""One explicit model cache: copies get their own identity, data sets their own baselines,
nothing is stored on model objects, and the cache stays within its size limit."""

from __future__ import annotations

import gc
from types import SimpleNamespace

import torch
from helpers import torch_bytes

from compress_core import CompressionConfig, compress, evaluate, evaluate_compressed, run_on
from compress_core.core.pipeline import base_hash, baseline_metrics, weights_hash
from compress_core.eval.memo import MEMO, ModelMemo
from compress_core.io.store import Store

CONFIG = CompressionConfig(prune_rate=0.5, bits=4)


def noise_data(name: str, seed: int, n: int = 600) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 16, 16, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    return SimpleNamespace(name=name, test_x=x, test_y=y, train_x=x, train_y=y)


def test_a_compressed_copy_gets_its_own_hash_and_chained_results_are_all_stored(tiny, tmp_path):
    data = noise_data("noise", 0)
    first = compress(tiny, CONFIG)
    second = compress(first, CompressionConfig(prune_rate=0.7, bits=3))
    hashes = [base_hash(m) for m in (tiny, first, second)]
    assert hashes == [weights_hash(m) for m in (tiny, first, second)]
    assert len(set(hashes)) == 3
    store = Store(tmp_path / "results.sqlite")
    for base in (tiny, first):  # compress the base, then compress the compressed copy again
        store.save(run_on(base, data, CompressionConfig(prune_rate=0.7, bits=3)))
    assert len({row["base_hash"] for row in store.rows()}) == 2


def test_two_data_sets_in_one_process_get_their_own_baselines(tiny):
    a, b = noise_data("noise-a", 1), noise_data("noise-b", 2)
    for data in (a, b, a):
        expected = evaluate(tiny, data.test_x, data.test_y)
        got = baseline_metrics(tiny, data)
        assert got.accuracy == expected.accuracy and torch.equal(
            got.predictions, expected.predictions
        )
    r = evaluate_compressed(tiny, compress(tiny, CONFIG), b)
    assert r.baseline_accuracy == evaluate(tiny, b.test_x, b.test_y).accuracy


def test_a_compressed_copy_does_not_carry_the_bases_cached_outputs(tiny):
    data = noise_data("noise", 3, n=4000)
    fresh = len(torch_bytes(compress(tiny, CONFIG)))
    evaluate_compressed(tiny, compress(tiny, CONFIG), data)  # fills baseline and prefix caches
    assert MEMO.entries(tiny) >= 2
    assert not [k for k in vars(tiny) if k.startswith("_slimscope")]
    after = len(torch_bytes(compress(tiny, CONFIG)))
    assert after == fresh  # the cached 4,000 prefix activations are not deep-copied along


def test_the_cache_keeps_within_its_byte_limit_and_forgets_collected_models():
    memo = ModelMemo(max_bytes=10_000)
    models = [torch.nn.Linear(2, 2) for _ in range(5)]
    for model in models:
        memo.get_or(model, "x", lambda: torch.zeros(1000))  # 4,000 bytes each
        assert memo.nbytes <= 10_000
    del model
    assert [memo.entries(m) for m in models] == [0, 0, 0, 1, 1]  # least recently used out
    del models[-1]
    gc.collect()
    assert memo.nbytes == 4000
