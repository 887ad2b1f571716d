"""The W2, W3, W4 and W6 workloads of docs/WORKLOADS.md in PyTorch eager, one
thread. Training steps run twice: with the optimizer's default implementation
(`torch`) and with its fused CPU kernel (`torch_fused`).
Usage: python torch_peer.py [w2 w3 w4 w6]
"""

import sys

import common  # sets the single-thread environment before torch is imported

import torch
import torch.nn.functional as F
from torch import nn

torch.set_num_threads(1)
torch.set_num_interop_threads(1)


def train(name, model, make_opt, batch, loss_fn, warmup):
    """Times zero_grad + forward + backward + step for the default and the fused
    optimizer (each on a fresh copy of the model)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for peer, fused in (("torch", False), ("torch_fused", True)):
        model.load_state_dict(state)
        try:
            opt = make_opt(model.parameters(), fused)
        except (RuntimeError, TypeError, ValueError) as e:
            print(f"# {peer}/{name}: no fused optimizer: {e}", flush=True)
            continue

        def one():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model, *batch)
            loss.backward()
            opt.step()
            return loss

        common.time_steps(f"{peer}/{name}", one, warmup)
        assert torch.isfinite(one().detach())


def mlp():
    return nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def ce(model, x, y):
    return F.cross_entropy(model(x), y)


def w2():
    adam = lambda ps, fused: torch.optim.Adam(ps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
                                              fused=fused or None)
    for batch in (64, 256):
        g = torch.Generator().manual_seed(common.SEED)
        torch.manual_seed(common.SEED)
        model = mlp()
        x = torch.rand(batch, 784, generator=g)
        y = torch.randint(0, 10, (batch,), generator=g)
        train(f"w2_step/batch_{batch}", model, adam, (x, y), ce, common.warmups("w2"))
    g = torch.Generator().manual_seed(common.SEED)
    torch.manual_seed(common.SEED)
    model = mlp()
    x = torch.rand(64, 784, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)

    def fwd():
        with torch.no_grad():
            return ce(model, x, y)

    common.time_steps("torch/w2_forward/batch_64", fwd, common.warmups("w2"))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)
        h = h.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(h)))))


def w3():
    g = torch.Generator().manual_seed(common.SEED + 3)
    torch.manual_seed(common.SEED + 3)
    x = torch.rand(128, 3, 32, 32, generator=g) * 2 - 1
    y = torch.randint(0, 10, (128,), generator=g)
    sgd = lambda ps, fused: torch.optim.SGD(ps, lr=1e-3, momentum=0.9, fused=fused or None)
    train("w3_step/batch_128", LeNet(), sgd, (x, y), ce, common.warmups("w3"))


VOCAB, EMBED, HIDDEN, TAGS, SEQ, BATCH = 1000, 64, 128, 16, 32, 16


class Tagger(nn.Module):
    """Embedding 1000x64 -> LSTM 128 -> linear 128->16 -> log-softmax (time-major)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN)
        self.out = nn.Linear(HIDDEN, TAGS)

    def forward(self, tokens):
        hs, _ = self.lstm(self.embed(tokens))
        return F.log_softmax(self.out(hs), dim=-1)


def nll(model, tokens, tags):
    return F.nll_loss(model(tokens).reshape(-1, TAGS), tags.reshape(-1))


def w4():
    g = torch.Generator().manual_seed(common.SEED + 4)
    torch.manual_seed(common.SEED + 4)
    tokens = torch.randint(0, VOCAB, (SEQ, BATCH), generator=g)
    tags = torch.randint(0, TAGS, (SEQ, BATCH), generator=g)
    sgd = lambda ps, fused: torch.optim.SGD(ps, lr=0.1, fused=fused or None)
    train(f"w4_step/seq_{SEQ}_batch_{BATCH}", Tagger(), sgd, (tokens, tags), nll,
          common.warmups("w4"))


GEMM_SHAPES = [(256, 256, 256), (1024, 1024, 1024), (64, 784, 128), (64, 128, 64)]


def w6():
    for m, k, n in GEMM_SHAPES:
        g = torch.Generator().manual_seed(common.SEED + 6)
        a = torch.rand(m, k, generator=g) * 2 - 1
        b = torch.rand(k, n, generator=g) * 2 - 1
        c = torch.empty(m, n)
        common.time_steps(f"torch/w6_gemm/{m}x{k}x{n}", lambda: torch.mm(a, b, out=c),
                          common.warmups("w6"))


if __name__ == "__main__":
    print(f"# torch {torch.__version__}, threads {torch.get_num_threads()}", flush=True)
    chosen = common.selected(sys.argv)
    for name, fn in (("w2", w2), ("w3", w3), ("w4", w4), ("w6", w6)):
        if name in chosen:
            fn()
