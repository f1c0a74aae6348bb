"""Soft weight-sharing: a model trained under the mixture prior snaps to an exact artifact."""

import torch

from compress_core.core.layers import weight_layers
from compress_core.core.record import get_record
from compress_core.eval.evaluate import evaluate
from compress_core.format.artifact import artifact_size, export, load_compressed
from compress_core.train.soft_sharing import SoftSharingConfig, soft_weight_sharing


def test_soft_sharing_snaps_to_shared_values_keeps_accuracy_and_round_trips(digits_lenet):
    base, data = digits_lenet
    before = [m.weight.detach().clone() for m in weight_layers(base).values()]
    cfg = SoftSharingConfig(epochs=1, components=7)
    small = soft_weight_sharing(base, data, cfg)
    for w, m in zip(before, weight_layers(base).values(), strict=True):
        assert torch.equal(w, m.weight)  # the base is never changed
    values = torch.cat([m.weight.reshape(-1) for m in weight_layers(small).values()])
    assert len(torch.unique(values)) <= cfg.components + 1  # the means and zero
    record = get_record(small)
    assert record.config.bits == 3 and 0 < record.config.prune_rate < 1
    acc = {m: evaluate(m, data.test_x, data.test_y).accuracy for m in (base, small)}
    assert acc[small] >= acc[base] - 0.03
    blob = export(small)
    loaded = load_compressed(blob)
    for key, t in small.state_dict().items():
        assert torch.equal(t, loaded.state_dict()[key]), key
    size = artifact_size(small)
    assert size.artifact_bytes == len(blob) < size.dense_bytes / 4
