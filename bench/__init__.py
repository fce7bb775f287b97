"""``make bench``: the whole pipeline under load, judged against limits measured in the same run.

Tooling that drives the system from outside, like ``tests/``: it starts its own stack
(``stack.py``: Kafka, FerretDB, Jaeger and the four services as in ``make run``, on free ports in
a temporary folder), then

1. warms up, measures idle CPU, and measures the limits on the same broker
   (``limits/``: a bare aiokafka relay chain, a bare FastAPI endpoint, Kafka's
   ``ProducerPerformance``);
2. offers the demo's appeal mix (``mix.py``) at fixed rates, open loop, from a separate load
   process (``load.py``), with simulated reviewers deciding on the agent desk (``reviewers.py``),
   then at saturation; per appeal it times submit→202 (load process), submit→routed (the
   ``routed`` record on the lifecycle topic), submit→audited (the audit log's ``routed`` entry)
   and decided→notified (``observers.py``), and samples consumer lag and every process's CPU
   and memory (``procstat.py``);
3. in history mode, grows the stores to each size by cloning the warm-up's documents
   (``seeding/``) and measures the same hops again;
4. counts lost and duplicated appeals, writes JSON and a PNG (``plot.py``) and prints the
   acceptance lines last (``report.py``).

``run.py`` holds the order of it all, ``session.py`` the steps it is made of;
``python -m bench --help`` lists the options.
"""
