"""Offline evaluation of vigil outputs against ground truth (`vigil eval ...`).

One module per task: `detection` (COCO-style AP), `mot` (CLEAR-MOT, IDF1, HOTA); `records` reads vigil JSONL.
"""
