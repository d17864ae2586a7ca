"""Experiment harnesses: the runs behind benchmarks/ and the shipped checkpoints, not library
code. Each decodes, trains or times with the library's own decoders and engines:

* `train.py`: trains the shipped LlamaGen-style models (photo and digits) and writes their safetensors;
* `lpd_train.py`, `lpd_eval.py`: LPD's position-query model, its training and its evaluation;
* `realtable.py`: the real-model table (every preset on a trained model: NLL, step compression,
  calibration verdicts; benchmarks/REAL_MODEL.md);
* `bench.py`: latency of accelerated decoders against accelerated AR (benchmarks/RESULTS.md);
* `precision.py`: how far reduced precision (bf16 / fp16) moves a decoder's law.

Their command lines are in cli/ (`jacobi-oracle bench`, `precision`, `demo`) or their own
`python -m jacobi_oracle.experiments.<name>`.
"""
