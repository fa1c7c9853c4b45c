"""The run loop and batch jobs as library calls, between ``outputs`` and ``teachers``.

    from instanthmr import RunConfig, run
    report = run(RunConfig(video="clip.mp4", save_json="out.json"))   # report.frames, .people, .files, .exit_code

``config`` (:class:`RunConfig`, its checks in ``validate``), ``loop`` (:func:`run`: one source through a
pipeline into the outputs), ``jobs`` (inputs, output storage, the manifest, the batch job and its worker),
``engines`` (the same job in this process, on local processes or on Ray), ``speed`` (what the benchmarks
share: the stride benchmark, the round-robin timer). The command line (``cli/demo.py``, ``cli/batch.py``,
``cli/bench*.py``) only turns flags into these configurations; nothing here parses arguments.
"""
