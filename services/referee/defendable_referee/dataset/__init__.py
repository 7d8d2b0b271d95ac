"""The Dataset lane's checks (issue 4): rule kinds whose figures the referee computes itself from the evidence files.

The submission is a manifest (manifest.py); the data files are evidence. Every figure in a
finding is computed from the files; the manifest's own numbers are claims (claim.py).

Modules: manifest (the submission), source (the only file I/O: DuckDB over the evidence),
sql (quoting and per-format value tests), report (what every check shares), claim, and one
module per rule kind — files, validation, balance, duplicate (with scan and minhash),
provenance, safety (with pii), split, missing. params.py and checks.py are the registries.

Engine, by measurement (1,000,000 rows, 154 MB CSV, 2 cores, every column read):

* DuckDB `read_csv`, 2 threads: 0.6 s, peak RSS 194 MiB — and it records rejected rows with
  their line numbers, runs SQL aggregates that spill under `memory_limit`, reads CSV, JSON
  Lines and Parquet, and sandboxes itself (`allowed_paths`, no external access);
* Polars `scan_csv`, streaming: 0.8 s, 242 MiB — no per-row rejects;
* pyarrow `open_csv`, 8 MiB blocks: 1.5 s, 321 MiB — stops at the first bad row;
* DuckDB loading a table first: 1.6 s in memory / 4.8 s on disk, 420 MiB — nothing a direct
  scan lacks.

So DuckDB, scanning the files directly (a check makes a few passes; loading costs more).
Near-duplicates: datasketch's MinHash costs ~420 µs a row in Python (7 minutes a million);
minhash.py computes the same estimator vectorised at ~1–2 µs a row. PII: one DuckDB pattern
per detector per column cost 6.7 CPU-s; all detectors as one alternation, 2 s.
"""
