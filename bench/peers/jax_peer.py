"""The W2, W3, W4, W5 and W6 workloads of docs/WORKLOADS.md in JAX: each step is one
`jax.jit` function with the parameters and optimizer state donated, optax for the
optimizers. Single-threaded (see common.py). Usage: python jax_peer.py [w2 w3 w4 w5 w6]
"""

import subprocess
import sys
import time

import common  # sets the single-thread environment before jax is imported

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

PEER = "jax"


def linear(key, fan_in, fan_out):
    """PyTorch's default init, as kiln's nn::Linear: U(+-1/sqrt(fan_in))."""
    kw, kb = jax.random.split(key)
    bound = 1.0 / np.sqrt(fan_in)
    return {
        "w": jax.random.uniform(kw, (fan_in, fan_out), jnp.float32, -bound, bound),
        "b": jax.random.uniform(kb, (fan_out,), jnp.float32, -bound, bound),
    }


def conv(key, cin, cout, k):
    kw, kb = jax.random.split(key)
    bound = 1.0 / np.sqrt(cin * k * k)
    return {
        "w": jax.random.uniform(kw, (cout, cin, k, k), jnp.float32, -bound, bound),
        "b": jax.random.uniform(kb, (cout,), jnp.float32, -bound, bound),
    }


def dense(p, x):
    return x @ p["w"] + p["b"]


def cross_entropy(logits, labels):
    """Softmax cross-entropy, mean over the batch."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


def train_step(loss_fn, opt):
    """One jitted step: loss, gradients, optimizer update; params and state donated."""

    def step(params, state, *batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return jax.jit(step, donate_argnums=(0, 1))


def run_train(name, loss_fn, opt, params, batch, warmup):
    step = train_step(loss_fn, opt)
    box = {"params": params, "state": opt.init(params)}

    def one():
        box["params"], box["state"], loss = step(box["params"], box["state"], *batch)
        loss.block_until_ready()

    common.time_steps(f"{PEER}/{name}", one, warmup)
    assert np.isfinite(float(step(box["params"], box["state"], *batch)[2]))


# W2: MLP 784-128-64-10, ReLU, softmax cross-entropy, Adam 1e-3.


def mlp_init(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {"fc1": linear(k1, 784, 128), "fc2": linear(k2, 128, 64), "fc3": linear(k3, 64, 10)}


def mlp_loss(p, x, y):
    h = jax.nn.relu(dense(p["fc1"], x))
    h = jax.nn.relu(dense(p["fc2"], h))
    return cross_entropy(dense(p["fc3"], h), y)


def w2():
    adam = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)
    for batch in (64, 256):
        kp, kx, ky = jax.random.split(jax.random.PRNGKey(common.SEED), 3)
        x = jax.random.uniform(kx, (batch, 784), jnp.float32, 0.0, 1.0)
        y = jax.random.randint(ky, (batch,), 0, 10, jnp.int32)
        run_train(f"w2_step/batch_{batch}", mlp_loss, adam, mlp_init(kp), (x, y),
                  common.warmups("w2"))
    kp, kx, ky = jax.random.split(jax.random.PRNGKey(common.SEED), 3)
    x = jax.random.uniform(kx, (64, 784), jnp.float32, 0.0, 1.0)
    y = jax.random.randint(ky, (64,), 0, 10, jnp.int32)
    params = mlp_init(kp)
    fwd = jax.jit(mlp_loss)
    common.time_steps(f"{PEER}/w2_forward/batch_64",
                      lambda: fwd(params, x, y).block_until_ready(), common.warmups("w2"))


# W5: compile latency of the W2 step, batch 64: from building the model (after
# `import jax`) to the first result (trace, compile, run), each in a fresh process.

W5_PROCESSES = 3 if common.QUICK else 11


def w5_once():
    """This process's W5 time in ms."""
    t0 = time.perf_counter()
    kp, kx, ky = jax.random.split(jax.random.PRNGKey(common.SEED), 3)
    x = jax.random.uniform(kx, (64, 784), jnp.float32, 0.0, 1.0)
    y = jax.random.randint(ky, (64,), 0, 10, jnp.int32)
    adam = optax.adam(1e-3, b1=0.9, b2=0.999, eps=1e-8)
    params = mlp_init(kp)
    step = train_step(mlp_loss, adam)
    _, _, loss = step(params, adam.init(params), x, y)
    loss.block_until_ready()
    return (time.perf_counter() - t0) * 1e3


def w5():
    times = []
    for _ in range(W5_PROCESSES):
        out = subprocess.run([sys.executable, __file__, "--w5-once"], check=True,
                             capture_output=True, text=True).stdout
        times.append(float(out.split()[-1]))
    common.report(f"{PEER}/w5_compile/batch_64", times)


# W3: LeNet, SGD momentum 0.9, lr 1e-3, batch 128, NCHW 3x32x32.


