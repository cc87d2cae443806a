"""The benchmark: what Switchboard adds over calling the upstream directly, and over LiteLLM.

``make bench`` runs ``python -m tests.bench.run``; ``--help`` lists the knobs. See RESULTS.md
for the latest numbers and FINDINGS.md for what the profiles showed.
"""
