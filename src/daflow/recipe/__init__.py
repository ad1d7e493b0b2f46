"""The recipes that make the bundled models, above training and evaluation in the layering
(flow ← data ← models ← train / eval ← recipe ← cli):

- ``run``        the tiny recipe (every stage of the paper at small size on a CPU) and the restorer's recipe;
- ``reproduce``  the small-scale reproduction report of a finished run;
- ``bundle``     copying a finished run's models into ``src/daflow/weights`` with their provenance.
"""
