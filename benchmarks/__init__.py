"""Benchmarks and diagnostics, one module each, each run as ``python -m benchmarks.<name> [--help]``.

Timing (numbers are noisy on a shared machine: compare rows of one run):
  bench_student        the student's CPU inference paths step by step (low-res copy, network, fused
                       slice+apply, FastStudent, torch path) against a memory-copy floor, 1080p and 12 MP
  bench_apply          deployment and training throughput: ``apply`` images/s end to end, teacher pairs/s
                       per DataLoader worker, DDP training steps/s per process x thread layout
  bench_local_laplacian  wall time of the local Laplacian teacher (filter alone and whole teacher) per K
  bench_tonemap        wall time of the tone-mapping teachers (Reinhard, Drago, Mantiuk, Durand-Dorsey)
  bench_hdrplus        the HDR+ burst teacher per stage (align, merge, finish) and its peak memory per size
  durand_student_vs_fast_teacher  a Durand-Dorsey student against the teacher's own fast mode: PSNR to the
                       exact teacher and speed, side by side

Fidelity diagnostics of a trained student or a grid size:
  error_anatomy        where a student's held-out error lies: a global level, a global contrast, or local
                       structure (by scale, at edges, lost detail)
  generalization_gap   PSNR on the training images vs the held-out ones, at several sizes and crops
  grid_ceiling         the PSNR a free bilateral grid of a given size reaches per image (the capacity bound)
  hdr_statistics       the synthetic HDR scenes' luminance statistics beside real HDR views' (log luminance
                       around the median, pixels k stops above it, near black, dynamic range, colour cast)
  operator_suite       the ten operators of teachers/suite.py, each distilled under one budget, scored held out
                       (PSNR mean/worst beside doing nothing, SSIM) and timed against its student: suite.md
  same_output          a checkpoint's torch and fused outputs on seeded images, saved on one commit and
                       compared on another ("behaviour unchanged" evidence for a restructure)

``benchmarks._cli`` is the shared argument parser (usage line, docstring as description, defaults shown).
"""