def lenet_init(key):
    k = jax.random.split(key, 5)
    return {
        "conv1": conv(k[0], 3, 6, 5),
        "conv2": conv(k[1], 6, 16, 5),
        "fc1": linear(k[2], 400, 120),
        "fc2": linear(k[3], 120, 84),
        "fc3": linear(k[4], 84, 10),
    }


def conv2d(p, x):
    y = lax.conv_general_dilated(x, p["w"], (1, 1), "VALID",
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    return y + p["b"][None, :, None, None]


def maxpool2(x):
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def lenet_loss(p, x, y):
    h = maxpool2(jax.nn.relu(conv2d(p["conv1"], x)))
    h = maxpool2(jax.nn.relu(conv2d(p["conv2"], h)))
    h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(dense(p["fc1"], h))
    h = jax.nn.relu(dense(p["fc2"], h))
    return cross_entropy(dense(p["fc3"], h), y)


def w3():
    kp, kx, ky = jax.random.split(jax.random.PRNGKey(common.SEED + 3), 3)
    x = jax.random.uniform(kx, (128, 3, 32, 32), jnp.float32, -1.0, 1.0)
    y = jax.random.randint(ky, (128,), 0, 10, jnp.int32)
    sgd = optax.sgd(1e-3, momentum=0.9)
    run_train("w3_step/batch_128", lenet_loss, sgd, lenet_init(kp), (x, y),
              common.warmups("w3"))


# W4: tagger, embedding 1000x64 -> LSTM 128 -> linear 128->16 -> log-softmax + NLL,
# SGD lr 0.1, sequence 32, batch 16 (time-major, one tag per token).

VOCAB, EMBED, HIDDEN, TAGS, SEQ, BATCH = 1000, 64, 128, 16, 32, 16


def tagger_init(key):
    k = jax.random.split(key, 6)
    bound = 1.0 / np.sqrt(HIDDEN)  # PyTorch's nn.LSTM init
    u = lambda kk, shape: jax.random.uniform(kk, shape, jnp.float32, -bound, bound)
    return {
        "embed": jax.random.normal(k[0], (VOCAB, EMBED), jnp.float32),
        # gates stacked i, f, g, o as in PyTorch; input and hidden weights in one.
        "w_ih": u(k[1], (EMBED, 4 * HIDDEN)),
        "w_hh": u(k[2], (HIDDEN, 4 * HIDDEN)),
        "b": u(k[3], (4 * HIDDEN,)) + u(k[4], (4 * HIDDEN,)),
        "out": linear(k[5], HIDDEN, TAGS),
    }


def tagger_loss(p, tokens, tags):
    e = p["embed"][tokens]  # [SEQ, BATCH, EMBED]
    xs = e @ p["w_ih"] + p["b"]  # input projection for all steps at once

    def cell(carry, xw):
        h, c = carry
        z = xw + h @ p["w_hh"]
        i, f, g, o = jnp.split(z, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return (h, c), h

    zeros = jnp.zeros((tokens.shape[1], HIDDEN), jnp.float32)
    _, hs = lax.scan(cell, (zeros, zeros), xs)  # [SEQ, BATCH, HIDDEN]
    logp = jax.nn.log_softmax(dense(p["out"], hs), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, tags[..., None], axis=-1))


def w4():
    kp, kt, ky = jax.random.split(jax.random.PRNGKey(common.SEED + 4), 3)
    tokens = jax.random.randint(kt, (SEQ, BATCH), 0, VOCAB, jnp.int32)
    tags = jax.random.randint(ky, (SEQ, BATCH), 0, TAGS, jnp.int32)
    run_train(f"w4_step/seq_{SEQ}_batch_{BATCH}", tagger_loss, optax.sgd(0.1),
              tagger_init(kp), (tokens, tags), common.warmups("w4"))


# W6: C = A.B, single thread.

GEMM_SHAPES = [(256, 256, 256), (1024, 1024, 1024), (64, 784, 128), (64, 128, 64)]


def w6():
    matmul = jax.jit(lambda a, b: a @ b)
    for m, k, n in GEMM_SHAPES:
        ka, kb = jax.random.split(jax.random.PRNGKey(common.SEED + 6))
        a = jax.random.uniform(ka, (m, k), jnp.float32, -1.0, 1.0)
        b = jax.random.uniform(kb, (k, n), jnp.float32, -1.0, 1.0)
        common.time_steps(f"{PEER}/w6_gemm/{m}x{k}x{n}",
                          lambda: matmul(a, b).block_until_ready(), common.warmups("w6"))


if __name__ == "__main__":
    if sys.argv[1:] == ["--w5-once"]:
        print(f"{w5_once():.3f}")
        sys.exit(0)
    print(f"# jax {jax.__version__}, optax {optax.__version__}, "
          f"devices {jax.devices()}", flush=True)
    chosen = common.selected(sys.argv)
    for name, fn in (("w2", w2), ("w3", w3), ("w4", w4), ("w5", w5), ("w6", w6)):
        if name in chosen:
            fn()
