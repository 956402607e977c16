#!/usr/bin/env python3
"""Reference posterior for the optimiser's GP tests (src/optimizer/gp.rs, `sklearn_reference`).

scikit-learn's GaussianProcessRegressor with fixed hyperparameters is an independent
implementation of the same model: kernel s * Matern(length_scale=l (per dimension), nu=2.5),
noise variance added to the training diagonal (`alpha`), zero prior mean (normalize_y=False).
The data are a Kronecker (golden-ratio) sequence and a closed-form function, regenerated
bit-for-bit by the Rust test, so only the outputs below are copied into it.

Run: python3 -m venv /tmp/gpref-venv && /tmp/gpref-venv/bin/pip install scikit-learn
     /tmp/gpref-venv/bin/python scripts/reference/gp_reference.py
"""
import math

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern

N, D = 8, 3
ALPHAS = [0.6180339887498949, 0.7548776662466927, 0.5698402909980532]  # generalised golden ratios


def point(i, offset):
    return [math.fmod(offset + (i + 1) * a, 1.0) for a in ALPHAS]


def f(x):
    return math.sin(3.0 * x[0]) + x[1] * x[1] - 0.5 * x[2]


X = np.array([point(i, 0.0) for i in range(N)])
y = np.array([f(x) for x in X])
XT = np.array([point(i, 0.31) for i in range(4)])

LENGTHSCALES = [0.3, 0.7, 1.5]
SIGNAL = 1.3
NOISE = 1e-4

kernel = ConstantKernel(SIGNAL, constant_value_bounds="fixed") * Matern(
    length_scale=LENGTHSCALES, length_scale_bounds="fixed", nu=2.5
)
gpr = GaussianProcessRegressor(kernel=kernel, alpha=NOISE, optimizer=None, normalize_y=False)
gpr.fit(X, y)
mean, std = gpr.predict(XT, return_std=True)
print(f"// scikit-learn {__import__('sklearn').__version__}")
print(f"const SK_LML: f64 = {float(gpr.log_marginal_likelihood_value_)!r};")
print("const SK_MEAN: [f64; 4] = [" + ", ".join(repr(float(v)) for v in mean) + "];")
print("const SK_VAR: [f64; 4] = [" + ", ".join(repr(float(v * v)) for v in std) + "];")
