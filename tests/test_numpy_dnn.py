"""The torch-free DNN forward (asr.nnet.numpy_dnn) against torch's own network."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch

from asr.nnet.network import AcousticNet, NetConfig
from asr.features import splice_frames as splice
from asr.nnet.numpy_dnn import NumpyDnn, log_softmax, read_state_dict
from asr.nnet.frames import splice as splice_torch
from asr.utils import AsrError


def _trained_looking(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random batch-norm running statistics and affine parameters (not the identity of a new net)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g))
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g))
                m.num_batches_tracked.fill_(7)
    return net.eval()


@pytest.mark.parametrize("activation,batch_norm", [("relu", True), ("sigmoid", True), ("tanh", False),
                                                   ("maxout", True)])
def test_numpy_forward_equals_torch(tmp_path, activation, batch_norm):
    torch.manual_seed(0)
    cfg = NetConfig(num_layers=2, hidden_dim=16, activation=activation, batch_norm=batch_norm, dropout=0.2, context=2)
    net = _trained_looking(AcousticNet(cfg, 6, 9))
    torch.save({k: v for k, v in net.state_dict().items()}, tmp_path / "nnet.pt")
    state = read_state_dict(tmp_path / "nnet.pt")
    for k, v in net.state_dict().items():  # every tensor, with its shape (0-d counters too)
        np.testing.assert_array_equal(state[k], v.numpy())
        assert state[k].shape == tuple(v.shape) and state[k].dtype == v.numpy().dtype
    feats = np.random.default_rng(0).normal(size=(23, 6)).astype(np.float32)
    np.testing.assert_array_equal(splice(feats, 2), splice_torch(torch.from_numpy(feats), 2).numpy())
    windows = splice(feats, 2)
    with torch.no_grad():
        want = torch.log_softmax(net(torch.from_numpy(windows)), dim=-1).numpy()
    got = log_softmax(NumpyDnn(cfg, 6, 9, state)(windows))
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_state_dict_reader_runs_no_code(tmp_path):
    """A pickle naming any class but the state dict's few is refused before it can run."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (subprocess.call, ([sys.executable, "-c", f"open({str(marker)!r}, 'w')"],))

    with zipfile.ZipFile(tmp_path / "evil.pt", "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps({"w": Payload()}, protocol=2))
    with pytest.raises(AsrError, match=r"evil.pt: cannot read the network weights \(\w+\.call is not part of a plain tensor state dict"):
        read_state_dict(tmp_path / "evil.pt")
    assert not marker.exists()
    (tmp_path / "cut.pt").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(AsrError, match="cut.pt: cannot read"):
        read_state_dict(tmp_path / "cut.pt")


def test_numpy_forward_checks_the_weights_fit():
    cfg = NetConfig(num_layers=1, hidden_dim=4, context=0)
    state = {k: v.numpy() for k, v in _trained_looking(AcousticNet(cfg, 3, 5)).state_dict().items()}
    with pytest.raises(AsrError, match="do not fit"):
        NumpyDnn(cfg, 4, 5, state)
    with pytest.raises(AsrError, match="lack"):
        NumpyDnn(NetConfig(num_layers=2, hidden_dim=4, context=0), 3, 5, state)
    with pytest.raises(AsrError, match="feed-forward"):
        NumpyDnn(NetConfig(kind="tdnn", num_layers=1, hidden_dim=4, context=0), 3, 5, state)
