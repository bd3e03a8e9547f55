"""The service around the pipeline: wiring and signals (:mod:`.runner`), outputs,
sd_notify and Prometheus metrics.
"""
