#!/usr/bin/env python3
"""What a user would write instead of stego: a Python onnxruntime + numpy loop that hides
(or reveals) packed RGB frames. Row (d) of the side-by-side benchmark
(`cargo bench -p gst-plugin-stego --bench throughput`), which runs it with .venv/bin/python.

Prints one line: RESULT <frames> <seconds> <peak_rss_kib>
"""
import argparse
import resource
import sys
import time

import numpy as np
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--role", choices=["hide", "reveal"], default="hide")
    ap.add_argument("--width", type=int, required=True)
    ap.add_argument("--height", type=int, required=True)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--provider", choices=["cpu", "cuda", "auto"], default="cpu")
    a = ap.parse_args()

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if a.threads > 0:
        so.intra_op_num_threads = a.threads
    providers = ["CPUExecutionProvider"]
    if a.provider != "cpu":
        # onnxruntime-gpu finds the CUDA / cuDNN wheels (nvidia-*) only when asked to preload them.
        if hasattr(ort, "preload_dlls"):
            ort.preload_dlls()
        providers = [("CUDAExecutionProvider", {"cudnn_conv_algo_search": "EXHAUSTIVE"})] + providers
    sess = ort.InferenceSession(a.model, so, providers=providers)
    # onnxruntime falls back to the CPU with only a warning: a cuda row must not time the CPU.
    if a.provider == "cuda" and sess.get_providers()[0] != "CUDAExecutionProvider":
        sys.exit(f"bench_python: CUDA is not usable by onnxruntime {ort.__version__} "
                 f"(providers in use: {sess.get_providers()}); see the warning above")
    rng = np.random.default_rng(0)
    cover = rng.integers(0, 256, (a.height, a.width, 3), dtype=np.uint8)
    secret = rng.integers(0, 256, (a.height, a.width, 3), dtype=np.uint8)

    def to_tensor(frame):
        return (frame.astype(np.float32) / 255.0).transpose(2, 0, 1)[None].copy()

    def to_frame(t):
        return (np.clip(t[0], 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0).copy()

    def step():
        if a.role == "hide":
            out = sess.run(["container"], {"cover": to_tensor(cover), "secret": to_tensor(secret)})[0]
        else:
            out = sess.run(["revealed"], {"container": to_tensor(cover)})[0]
        return to_frame(out)

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(a.frames):
        step()
    dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT {a.frames} {dt:.6f} {rss}")


if __name__ == "__main__":
    main()
