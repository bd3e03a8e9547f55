"""`emopi bench`: latency and throughput of the real pipeline on this device.

The pipeline under test is the one `emopi run` builds (:func:`emopi.edge.pipeline.build_pipeline`);
the bench only composes around its public API:

* :mod:`.probes`: a :class:`~.probes.Recorder` (a ``FrameObserver``) gets each frame's stage
  timings right after the frame's publish stage, which is also the end of its capture -> publish
  latency; a :class:`~.probes.TimedClassifier` is a real ``Classifier``: it times preprocessing
  and the interpreter per face and, with ``--compare float``, runs the float32 model on the very
  same faces, alternating which model goes first, so machine noise hits both alike; a
  :class:`~.probes.CountingSink` marks the frames that published events, and a
  :class:`~.probes.DeliveryProbe` (a second MQTT client) sees when those events reach a
  subscriber;
* :mod:`.machine`: the facts the figures depend on (CPU, board, clocks, library versions);
* :mod:`.runs`: one pipeline run, or the classifier alone on random faces (``--source
  synthetic``, one face per invoke and batched);
* :mod:`.report`: ``bench.json``, ``bench.md`` and ``bench.png`` (when matplotlib is importable).

The command itself is :mod:`emopi.edge.cli.bench`. Module-level imports are stdlib only:
``emopi --help`` must work without the ``edge`` extra.
"""
